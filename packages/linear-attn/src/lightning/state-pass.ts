/**
 * The per-chunk states a lightning call needs, scanned: the state entering each chunk (forward) or
 * the gradient of the state leaving it (backward), and the state left at the end. On tensor cores
 * with whole 64 x 64 tiles, one kernel walks the chunks (`state-pass-matrix.wgsl.ts`); elsewhere
 * kernel 1 writes every chunk's own term and kernel 2 scans them.
 */
import { type Capabilities, dispatch, type Gpu, memoizeWgsl, Tensor } from '@webattn/core';
import {
  allocateStates,
  type ChunkStates,
  chunkStates,
  disposeStates,
  matrixStateKernelFor,
  type PlanTensors,
  scanStates,
  stateOperandValues,
  statesSplit,
} from './kernels.js';
import type { LightningPlan } from './options.js';
import {
  STATE_PASS_PARAMS,
  STATE_PASS_TILE,
  statePassMatrixWgsl,
  statePassSharedBytes,
  statePassUnsupported,
} from './state-pass-matrix.wgsl.js';

// Each kernel's WGSL is written once per configuration (see memoizeWgsl).
const statePassMatrixCode = memoizeWgsl(statePassMatrixWgsl);

/** What {@link scannedStates} returns: the states, and the end state when asked for. */
export interface ScannedStates {
  states: ChunkStates;
  end?: Tensor;
}

/** The subgroup configuration of the fused state pass for this call, or undefined (kernels 1 and 2 run). */
export function statePassFor(
  caps: Capabilities,
  plan: LightningPlan,
): { subgroupSize: number; pinSubgroupSize: boolean } | undefined {
  if (plan.tier !== 'subgroup-matrix') return undefined;
  if (statePassUnsupported(plan.dk, plan.dv, plan.chunkSize)) return undefined;
  if (statePassSharedBytes(plan.chunkSize) > caps.limits.maxComputeWorkgroupStorageSize) return undefined;
  const sizes = matrixStateKernelFor(caps);
  if (!sizes || (plan.chunkSize * 16) % (4 * sizes.subgroupSize) !== 0) return undefined;
  return sizes;
}

/**
 * The scanned states of u and w (forward: k and v; backward: q and dO), from `start` (initial
 * state, or dFinalState) or zeros, written into new states or over `into`; with `writeEnd`, the
 * state left at the end (final state, or dInitialState) in a new `[sequences, hq, dk, dv]` tensor.
 */
export async function scannedStates(
  gpu: Gpu,
  plan: LightningPlan,
  t: PlanTensors,
  u: Tensor,
  w: Tensor,
  backward: boolean,
  options: { start?: Tensor; writeEnd: boolean; overflow?: Tensor; into?: ChunkStates },
): Promise<ScannedStates> {
  const fused = statePassFor(gpu.caps, plan);
  if (!fused) {
    const states = await chunkStates(gpu, plan, t, u, w, backward, options.overflow, options.into);
    try {
      const end = await scanStates(gpu, plan, t, states, {
        reverse: backward,
        ...(options.start && { start: options.start }),
        writeEnd: options.writeEnd,
      });
      return { states, ...(end && { end }) };
    } catch (error) {
      if (!options.into) disposeStates(states);
      throw error;
    }
  }
  const { hq, dk, dv } = plan;
  const sequences = plan.spans.length;
  const states = options.into ?? allocateStates(gpu, plan);
  let end: Tensor | undefined;
  try {
    end = options.writeEnd ? Tensor.empty(gpu, [sequences, hq, dk, dv]) : undefined;
    const aTiles = dk / STATE_PASS_TILE;
    const bTiles = dv / STATE_PASS_TILE;
    const checkFinite = options.overflow !== undefined;
    if (sequences > 0) {
      await dispatch(gpu, {
        label: `lightning ${backward ? 'dstates' : 'states'} pass tensor-core`,
        code: statePassMatrixCode({
          chunkSize: plan.chunkSize,
          backward,
          checkFinite,
          hasStart: options.start !== undefined,
          writeEnd: end !== undefined,
          splitStates: states.high !== undefined,
          ...fused,
        }),
        buffers: [
          u,
          w,
          t.table,
          states.low,
          ...(options.start ? [options.start] : []),
          ...(end ? [end] : []),
          ...(options.overflow ? [options.overflow] : []),
          ...(states.high ? [states.high] : []),
        ],
        params: {
          layout: STATE_PASS_PARAMS,
          values: {
            sequences,
            ...stateOperandValues(plan, backward, { aTiles, bTiles }),
            statesSplit: statesSplit(plan),
            decayTable: plan.decayTable,
          },
        },
        workgroups: sequences * hq * aTiles * bTiles,
      });
    }
    return { states, ...(end && { end }) };
  } catch (error) {
    end?.dispose();
    if (!options.into) disposeStates(states);
    throw error;
  }
}

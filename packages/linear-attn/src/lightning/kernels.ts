/** Host side of the chunkwise lightning kernels: one function per launch. */
import {
  type Capabilities,
  type Dtype,
  dispatch,
  type Gpu,
  matrixSubgroupSize,
  memoizeWgsl,
  preferredMatrixConfig,
  Tensor,
} from '@webattn/core';
import { CHUNK_OUTPUT_PARAMS, chunkOutputWgsl } from './chunk-output.wgsl.js';
import {
  chunkOutputMatrixSharedBytes,
  chunkOutputMatrixWgsl,
  MATRIX_CHUNK,
  MATRIX_COLUMNS,
} from './chunk-output-matrix.wgsl.js';
import {
  CHUNK_STATE_PARAMS,
  chunkStateWgsl,
  type STATE_OPERAND_PARAMS,
  STATE_TILE,
} from './chunk-state.wgsl.js';
import {
  chunkStateMatrixSharedBytes,
  chunkStateMatrixWgsl,
  MATRIX_STATE_TILE,
} from './chunk-state-matrix.wgsl.js';
import {
  l2NormalizeBackwardWgsl,
  l2NormalizeWgsl,
  NORMALIZE_PARAMS,
  NORMALIZE_WORKGROUP,
} from './normalize.wgsl.js';
import type { LightningPlan } from './options.js';
import { SCAN_PARAMS, SCAN_WORKGROUP, scanWgsl, scanWidth } from './scan.wgsl.js';

// Each kernel's WGSL is written once per configuration (see memoizeWgsl).
const chunkOutputMatrixCode = memoizeWgsl(chunkOutputMatrixWgsl);
const chunkOutputCode = memoizeWgsl(chunkOutputWgsl);
const chunkStateMatrixCode = memoizeWgsl(chunkStateMatrixWgsl);
const chunkStateCode = memoizeWgsl(chunkStateWgsl);
const l2NormalizeBackwardCode = memoizeWgsl(l2NormalizeBackwardWgsl);
const l2NormalizeCode = memoizeWgsl(l2NormalizeWgsl);
const scanCode = memoizeWgsl(scanWgsl);

/** What every launch of a call reads besides its operands: the table of sequences, chunks and decays. */
export interface PlanTensors {
  /** The plan's u32 table, its bits in an f32 tensor. */
  table: Tensor;
}

/** Uploads the plan's table. */
export function planTensors(gpu: Gpu, plan: LightningPlan): PlanTensors {
  // u32 words travel in an f32-typed tensor; only their bits matter.
  const words = plan.table;
  const table = Tensor.from(gpu, new Float32Array(words.buffer, words.byteOffset, words.length), [
    words.length,
  ]);
  return { table };
}

/**
 * The values of {@link STATE_OPERAND_PARAMS}: the forward sums kᵀv over the KV heads (a query head
 * reads its group's), the backward qᵀdO over the query heads, scaled.
 */
export function stateOperandValues(
  plan: LightningPlan,
  backward: boolean,
  tiles: { aTiles: number; bTiles: number },
): Record<(typeof STATE_OPERAND_PARAMS)[number][0], number> {
  return {
    hq: plan.hq,
    dk: plan.dk,
    dv: plan.dv,
    heads: backward ? plan.hq : plan.hkv,
    headDiv: backward ? 1 : plan.group,
    chunkTable: plan.chunkTable,
    ...tiles,
    coef: backward ? plan.scale : 1,
  };
}

/**
 * The per-chunk f32 states `[chunks, hq, dk, dv]`: one tensor, or two split at the plan's chunk
 * boundary `stateSplitChunk` when one binding cannot hold them all.
 */
export interface ChunkStates {
  /** Chunks `[0, stateSplitChunk)`, all of them when not split (at least one chunk's entries). */
  low: Tensor;
  /** Chunks from `stateSplitChunk` on, when split. */
  high?: Tensor;
}

/** Allocates a plan's per-chunk states (uninitialised: kernel 1 writes every entry). */
export function allocateStates(gpu: Gpu, plan: LightningPlan): ChunkStates {
  const { hq, dk, dv, chunks, stateSplitChunk } = plan;
  const low = Tensor.empty(gpu, [Math.max(stateSplitChunk, 1), hq, dk, dv]);
  if (stateSplitChunk >= chunks) return { low };
  try {
    return { low, high: Tensor.empty(gpu, [chunks - stateSplitChunk, hq, dk, dv]) };
  } catch (error) {
    low.dispose();
    throw error;
  }
}

/** The states' tensors: one, or both parts. */
export function stateTensors(states: ChunkStates): Tensor[] {
  return states.high ? [states.low, states.high] : [states.low];
}

/** Frees both parts of the states. */
export function disposeStates(states: ChunkStates): void {
  for (const t of stateTensors(states)) t.dispose();
}

/**
 * The `statesSplit` parameter of the kernels that bind both parts (the scan, the fused state pass):
 * the first entry of the high part (all entries when not split).
 */
export function statesSplit(plan: LightningPlan): number {
  return plan.stateSplitChunk * plan.hq * plan.dk * plan.dv;
}

/** One part of the states with the chunks it holds, `[base, base + chunks)`. */
interface StatePart {
  states: Tensor;
  base: number;
  chunks: number;
}

/**
 * The parts of the states, each launched on its own by the chunk-parallel kernels (1 and 3), so
 * that they read one binding without a branch: choosing the binding per load cost those kernels
 * 30 % on the H200. Only the scan, which walks every chunk, binds both parts.
 */
function stateParts(plan: LightningPlan, states: ChunkStates): StatePart[] {
  const parts = [{ states: states.low, base: 0, chunks: Math.min(plan.chunks, plan.stateSplitChunk) }];
  if (states.high) {
    parts.push({
      states: states.high,
      base: plan.stateSplitChunk,
      chunks: plan.chunks - plan.stateSplitChunk,
    });
  }
  return parts;
}

/**
 * Every chunk's own state term (kernel 1), into new states, or over `into` (states of the same
 * plan no longer needed: every entry is written).
 */
export async function chunkStates(
  gpu: Gpu,
  plan: LightningPlan,
  t: PlanTensors,
  u: Tensor,
  w: Tensor,
  backward: boolean,
  overflow?: Tensor,
  into?: ChunkStates,
): Promise<ChunkStates> {
  const { hq, dk, dv, chunks } = plan;
  const states = into ?? allocateStates(gpu, plan);
  if (chunks === 0) return states;
  const matrix = plan.tier === 'subgroup-matrix' ? matrixStateKernelFor(gpu.caps) : undefined;
  const tile = matrix ? MATRIX_STATE_TILE : STATE_TILE;
  const aTiles = Math.ceil(dk / tile);
  const bTiles = Math.ceil(dv / tile);
  const checkFinite = matrix !== undefined && overflow !== undefined;
  try {
    for (const part of stateParts(plan, states)) {
      await dispatch(gpu, {
        label: `lightning chunk ${backward ? 'dstates' : 'states'}${matrix ? ' tensor-core' : ''}`,
        code: matrix
          ? chunkStateMatrixCode({ chunkSize: plan.chunkSize, backward, checkFinite, ...matrix })
          : chunkStateCode({ dtype: plan.dtype, chunkSize: plan.chunkSize, backward }),
        buffers: [u, w, t.table, part.states, ...(checkFinite && overflow ? [overflow] : [])],
        params: {
          layout: CHUNK_STATE_PARAMS,
          values: {
            chunks: part.chunks,
            ...stateOperandValues(plan, backward, { aTiles, bTiles }),
            chunkBase: part.base,
            decayTable: plan.decayTable,
          },
        },
        workgroups: part.chunks * hq * aTiles * bTiles,
      });
    }
  } catch (error) {
    if (!into) disposeStates(states);
    throw error;
  }
  return states;
}

/** Whether the device's preferred subgroup-matrix shape is 16x16x16 (NVIDIA's and AMD's). */
function hasSquare16(caps: Capabilities): boolean {
  const config = preferredMatrixConfig(caps);
  return config !== undefined && config.M === 16 && config.N === 16 && config.K === 16;
}

/**
 * The subgroup size the tensor-core kernels are built for, or undefined where it cannot be relied
 * on: the kernels assume exactly four subgroups per workgroup, so an unpinned size must be fixed.
 */
function fixedSubgroupSize(
  caps: Capabilities,
): { subgroupSize: number; pinSubgroupSize: boolean } | undefined {
  const sizes = matrixSubgroupSize(caps);
  if (!sizes.pinSubgroupSize && caps.subgroupMinSize !== caps.subgroupMaxSize) return undefined;
  return sizes;
}

/** The subgroup configuration of the tensor-core chunk-state kernel here, or undefined (the f16 kernel runs). */
export function matrixStateKernelFor(
  caps: Capabilities,
): { subgroupSize: number; pinSubgroupSize: boolean } | undefined {
  if (!hasSquare16(caps)) return undefined;
  if (chunkStateMatrixSharedBytes() > caps.limits.maxComputeWorkgroupStorageSize) return undefined;
  return fixedSubgroupSize(caps);
}

/**
 * Kernel 2: replaces each chunk's term by the state entering it (forward) or the gradient of the
 * state leaving it (reverse), and returns the state left at the end when `writeEnd`.
 */
export async function scanStates(
  gpu: Gpu,
  plan: LightningPlan,
  t: PlanTensors,
  states: ChunkStates,
  options: { reverse: boolean; start?: Tensor; writeEnd: boolean },
): Promise<Tensor | undefined> {
  const { hq, dk, dv } = plan;
  const sequences = plan.spans.length;
  const end = options.writeEnd ? Tensor.empty(gpu, [sequences, hq, dk, dv]) : undefined;
  const width = scanWidth(dk * dv);
  const count = (sequences * hq * dk * dv) / width;
  if (count === 0) return end;
  await dispatch(gpu, {
    label: options.reverse ? 'lightning reverse scan' : 'lightning scan',
    code: scanCode({
      reverse: options.reverse,
      hasStart: options.start !== undefined,
      writeEnd: options.writeEnd,
      splitStates: states.high !== undefined,
      width,
    }),
    buffers: [
      states.low,
      t.table,
      ...(options.start ? [options.start] : []),
      ...(end ? [end] : []),
      ...(states.high ? [states.high] : []),
    ],
    params: {
      layout: SCAN_PARAMS,
      values: {
        sequences,
        hq,
        stateSize: dk * dv,
        chunkTable: plan.chunkTable,
        statesSplit: statesSplit(plan),
        decayTable: plan.decayTable,
      },
    },
    workgroups: Math.ceil(count / SCAN_WORKGROUP),
  });
  return end;
}

/** Which output the chunk output kernel produces (see its table). */
export type ChunkOutputKind = 'o' | 'dq' | 'dk' | 'dv';

/**
 * Kernel 3: o, dq, dk or dv from x, y, z and the scanned states, into a new tensor of
 * `[batch, n, outHeads, dz]`.
 */
export async function chunkOutput(
  gpu: Gpu,
  plan: LightningPlan,
  t: PlanTensors,
  kind: ChunkOutputKind,
  inputs: { x: Tensor; y: Tensor; z: Tensor; states: ChunkStates; overflow?: Tensor },
): Promise<Tensor> {
  const { hq, hkv, dk, dv, group, chunks, dtype } = plan;
  const reverse = kind === 'dk' || kind === 'dv';
  const dx = kind === 'o' || kind === 'dv' ? dk : dv;
  const dz = kind === 'o' || kind === 'dv' ? dv : dk;
  const outHeads = kind === 'o' || kind === 'dq' ? hq : hkv;
  const out = Tensor.empty(gpu, [plan.batch, plan.n, outHeads, dz], dtype);
  if (chunks === 0) return out;
  const checkFinite = inputs.overflow !== undefined;
  const transposeState = kind === 'dq' || kind === 'dk';
  const matrix = plan.tier === 'subgroup-matrix' ? matrixKernelFor(gpu.caps, plan.chunkSize) : undefined;
  const zTiles = Math.ceil(dz / (matrix ? MATRIX_COLUMNS : 64));
  const code = matrix
    ? chunkOutputMatrixCode({ dtype, reverse, transposeState, checkFinite, ...matrix })
    : chunkOutputCode({
        dtype: dtype as Dtype,
        chunkSize: plan.chunkSize,
        reverse,
        transposeState,
        checkFinite,
      });
  try {
    for (const part of stateParts(plan, inputs.states)) {
      await dispatch(gpu, {
        label: `lightning ${kind}${matrix ? ' tensor-core' : ''}`,
        code,
        buffers: [
          inputs.x,
          inputs.y,
          inputs.z,
          part.states,
          t.table,
          out,
          ...(inputs.overflow ? [inputs.overflow] : []),
        ],
        params: {
          layout: CHUNK_OUTPUT_PARAMS,
          values: {
            chunks: part.chunks,
            outHeads,
            yzHeads: reverse ? hq : hkv,
            hq,
            dx,
            dz,
            group: reverse ? group : 1,
            yzDiv: reverse ? 1 : group,
            chunkTable: plan.chunkTable,
            zTiles,
            scale: plan.scale,
            stateScale: reverse ? 1 : plan.scale,
            chunkBase: part.base,
            decayTable: plan.decayTable,
          },
        },
        workgroups: part.chunks * outHeads * zTiles * (matrix ? 1 : plan.chunkSize / 32),
      });
    }
  } catch (error) {
    out.dispose();
    throw error;
  }
  return out;
}

/**
 * The subgroup configuration of the tensor-core output kernel on this device, or undefined where it
 * does not apply (another chunk size, no 16x16x16 f16 fragments, too little workgroup memory): the
 * f16 kernel runs instead.
 */
export function matrixKernelFor(
  caps: Capabilities,
  chunkSize: number,
): { subgroupSize: number; pinSubgroupSize: boolean } | undefined {
  if (chunkSize !== MATRIX_CHUNK || !hasSquare16(caps)) return undefined;
  if (chunkOutputMatrixSharedBytes() > caps.limits.maxComputeWorkgroupStorageSize) return undefined;
  return fixedSubgroupSize(caps);
}

/** The reference's `l2Normalize` eps. */
export const NORMALIZE_EPS = 1e-12;

/** `x / max(‖x‖, eps)` per row of the last dim, into a new tensor. */
export async function l2NormalizeRows(gpu: Gpu, x: Tensor): Promise<Tensor> {
  const dim = x.shape[x.shape.length - 1]!;
  const rows = x.size / dim;
  const y = Tensor.empty(gpu, x.shape, x.dtype);
  if (rows === 0) return y;
  await dispatch(gpu, {
    label: 'lightning l2 normalize',
    code: l2NormalizeCode(x.dtype),
    buffers: [x, y],
    params: { layout: NORMALIZE_PARAMS, values: { rows, dim, eps: NORMALIZE_EPS } },
    workgroups: Math.ceil(rows / NORMALIZE_WORKGROUP),
  });
  return y;
}

/** Backward of {@link l2NormalizeRows}: dx from x and dy, into a new tensor. */
export async function l2NormalizeRowsBackward(gpu: Gpu, x: Tensor, dy: Tensor): Promise<Tensor> {
  const dim = x.shape[x.shape.length - 1]!;
  const rows = x.size / dim;
  const dx = Tensor.empty(gpu, x.shape, x.dtype);
  if (rows === 0) return dx;
  await dispatch(gpu, {
    label: 'lightning l2 normalize backward',
    code: l2NormalizeBackwardCode(x.dtype),
    buffers: [x, dy, dx],
    params: { layout: NORMALIZE_PARAMS, values: { rows, dim, eps: NORMALIZE_EPS } },
    workgroups: Math.ceil(rows / NORMALIZE_WORKGROUP),
  });
  return dx;
}

/** A one-word overflow flag, zeroed. */
export function overflowFlag(gpu: Gpu): Tensor {
  return Tensor.zeros(gpu, [1]);
}

/** Whether a kernel set the overflow flag (waits for the GPU). */
export async function overflowed(flag: Tensor): Promise<boolean> {
  const bits = new Uint32Array((await flag.read()).buffer);
  return bits[0] !== 0;
}

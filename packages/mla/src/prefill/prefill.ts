/**
 * The prefill path through core's flash attention (tensor cores on the `subgroup-matrix` tier): MLA
 * as MQA with one KV head of dims `d = r + dr`, `dv = r`, over packed sequences whose keys are
 * exactly each sequence's valid ones, bottom-right causal, then the W_UV epilogue.
 */
import {
  dispatch,
  flashAttention,
  type Gpu,
  matrixSubgroupSize,
  memoizeWgsl,
  preferredMatrixConfig,
  Tensor,
} from '@webattn/core';
import type { MlaLaunch } from '../attention/launch-types.js';
import { u32Tensor } from '../u32.js';
import {
  MLA_EPILOGUE_MATRIX_PARAMS,
  type MlaEpilogueMatrixConfig,
  mlaEpilogueMatrixUnsupported,
  mlaEpilogueMatrixWgsl,
  mlaEpilogueMatrixWorkgroups,
} from './epilogue-matrix.wgsl.js';
import {
  MLA_CONCAT_Q_PARAMS,
  MLA_EPILOGUE_PARAMS,
  MLA_GATHER_KEYS_PARAMS,
  MLA_GATHER_WORKGROUP,
  mlaConcatQueryWgsl,
  mlaEpilogueWgsl,
  mlaGatherKeysWgsl,
} from './prefill.wgsl.js';

// Each kernel's WGSL is written once per configuration (see memoizeWgsl).
const mlaConcatQueryCode = memoizeWgsl(mlaConcatQueryWgsl);
const mlaEpilogueMatrixCode = memoizeWgsl(mlaEpilogueMatrixWgsl);
const mlaEpilogueCode = memoizeWgsl(mlaEpilogueWgsl);
const mlaGatherKeysCode = memoizeWgsl(mlaGatherKeysWgsl);

/**
 * The tensor-core epilogue's config where it applies: the adapter's 16×16×16 f16 matrices, dims of
 * whole fragments and at least one block of 16 tokens; else undefined (the scalar epilogue).
 */
function epilogueMatrixConfig(
  gpu: Gpu,
  heads: number,
  r: number,
  dv: number,
  tokens: number,
): MlaEpilogueMatrixConfig | undefined {
  const matrix = preferredMatrixConfig(gpu.caps);
  if (matrix?.M !== 16 || matrix.N !== 16 || matrix.K !== 16 || tokens < 16) return undefined;
  const config = { heads, r, dv, ...matrixSubgroupSize(gpu.caps) };
  return mlaEpilogueMatrixUnsupported(config) === undefined ? config : undefined;
}

/** The cache slot of key j of sequence b, for the gather. */
export type MlaSlotOf = (b: number, j: number) => number;

/** Runs a checked launch through flash attention; returns o `[b, nq, h, dv]`. */
export async function launchMlaFlashPrefill(gpu: Gpu, launch: MlaLaunch, slotOf: MlaSlotOf): Promise<Tensor> {
  const { qLatent, qPe, keys, wUv, lengths, scale, tier } = launch;
  const [batch, nq, heads, r] = qLatent.shape as [number, number, number, number];
  const dr = qPe.shape[3]!;
  const dv = wUv.shape[2]!;
  const dk = r + dr;
  const dtype = qLatent.dtype;
  const o = Tensor.empty(gpu, [batch, nq, heads, dv], dtype);
  if (o.size === 0) return o;
  const slots: number[] = [];
  const cuK = [0];
  const cuQ = [0];
  for (let b = 0; b < batch; b++) {
    for (let j = 0; j < lengths[b]!; j++) slots.push(slotOf(b, j));
    cuK.push(slots.length);
    cuQ.push((b + 1) * nq);
  }
  const tokens = slots.length;
  // Query tokens over the batch, and their (token, head) rows.
  const queries = batch * nq;
  const rows = queries * heads;
  try {
    using q = Tensor.empty(gpu, [queries, heads, dk], dtype);
    await dispatch(gpu, {
      label: 'mla prefill concat q',
      code: mlaConcatQueryCode({ dtype, r, dr }),
      buffers: [qLatent, qPe, q],
      params: { layout: MLA_CONCAT_Q_PARAMS, values: { rows } },
      workgroups: Math.ceil((rows * dk) / MLA_GATHER_WORKGROUP),
    });
    // flash needs at least one key row to bind; an all-empty batch has cuK all 0 and sees nothing.
    using k = Tensor.empty(gpu, [Math.max(tokens, 1), 1, dk], dtype);
    using v = Tensor.empty(gpu, [Math.max(tokens, 1), 1, r], dtype);
    using slotTable = u32Tensor(gpu, slots);
    if (tokens > 0) {
      await dispatch(gpu, {
        label: `mla prefill gather keys ${keys.source}`,
        code: mlaGatherKeysCode({ dtype, r, dr, source: keys.source }),
        buffers:
          keys.source === 'dense' ? [keys.cKv, keys.kPe, slotTable, k, v] : [keys.pages, slotTable, k, v],
        params: { layout: MLA_GATHER_KEYS_PARAMS, values: { tokens } },
        workgroups: Math.ceil((tokens * dk) / MLA_GATHER_WORKGROUP),
      });
    }
    let latent: Tensor;
    if (tokens > 0) {
      const result = await flashAttention(gpu, q, k, v, {
        scale,
        causal: true,
        cuSeqlensQ: cuQ,
        cuSeqlensK: cuK,
        tier,
      });
      result.lse.dispose();
      latent = result.o;
    } else {
      latent = Tensor.zeros(gpu, [queries, heads, r], dtype);
    }
    using _latent = latent;
    const matrix = tier === 'subgroup-matrix' ? epilogueMatrixConfig(gpu, heads, r, dv, queries) : undefined;
    await dispatch(
      gpu,
      matrix
        ? {
            label: 'mla epilogue matrix',
            code: mlaEpilogueMatrixCode(matrix),
            buffers: [latent, wUv, o],
            params: { layout: MLA_EPILOGUE_MATRIX_PARAMS, values: { tokens: queries } },
            workgroups: mlaEpilogueMatrixWorkgroups(matrix, queries),
          }
        : {
            label: 'mla epilogue',
            code: mlaEpilogueCode({ dtype, heads, r, dv }),
            buffers: [latent, wUv, o],
            params: { layout: MLA_EPILOGUE_PARAMS, values: { rows } },
            workgroups: rows,
          },
    );
    return o;
  } catch (error) {
    o.dispose();
    throw error;
  }
}

/** Host side of selected-block attention. */
import {
  type Capabilities,
  dispatch,
  type Gpu,
  matrixSubgroupSize,
  preferredMatrixConfig,
  type SubgroupMatrixConfig,
  Tensor,
  type Tier,
} from '@webattn/core';
import type { NsaConfig } from '../config.js';
import type { NsaLayout } from '../layout.js';
import { SELECTED_PARAMS, SELECTED_WORKGROUP, selectedAttentionWgsl } from './selected.wgsl.js';
import {
  SELECTED_BACKWARD_WORKGROUP,
  selectedDkWgsl,
  selectedDqWgsl,
  selectedDvWgsl,
  selectedStatsWgsl,
} from './selected-backward.wgsl.js';
import { selectedGroupSharedBytes, selectedGroupWgsl } from './selected-group.wgsl.js';
import {
  type SelectedMatrixConfig,
  selectedMatrixSharedBytes,
  selectedMatrixUnsupported,
  selectedMatrixWgsl,
} from './selected-matrix.wgsl.js';

/**
 * The tensor-core kernel's shape for this config: the largest key tile that divides the block size
 * and fits the workgroup memory, or undefined when none does. `assumeMatrix` stands in for an
 * adapter that lists no matrix shape (the null backend, which compiles them all).
 */
export function selectedMatrixConfig(
  caps: Capabilities,
  config: Pick<NsaConfig, 'headDim' | 'vHeadDim' | 'topN' | 'heads' | 'kvHeads' | 'blockSize'>,
  assumeMatrix?: Pick<SubgroupMatrixConfig, 'M' | 'N' | 'K'>,
): SelectedMatrixConfig | undefined {
  const matrix = preferredMatrixConfig(caps) ?? assumeMatrix;
  if (!matrix) return undefined;
  for (const tile of [64, 32, 16]) {
    const c: SelectedMatrixConfig = {
      d: config.headDim,
      dv: config.vHeadDim,
      topN: config.topN,
      group: config.heads / config.kvHeads,
      blockSize: config.blockSize,
      matrix,
      ...matrixSubgroupSize(caps),
      tile,
    };
    const fits = selectedMatrixSharedBytes(c) <= caps.limits.maxComputeWorkgroupStorageSize;
    if (fits && selectedMatrixUnsupported(c) === undefined) return c;
  }
  return undefined;
}

/** The forward kernel a tier runs: tensor cores where they fit, else group-centric or per row. */
function selectedForwardKernel(gpu: Gpu, config: NsaConfig, tier: Tier, dtype: Tensor['dtype']) {
  const matrix = tier === 'subgroup-matrix' ? selectedMatrixConfig(gpu.caps, config) : undefined;
  if (matrix) return { code: selectedMatrixWgsl(matrix), groupCentric: true };
  const kernel = {
    dtype,
    d: config.headDim,
    dv: config.vHeadDim,
    topN: config.topN,
    group: config.heads / config.kvHeads,
  };
  // The group-centric kernel reads each key once per group; the row kernel is the fallback for
  // groups whose scores do not fit the device's workgroup memory.
  return selectedGroupSharedBytes(kernel) <= gpu.caps.limits.maxComputeWorkgroupStorageSize
    ? { code: selectedGroupWgsl(kernel), groupCentric: true }
    : { code: selectedAttentionWgsl(kernel), groupCentric: false };
}

/** Output of the selected branch: `o` like q's rows with dv columns, and its natural-log lse `[tokens, heads]`. */
export interface SelectedAttention {
  o: Tensor;
  lse: Tensor;
}

/** Attention of every query over the blocks selected for its KV head. */
export async function selectedAttention(
  gpu: Gpu,
  q: Tensor,
  k: Tensor,
  v: Tensor,
  selection: Tensor,
  meta: { tensor: Tensor; tokenTable: number },
  layout: NsaLayout,
  config: NsaConfig,
  tier: Tier,
): Promise<SelectedAttention> {
  const o = Tensor.empty(gpu, [...layout.tokenDims, config.heads, config.vHeadDim], q.dtype);
  const lse = Tensor.empty(gpu, [layout.tokens, config.heads]);
  const kernel = selectedForwardKernel(gpu, config, tier, q.dtype);
  await dispatch(gpu, {
    label: 'nsa selected attention',
    code: kernel.code,
    buffers: [q, k, v, selection, meta.tensor, o, lse],
    params: {
      layout: SELECTED_PARAMS,
      values: {
        tokens: layout.tokens,
        heads: config.heads,
        kvHeads: config.kvHeads,
        group: config.heads / config.kvHeads,
        scale: config.scale,
        blockSize: config.blockSize,
        tokenTable: meta.tokenTable,
      },
    },
    // Group kernels: a workgroup per (token, KV head); the row kernel: an invocation per (token, head).
    workgroups: kernel.groupCentric
      ? layout.tokens * config.kvHeads
      : Math.ceil((layout.tokens * config.heads) / SELECTED_WORKGROUP),
  });
  return { o, lse };
}

/** Gradients of the selected branch's inputs. */
export interface SelectedGradients {
  dq: Tensor;
  dk: Tensor;
  dv: Tensor;
}

/** Backward of {@link selectedAttention} given its output, lse and upstream gradient. */
export async function selectedAttentionBackward(
  gpu: Gpu,
  inputs: { q: Tensor; k: Tensor; v: Tensor; selection: Tensor; o: Tensor; lse: Tensor; dO: Tensor },
  meta: { tensor: Tensor; tokenTable: number },
  layout: NsaLayout,
  config: NsaConfig,
): Promise<SelectedGradients> {
  const { q, k, v, selection, o, lse, dO } = inputs;
  const kernel = { dtype: q.dtype, d: config.headDim, dv: config.vHeadDim, topN: config.topN };
  const params = {
    layout: SELECTED_PARAMS,
    values: {
      tokens: layout.tokens,
      heads: config.heads,
      kvHeads: config.kvHeads,
      group: config.heads / config.kvHeads,
      scale: config.scale,
      blockSize: config.blockSize,
      tokenTable: meta.tokenTable,
    },
  };
  const rows = layout.tokens * config.heads;
  const keyRows = layout.tokens * config.kvHeads;
  using stats = Tensor.empty(gpu, [2, layout.tokens, config.heads]);
  const dq = Tensor.empty(gpu, q.shape, q.dtype);
  const dk = Tensor.empty(gpu, k.shape, k.dtype);
  const dv = Tensor.empty(gpu, v.shape, v.dtype);
  const launches: [string, string, Tensor[], number][] = [
    ['stats', selectedStatsWgsl(kernel), [o, dO, lse, stats], rows],
    ['dq', selectedDqWgsl(kernel), [q, k, v, selection, meta.tensor, dO, stats, dq], rows],
    ['dk', selectedDkWgsl(kernel), [q, k, v, selection, meta.tensor, dO, stats, dk], keyRows],
    ['dv', selectedDvWgsl(kernel), [q, k, selection, meta.tensor, dO, stats, dv], keyRows],
  ];
  for (const [name, code, buffers, invocations] of launches) {
    await dispatch(gpu, {
      label: `nsa selected attention ${name}`,
      code,
      buffers,
      params,
      workgroups: Math.ceil(invocations / SELECTED_BACKWARD_WORKGROUP),
    });
  }
  return { dq, dk, dv };
}

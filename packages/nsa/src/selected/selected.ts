/** Host side of selected-block attention. */
import { dispatch, type Gpu, Tensor } from '@webattn/core';
import type { NsaConfig } from '../config.js';
import type { NsaLayout } from '../layout.js';
import { SELECTED_PARAMS, SELECTED_WORKGROUP, selectedAttentionWgsl } from './selected.wgsl.js';

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
): Promise<SelectedAttention> {
  const o = Tensor.empty(gpu, [...layout.tokenDims, config.heads, config.vHeadDim], q.dtype);
  const lse = Tensor.empty(gpu, [layout.tokens, config.heads]);
  await dispatch(gpu, {
    label: 'nsa selected attention',
    code: selectedAttentionWgsl({
      dtype: q.dtype,
      d: config.headDim,
      dv: config.vHeadDim,
      topN: config.topN,
    }),
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
    workgroups: Math.ceil((layout.tokens * config.heads) / SELECTED_WORKGROUP),
  });
  return { o, lse };
}

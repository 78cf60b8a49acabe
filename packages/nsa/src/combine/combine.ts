/** Host side of the gated combine. */
import { dispatch, type Gpu, Tensor } from '@webattn/core';
import { COMBINE_PARAMS, COMBINE_WORKGROUP, combineWgsl } from './combine.wgsl.js';

/** The three branch outputs, each `[...tokens, heads, dv]`; `compressed` is absent when no block exists. */
export interface NsaBranchOutputs {
  compressed?: Tensor;
  selected: Tensor;
  window: Tensor;
}

/** `σ(g0)·compressed + σ(g1)·selected + σ(g2)·window`, shaped like the branches. */
export async function combineBranches(gpu: Gpu, gate: Tensor, branches: NsaBranchOutputs): Promise<Tensor> {
  const o = Tensor.empty(gpu, branches.selected.shape, branches.selected.dtype);
  const dv = branches.selected.shape.at(-1)!;
  const rows = branches.selected.size / dv;
  await dispatch(gpu, {
    label: 'nsa combine',
    code: combineWgsl(o.dtype, branches.compressed !== undefined),
    buffers: [
      gate,
      branches.selected,
      branches.window,
      o,
      ...(branches.compressed ? [branches.compressed] : []),
    ],
    params: { layout: COMBINE_PARAMS, values: { rows, dv } },
    workgroups: Math.ceil((rows * dv) / COMBINE_WORKGROUP),
  });
  return o;
}

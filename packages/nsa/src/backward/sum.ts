/** Host side of the gradient sum. */
import { dispatch, type Gpu, Tensor } from '@webattn/core';
import { SUM_PARAMS, SUM_WORKGROUP, sumWgsl } from './sum.wgsl.js';

/** The elementwise sum of same-shaped tensors (one is returned as is), as a new tensor. */
export async function sumTensors(gpu: Gpu, terms: readonly Tensor[]): Promise<Tensor> {
  const [first] = terms;
  if (!first) throw new Error('sumTensors: no terms');
  const out = Tensor.empty(gpu, first.shape, first.dtype);
  await dispatch(gpu, {
    label: 'nsa gradient sum',
    code: sumWgsl(first.dtype, terms.length),
    buffers: [...terms, out],
    params: { layout: SUM_PARAMS, values: { count: first.size } },
    workgroups: Math.ceil(first.size / SUM_WORKGROUP),
  });
  return out;
}

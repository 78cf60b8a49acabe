/** Host side of the gradient sum. */
import { dispatch, type Gpu, memoizeWgsl, Tensor, vec4uElements } from '@webattn/core';
import { SUM_PARAMS, SUM_WORKGROUP, sumWgsl } from './sum.wgsl.js';

// Each kernel's WGSL is written once per configuration (see memoizeWgsl).
const sumCode = memoizeWgsl(sumWgsl);

/**
 * The elementwise sum of same-shaped tensors, as a new tensor: 16-byte vectors of each where their
 * size is a whole number of them, else one element per invocation.
 */
export async function sumTensors(gpu: Gpu, terms: readonly Tensor[]): Promise<Tensor> {
  const [first] = terms;
  if (!first) throw new Error('sumTensors: no terms');
  const out = Tensor.empty(gpu, first.shape, first.dtype);
  const width = vec4uElements(first.dtype);
  const vectors = first.size % width === 0;
  const count = vectors ? first.size / width : first.size;
  await dispatch(gpu, {
    label: 'nsa gradient sum',
    code: sumCode(first.dtype, terms.length, vectors),
    buffers: [...terms, out],
    params: { layout: SUM_PARAMS, values: { count } },
    workgroups: Math.ceil(count / SUM_WORKGROUP),
  });
  return out;
}

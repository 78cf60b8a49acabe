/** All-or-nothing allocation of a kernel's outputs and scratch. */
import type { Dtype, Gpu } from '@webattn/core';
import { Tensor } from '@webattn/core';

/**
 * Allocates a tensor per entry, or none: when one fails (e.g. over the device's binding limit,
 * a `limit-exceeded` WebAttnError) the ones already made are freed before the error propagates.
 */
export function allocate<K extends string>(
  gpu: Gpu,
  specs: Readonly<Record<K, readonly [readonly number[], Dtype]>>,
): Record<K, Tensor> {
  const made: Partial<Record<K, Tensor>> = {};
  try {
    for (const key of Object.keys(specs) as K[]) {
      const [shape, dtype] = specs[key];
      made[key] = Tensor.empty(gpu, shape, dtype);
    }
  } catch (error) {
    for (const t of Object.values(made) as Tensor[]) t.dispose();
    throw error;
  }
  return made as Record<K, Tensor>;
}

/** The four gradients of a masked call, shaped and typed like q, k, v and the mask. */
export function allocateGradients(
  gpu: Gpu,
  x: { q: Tensor; k: Tensor; v: Tensor; mask: Tensor },
  dtype: Dtype,
): { dq: Tensor; dk: Tensor; dv: Tensor; dm: Tensor } {
  return allocate(gpu, {
    dq: [x.q.shape, dtype],
    dk: [x.k.shape, dtype],
    dv: [x.v.shape, dtype],
    dm: [x.mask.shape, dtype],
  });
}

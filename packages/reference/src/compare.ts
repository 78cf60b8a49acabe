/** Error measures between a reference result and a kernel's. */
import type { Tolerance } from './tolerance.js';

/** Outcome of {@link compare}: the measured errors, the bounds they were held to and the verdict. */
export interface Comparison {
  /** Largest absolute difference; matching infinities count as 0, a NaN makes it NaN. */
  maxAbs: number;
  /** RMS of the difference over the RMS of the finite reference entries. */
  rmsRel: number;
  /** The bounds applied. */
  tolerance: Tolerance;
  /** Entries that are NaN or infinite in the result but not the same infinity in the reference. */
  nonFinite: number;
  /** Whether there is no unexpected non-finite entry and both errors are within their bounds. */
  ok: boolean;
}

/** Below this the reference is all zeros and the relative error becomes an absolute one. */
const TINY_NORM = 1e-30;

function assertSameLength(ref: ArrayLike<number>, actual: ArrayLike<number>): void {
  if (ref.length !== actual.length) {
    throw new Error(`compare: the reference has ${ref.length} elements, the result ${actual.length}`);
  }
}

/**
 * `actual - ref`, except that the same infinity on both sides differs by 0: a row that sees no key
 * has lse = -inf in the reference, and a kernel that writes -inf there is right.
 */
function difference(ref: number, actual: number): number {
  return ref === actual ? 0 : actual - ref;
}

/**
 * Largest `|ref[i] - actual[i]|`; NaN if any difference is NaN.
 *
 * @throws Error if the lengths differ.
 */
export function maxAbsError(ref: ArrayLike<number>, actual: ArrayLike<number>): number {
  assertSameLength(ref, actual);
  let max = 0;
  for (let i = 0; i < ref.length; i++) {
    const error = Math.abs(difference(ref[i]!, actual[i]!));
    // Written so that a NaN replaces the maximum instead of being skipped by a comparison.
    if (!(error <= max)) max = error;
  }
  return max;
}

/**
 * `sqrt(mean((ref - actual)²)) / max(sqrt(mean(ref²)), 1e-30)`. The norm of the reference counts only
 * its finite entries (as zeros otherwise), so that a few -inf lse entries do not make every error
 * relative to infinity; 0 for empty arrays.
 *
 * @throws Error if the lengths differ.
 */
export function rmsRelativeError(ref: ArrayLike<number>, actual: ArrayLike<number>): number {
  assertSameLength(ref, actual);
  if (ref.length === 0) return 0;
  let squaredError = 0;
  let squaredNorm = 0;
  for (let i = 0; i < ref.length; i++) {
    const r = ref[i]!;
    const d = difference(r, actual[i]!);
    squaredError += d * d;
    if (Number.isFinite(r)) squaredNorm += r * r;
  }
  return Math.sqrt(squaredError / ref.length) / Math.max(Math.sqrt(squaredNorm / ref.length), TINY_NORM);
}

/**
 * Compares a result with the reference. A NaN in the result is always unexpected, since the
 * reference never produces one on purpose.
 *
 * @param ref - The reference values.
 * @param actual - The values under test.
 * @param tolerance - Bounds for both errors, usually from {@link toleranceFor}.
 * @throws Error if the lengths differ.
 */
export function compare(ref: ArrayLike<number>, actual: ArrayLike<number>, tolerance: Tolerance): Comparison {
  assertSameLength(ref, actual);
  let nonFinite = 0;
  for (let i = 0; i < ref.length; i++) {
    const a = actual[i]!;
    if (!Number.isFinite(a) && a !== ref[i]) nonFinite++;
  }
  const maxAbs = maxAbsError(ref, actual);
  const rmsRel = rmsRelativeError(ref, actual);
  // Written as `<=` so that NaN errors fail.
  const ok = nonFinite === 0 && rmsRel <= tolerance.rmsRel && maxAbs <= tolerance.maxAbs;
  return { maxAbs, rmsRel, tolerance, nonFinite, ok };
}

/** Error measures between a reference result and a kernel's. */
import type { Tolerance } from './tolerance.js';

/** Outcome of comparing a result with the reference. */
export interface Comparison {
  /** Largest absolute difference (matching infinities count as 0). */
  maxAbs: number;
  /** RMS of the difference over RMS of the reference. */
  rmsRel: number;
  tolerance: Tolerance;
  /** Entries that are NaN or infinite in the result but not identically so in the reference. */
  nonFinite: number;
  ok: boolean;
}

function assertSameLength(ref: ArrayLike<number>, actual: ArrayLike<number>): void {
  if (ref.length !== actual.length) {
    throw new Error(`compare: the reference has ${ref.length} elements, the result ${actual.length}`);
  }
}

/** Per-element difference, where equal infinities (e.g. lse = -inf for a row with no key) differ by 0. */
function difference(r: number, a: number): number {
  return r === a ? 0 : a - r;
}

/** Largest absolute difference. */
export function maxAbsError(ref: ArrayLike<number>, actual: ArrayLike<number>): number {
  assertSameLength(ref, actual);
  let max = 0;
  for (let i = 0; i < ref.length; i++) {
    const e = Math.abs(difference(ref[i]!, actual[i]!));
    if (!(e <= max)) max = e; // NaN wins
  }
  return max;
}

/** sqrt(mean((ref - actual)²)) / sqrt(mean(ref²)), over the finite reference entries. */
export function rmsRelativeError(ref: ArrayLike<number>, actual: ArrayLike<number>): number {
  assertSameLength(ref, actual);
  let err = 0;
  let norm = 0;
  for (let i = 0; i < ref.length; i++) {
    const r = ref[i]!;
    const d = difference(r, actual[i]!);
    err += d * d;
    if (Number.isFinite(r)) norm += r * r;
  }
  if (ref.length === 0) return 0;
  return Math.sqrt(err / ref.length) / Math.max(Math.sqrt(norm / ref.length), 1e-30);
}

/** Compares `actual` with `ref` under `tolerance`. */
export function compare(ref: ArrayLike<number>, actual: ArrayLike<number>, tolerance: Tolerance): Comparison {
  assertSameLength(ref, actual);
  let nonFinite = 0;
  for (let i = 0; i < ref.length; i++) {
    const a = actual[i]!;
    if (!Number.isFinite(a) && a !== ref[i]) nonFinite++;
  }
  const maxAbs = maxAbsError(ref, actual);
  const rmsRel = rmsRelativeError(ref, actual);
  const ok = nonFinite === 0 && rmsRel <= tolerance.rmsRel && maxAbs <= tolerance.maxAbs;
  return { maxAbs, rmsRel, tolerance, nonFinite, ok };
}

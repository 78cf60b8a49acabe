/** Inputs and checks shared by the NSA tests. */
import { expect } from 'vitest';
import { type NsaCompressor, type NsaConfig, type NsaInputs, type NsaShape, randn } from '../../src/index.js';

/**
 * Small blocks so that a dozen tokens hold several compressed blocks (l = 4, s = 2), selection blocks
 * (L = 4), one arg-max pick besides the forced blocks (topN 3 = 1 init + 1 local + 1), and a window
 * (6) shorter than the sequence.
 */
export const SMALL: NsaConfig = {
  kernelSize: 4,
  stride: 2,
  selectSize: 4,
  topN: 3,
  windowSize: 6,
  initBlocks: 1,
  localBlocks: 1,
};

/** A compressor of the given method with random parameters for blocks of `l` tokens of `dim`. */
export function randomCompressor(
  method: NsaCompressor['method'],
  l: number,
  dim: number,
  seed: number,
): NsaCompressor {
  switch (method) {
    case 'mean':
      return { method };
    case 'weighted':
      return { method, weight: f64(randn(l, seed)), pe: f64(randn(l * dim, seed + 1)) };
    case 'linear':
      // Scaled by 1/sqrt(fan-in) so that the compressed keys stay O(1).
      return { method, weight: f64(randn(dim * l * dim, seed, 1 / Math.sqrt(l * dim))) };
    default:
      return { method, weight: f64(randn(2 * dim * l * dim, seed, 1 / Math.sqrt(l * dim))) };
  }
}

/** f64 copies, so that finite differences perturb the very values the reference reads. */
export function f64(x: ArrayLike<number>): Float64Array {
  return Float64Array.from(x);
}

/** Random dense inputs (and a random dO) for a shape, in f64. */
export function randomInputs(
  s: NsaShape,
  seed: number,
  compressors: { k?: NsaCompressor; v?: NsaCompressor } = {},
): NsaInputs & { q: Float64Array; k: Float64Array; v: Float64Array; gates: Float64Array; dO: Float64Array } {
  const rows = s.batch * s.n;
  return {
    q: f64(randn(rows * s.hq * s.dqk, seed)),
    k: f64(randn(rows * s.hkv * s.dqk, seed + 1)),
    v: f64(randn(rows * s.hkv * s.dv, seed + 2)),
    gates: f64(randn(rows * s.hq * 3, seed + 3)),
    dO: f64(randn(rows * s.hq * s.dv, seed + 4)),
    ...(compressors.k && { kCompressor: compressors.k }),
    ...(compressors.v && { vCompressor: compressors.v }),
  };
}

/**
 * Checks every element of an analytic gradient against central finite differences of `loss`,
 * perturbing `input` in place. In f64 the truncation error of a step of 1e-4 is about 1e-8, so the
 * bound can be tight: 1e-5 relative to the gradient, or absolute for gradients below 1e-2.
 */
export function expectGradient(
  label: string,
  input: Float64Array,
  analytic: ArrayLike<number>,
  loss: () => number,
) {
  const step = 1e-4;
  expect(analytic.length, `${label} length`).toBe(input.length);
  for (let e = 0; e < input.length; e++) {
    const kept = input[e]!;
    input[e] = kept + step;
    const up = loss();
    input[e] = kept - step;
    const down = loss();
    input[e] = kept;
    const numeric = (up - down) / (2 * step);
    const error = Math.abs(analytic[e]! - numeric) / Math.max(Math.abs(numeric), 1e-2);
    expect(error, `${label}[${e}]: analytic ${analytic[e]}, numeric ${numeric}`).toBeLessThan(1e-5);
  }
}

/** Rows of one (sequence, token) of a token-major `[batch, n, heads, dim]` array, one per head. */
export function tokenRow(x: ArrayLike<number>, b: number, t: number, n: number, perToken: number): number[] {
  return Array.from({ length: perToken }, (_, e) => x[(b * n + t) * perToken + e]!);
}

/** `cuSeqlens` of sequences of the given lengths: 0, then the running sums. */
export function cumulative(lengths: readonly number[]): number[] {
  const cu = [0];
  for (const length of lengths) cu.push(cu.at(-1)! + length);
  return cu;
}

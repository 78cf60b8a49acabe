/** Inputs shared by the linear attention tests. */
import { expect } from 'vitest';
import {
  type LinearAttentionShape,
  type MaskedLinearAttentionOptions,
  maxAbsError,
  randn,
  seededUniform,
} from '../../src/index.js';
import { f64 } from '../nsa/helpers.js';

/** Random q, k, v and dO of a shape, in f64 so that finite differences see every digit. */
export function randomQkv(s: LinearAttentionShape, seed: number) {
  const tokens = s.batch * s.n;
  return {
    q: f64(randn(tokens * s.hq * s.dk, seed)),
    k: f64(randn(tokens * s.hkv * s.dk, seed + 1)),
    v: f64(randn(tokens * s.hkv * s.dv, seed + 2)),
    dO: f64(randn(tokens * s.hq * s.dv, seed + 3)),
  };
}

/** The seed's random mask: each entry 0 or 1 with even odds, `[maskBatch, maskHeads, n, n]`. */
export function randomBinaryMask(s: MaskedLinearAttentionOptions, seed: number): Float64Array {
  const next = seededUniform(seed);
  return Float64Array.from({ length: s.maskBatch * s.maskHeads * s.n * s.n }, () => (next() < 0.5 ? 0 : 1));
}

/** A random real mask, `[maskBatch, maskHeads, n, n]`. */
export function randomRealMask(s: MaskedLinearAttentionOptions, seed: number): Float64Array {
  return f64(randn(s.maskBatch * s.maskHeads * s.n * s.n, seed));
}

/**
 * TransnormerLLM's decays for `heads` heads, a power of two, from the spec's formula:
 * `λ_h = exp(-2^(-8(h+1)/H))`, written out here so that the tests do not take it from the code.
 */
export function specDecays(heads: number): Float64Array {
  return Float64Array.from({ length: heads }, (_, h) => Math.exp(-(2 ** ((-8 * (h + 1)) / heads))));
}

/** `Σ_e a[e] · b[e]` in f64. */
export function inner(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let sum = 0;
  for (let e = 0; e < a.length; e++) sum += a[e]! * b[e]!;
  return sum;
}

/** Elements `from .. to` of an array, as a plain array. */
export function range(x: ArrayLike<number>, from: number, to: number): number[] {
  return Array.from(x).slice(from, to);
}

/**
 * Expects `actual` to equal `ref` up to f32 rounding: the largest difference at most `rel` times
 * the largest reference entry (or absolute below 1).
 */
export function expectClose(label: string, ref: ArrayLike<number>, actual: ArrayLike<number>, rel = 2e-6) {
  expect(actual.length, `${label} length`).toBe(ref.length);
  const size = Math.max(1, ...Array.from(ref, Math.abs));
  expect(maxAbsError(ref, actual) / size, label).toBeLessThan(rel);
}

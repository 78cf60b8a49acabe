/** Dims, weights, inputs and checks shared by the MLA tests. */
import { expect } from 'vitest';
import { compare, type MlaDims, type MlaWeights, randn, type Tolerance } from '../../src/index.js';

/**
 * Both sides compute in f64 and round once to f32, so they may differ by an ulp or two of f32
 * (6e-8 relative); anything wrong in the math is orders of magnitude above this.
 */
export const ROUNDING: Tolerance = { rmsRel: 1e-6, maxAbs: 1e-6 };

/** Small dims with a query rank; every size distinct, so that a swapped size shows up as a shape error. */
export const WITH_Q_LORA: MlaDims = {
  hiddenSize: 24,
  heads: 3,
  qLoraRank: 18,
  kvLoraRank: 20,
  qkNopeHeadDim: 8,
  qkRopeHeadDim: 6,
  vHeadDim: 5,
};

/** Small dims without a query rank (q_proj straight from the hidden state, as DeepSeek-V2-Lite). */
export const WITHOUT_Q_LORA: MlaDims = {
  hiddenSize: 16,
  heads: 2,
  kvLoraRank: 16,
  qkNopeHeadDim: 6,
  qkRopeHeadDim: 4,
  vHeadDim: 7,
};

/** Four heads and rank 32, the upper end of the small sizes. */
export const FOUR_HEADS: MlaDims = {
  hiddenSize: 32,
  heads: 4,
  qLoraRank: 24,
  kvLoraRank: 32,
  qkNopeHeadDim: 8,
  qkRopeHeadDim: 8,
  vHeadDim: 8,
};

/** A projection weight `[out, in]` scaled by 1/sqrt(in), so that activations stay O(1). */
function projection(out: number, inFeatures: number, seed: number): Float32Array {
  return randn(out * inFeatures, seed, 1 / Math.sqrt(inFeatures));
}

/** A norm scale near 1, so that a norm applied without its weight shows up. */
function normScale(size: number, seed: number): Float32Array {
  return randn(size, seed, 0.2).map((x) => 1 + x);
}

/** Random weights of the HF layouts for `dims`. */
export function randomWeights(dims: MlaDims, seed: number): MlaWeights {
  const { hiddenSize, heads, qLoraRank, kvLoraRank, qkNopeHeadDim, qkRopeHeadDim, vHeadDim } = dims;
  const qOut = heads * (qkNopeHeadDim + qkRopeHeadDim);
  const query =
    qLoraRank === undefined
      ? { qProj: projection(qOut, hiddenSize, seed) }
      : {
          qAProj: projection(qLoraRank, hiddenSize, seed),
          qALayernorm: normScale(qLoraRank, seed + 1),
          qBProj: projection(qOut, qLoraRank, seed + 2),
        };
  return {
    ...query,
    kvAProjWithMqa: projection(kvLoraRank + qkRopeHeadDim, hiddenSize, seed + 3),
    kvALayernorm: normScale(kvLoraRank, seed + 4),
    kvBProj: projection(heads * (qkNopeHeadDim + vHeadDim), kvLoraRank, seed + 5),
    oProj: projection(hiddenSize, heads * vHeadDim, seed + 6),
  };
}

/** Random hidden states, `[tokens, hiddenSize]`. */
export function randomHidden(dims: MlaDims, tokens: number, seed: number): Float32Array {
  return randn(tokens * dims.hiddenSize, seed);
}

/** Rows `from .. to` of a row-major array with `width` values per row. */
export function rows(x: ArrayLike<number>, from: number, to: number, width: number): number[] {
  return Array.from(x).slice(from * width, to * width);
}

/** Cumulative sums starting at 0: where each sequence's tokens start in a packed array. */
export function starts(lengths: readonly number[]): number[] {
  const out = [0];
  for (const n of lengths) out.push(out.at(-1)! + n);
  return out;
}

/** Asserts `actual` matches `ref` within `tolerance`, showing the measured errors on failure. */
export function expectClose(actual: ArrayLike<number>, ref: ArrayLike<number>, tolerance = ROUNDING): void {
  const result = compare(ref, actual, tolerance);
  expect(result.ok, JSON.stringify(result)).toBe(true);
}

/**
 * HF Llama / MiniCPM3 rope of one vector: `m · (x · cos(emb) + rotate_half(x) · sin(emb))` with
 * `emb = cat(freqs, freqs)`, `freqs = pos · invFreq`.
 */
export function hfRotateHalf(v: number[], pos: number, invFreq: ArrayLike<number>, m = 1): number[] {
  const half = v.length / 2;
  const emb = [...Array.from(invFreq), ...Array.from(invFreq)].map((f) => pos * f);
  const rotated = [...v.slice(half).map((e) => -e), ...v.slice(0, half)];
  return v.map((e, i) => m * (e * Math.cos(emb[i]!) + rotated[i]! * Math.sin(emb[i]!)));
}

/** DeepSeek's rope of one vector: pairs as complex numbers `x[2k] + i x[2k+1]` times `m · e^{i · pos · f_k}`. */
export function complexInterleaved(v: number[], pos: number, invFreq: ArrayLike<number>, m = 1): number[] {
  const out: number[] = [];
  for (let k = 0; k < v.length / 2; k++) {
    const [re, im] = [v[2 * k]!, v[2 * k + 1]!];
    const [c, s] = [m * Math.cos(pos * invFreq[k]!), m * Math.sin(pos * invFreq[k]!)];
    out.push(re * c - im * s, re * s + im * c);
  }
  return out;
}

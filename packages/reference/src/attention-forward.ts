/**
 * Dense softmax attention forward, written for clarity rather than speed: every score of every row
 * is computed, masked, and exponentiated in f64.
 */

import { logSumExp, maskedScoreRow } from './attention-scores.js';
import type { AttentionOptions } from './attention-shape.js';
import { checkLength, resolveAttention, tokenOffset } from './attention-shape.js';

/** What the attention forward returns. */
export interface AttentionOutput {
  /** Output, `[batch, n, hq, dv]` (`[totalQ, hq, dv]` when packed). */
  o: Float32Array;
  /** Natural-log sum of exp of each row's scaled, masked scores: `[batch, hq, n]` (`[hq, totalQ]` when packed). */
  lse: Float32Array;
}

/**
 * The forward in f64 from end to end, outputs included. Tests take finite differences of it, which
 * rounding the outputs to f32 would drown in noise; everything else wants {@link attentionForward}.
 */
export function attentionForwardF64(
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
  options: AttentionOptions,
): { o: Float64Array; lse: Float64Array } {
  const shape = resolveAttention(options);
  const { batch, n, nk, hq, hkv, d, dv, group } = shape;
  checkLength('q', q, [batch, n, hq, d]);
  checkLength('k', k, [batch, nk, hkv, d]);
  checkLength('v', v, [batch, nk, hkv, dv]);
  const o = new Float64Array(batch * n * hq * dv);
  const lse = new Float64Array(batch * hq * n);
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < hq; h++) {
      const kvHead = Math.floor(h / group);
      for (let i = 0; i < n; i++) {
        const scores = maskedScoreRow(q, k, shape, b, h, i);
        const rowLse = logSumExp(scores);
        lse[(b * hq + h) * n + i] = rowLse;
        // A row that sees no key keeps o = 0 rather than 0/0.
        if (rowLse === Number.NEGATIVE_INFINITY) continue;
        const oBase = tokenOffset(b, i, h, n, hq, dv);
        for (let j = 0; j < nk; j++) {
          const p = Math.exp(scores[j]! - rowLse);
          if (p === 0) continue;
          const vBase = tokenOffset(b, j, kvHead, nk, hkv, dv);
          for (let c = 0; c < dv; c++) o[oBase + c]! += p * v[vBase + c]!;
        }
      }
    }
  }
  return { o, lse };
}

/**
 * `o = softmax(scale · q kᵀ + mask) v` per query head, and each row's log-sum-exp, accumulated in f64
 * and rounded once to f32. A row that sees no key gets o = 0 and lse = -Infinity, never NaN.
 *
 * @param q - `[batch, n, hq, d]`.
 * @param k - `[batch, nk, hkv, d]`.
 * @param v - `[batch, nk, hkv, dv]`.
 * @param options - Sizes, scale and mask; see {@link isKeyVisible} for the mask.
 * @throws Error if a size is invalid, hq is not a multiple of hkv, or an input's length does not match.
 */
export function attentionForward(
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
  options: AttentionOptions,
): AttentionOutput {
  const { o, lse } = attentionForwardF64(q, k, v, options);
  return { o: Float32Array.from(o), lse: Float32Array.from(lse) };
}

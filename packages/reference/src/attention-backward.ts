/** Dense softmax attention backward, by the textbook formulas and in f64. */

import { addRowGradients, type RowKey } from './attention-row-gradients.js';
import { maskedScoreRow } from './attention-scores.js';
import type { AttentionOptions } from './attention-shape.js';
import { checkLength, resolveAttention, tokenOffset } from './attention-shape.js';

/** Gradients of the attention inputs, each the shape of its input. */
export interface AttentionGradients {
  /** Gradient of q. */
  dq: Float32Array;
  /** Gradient of k, summed over the query heads of each GQA group. */
  dk: Float32Array;
  /** Gradient of v, summed over the query heads of each GQA group. */
  dv: Float32Array;
}

/**
 * Gradients of a scalar loss L given `dO = ∂L/∂o`. P is recomputed from the scores and the given
 * lse, as a FlashAttention backward does, then, per query head:
 * `dV = Pᵀ dO`, `dP = dO Vᵀ`, `dS = P ∘ (dP - rowsum(dO ∘ O))`, `dQ = scale · dS K`,
 * `dK = scale · dSᵀ Q`, with dK and dV summed over each GQA group. Rows with lse = -Infinity (no
 * visible key) contribute nothing.
 *
 * @param q - `[batch, n, hq, d]`.
 * @param k - `[batch, nk, hkv, d]`.
 * @param v - `[batch, nk, hkv, dv]`.
 * @param o - The forward's output, `[batch, n, hq, dv]`.
 * @param lse - The forward's log-sum-exp, `[batch, hq, n]`.
 * @param dO - Gradient of the loss with respect to o, `[batch, n, hq, dv]`.
 * @param options - The options the forward ran with.
 * @throws Error if a size is invalid, hq is not a multiple of hkv, or an input's length does not match.
 */
export function attentionBackward(
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
  o: ArrayLike<number>,
  lse: ArrayLike<number>,
  dO: ArrayLike<number>,
  options: AttentionOptions,
): AttentionGradients {
  const shape = resolveAttention(options);
  const { batch, n, nk, hq, hkv, d, dv, scale, group } = shape;
  checkLength('q', q, [batch, n, hq, d]);
  checkLength('k', k, [batch, nk, hkv, d]);
  checkLength('v', v, [batch, nk, hkv, dv]);
  checkLength('o', o, [batch, n, hq, dv]);
  checkLength('lse', lse, [batch, hq, n]);
  checkLength('dO', dO, [batch, n, hq, dv]);
  const sums = {
    q,
    k,
    v,
    o,
    dO,
    dq: new Float64Array(q.length),
    dk: new Float64Array(k.length),
    dv: new Float64Array(v.length),
  };
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < hq; h++) {
      const kvHead = Math.floor(h / group);
      for (let i = 0; i < n; i++) {
        const rowLse = lse[(b * hq + h) * n + i]!;
        if (rowLse === Number.NEGATIVE_INFINITY) continue;
        const scores = maskedScoreRow(q, k, shape, b, h, i);
        // Masked keys (p = 0) add nothing.
        const keys: RowKey[] = [];
        for (let j = 0; j < nk; j++) {
          const p = Math.exp(scores[j]! - rowLse);
          if (p === 0) continue;
          keys.push({
            kBase: tokenOffset(b, j, kvHead, nk, hkv, d),
            vBase: tokenOffset(b, j, kvHead, nk, hkv, dv),
            p,
          });
        }
        const row = { qBase: tokenOffset(b, i, h, n, hq, d), oBase: tokenOffset(b, i, h, n, hq, dv) };
        addRowGradients(sums, row, keys, { d, dv, scale });
      }
    }
  }
  return { dq: Float32Array.from(sums.dq), dk: Float32Array.from(sums.dk), dv: Float32Array.from(sums.dv) };
}

/** The masked score row and its log-sum-exp, shared by the forward and the backward. */
import type { ResolvedAttention } from './attention-shape.js';
import { tokenOffset } from './attention-shape.js';
import { isKeyVisible } from './mask.js';

/** `scale · q[b, i, h] · k[b, j, kvHead]` for every key j, -Infinity where masked, in f64. */
export function maskedScoreRow(
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  shape: ResolvedAttention,
  b: number,
  h: number,
  i: number,
): Float64Array {
  const { n, nk, hq, hkv, d, scale, causal, window } = shape;
  const kvHead = Math.floor(h / shape.group);
  const qBase = tokenOffset(b, i, h, n, hq, d);
  const scores = new Float64Array(nk);
  for (let j = 0; j < nk; j++) {
    if (!isKeyVisible(i, j, n, nk, causal, window)) {
      scores[j] = Number.NEGATIVE_INFINITY;
      continue;
    }
    const kBase = tokenOffset(b, j, kvHead, nk, hkv, d);
    let dot = 0;
    for (let c = 0; c < d; c++) dot += q[qBase + c]! * k[kBase + c]!;
    scores[j] = dot * scale;
  }
  return scores;
}

/** Natural log of Σ exp(scores), shifted by the maximum to stay finite; -Infinity for an empty row. */
export function logSumExp(scores: Float64Array): number {
  let max = Number.NEGATIVE_INFINITY;
  for (const s of scores) max = Math.max(max, s);
  // Without this, an all-masked row would compute -inf - (-inf) = NaN.
  if (max === Number.NEGATIVE_INFINITY) return max;
  let sum = 0;
  for (const s of scores) sum += Math.exp(s - max);
  return max + Math.log(sum);
}

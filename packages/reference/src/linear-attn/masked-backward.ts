/** The masked linear attention backward (spec §1), by the spec's formulas and in f64. */
import { checkLength, tokenOffset } from '../attention-shape.js';
import { type MaskedLinearAttentionOptions, maskBase, resolveMaskedCall } from './masked-options.js';
import { dot } from './shape.js';

/** Gradients of the masked linear attention's inputs, each the shape of its input. */
export interface MaskedLinearAttentionGradients {
  /** Gradient of q, `[batch, n, hq, dk]`. */
  dq: Float32Array;
  /** Gradient of k, `[batch, n, hkv, dk]`, summed over the query heads of each GQA group. */
  dk: Float32Array;
  /** Gradient of v, `[batch, n, hkv, dv]`, summed over the query heads of each GQA group. */
  dv: Float32Array;
  /** Gradient of the mask, `[maskBatch, maskHeads, n, n]`, summed over the dims it broadcasts over. */
  dm: Float32Array;
}

/**
 * Gradients of a scalar loss L given `dO = ∂L/∂o`, per sequence and query head, with `A = Q Kᵀ` and
 * `dA_m = dO Vᵀ`: `dM = dA_m ⊙ A`, `dA = dA_m ⊙ M`, `dV = (A ⊙ M)ᵀ dO`, `dK = dAᵀ Q`, `dQ = dA K`;
 * dK and dV summed over each GQA group and dM over the batch and heads it broadcasts over. A zero
 * mask entry still has a gradient (`dA_m ⊙ A` there), so masks learn where they are zero too.
 *
 * @param q - `[batch, n, hq, dk]`.
 * @param k - `[batch, n, hkv, dk]`.
 * @param v - `[batch, n, hkv, dv]`.
 * @param m - `[maskBatch, maskHeads, n, n]`.
 * @param dO - Gradient of the loss with respect to o, `[batch, n, hq, dv]`.
 * @param options - The options the forward ran with.
 * @throws Error as {@link maskedLinearAttention} does, or if dO's length does not match.
 */
export function maskedLinearAttentionBackward(
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
  m: ArrayLike<number>,
  dO: ArrayLike<number>,
  options: MaskedLinearAttentionOptions,
): MaskedLinearAttentionGradients {
  const call = resolveMaskedCall(options, q, k, v, m);
  const { batch, n, hq, hkv, dk, dv, group } = call;
  checkLength('dO', dO, [batch, n, hq, dv]);
  const dq = new Float64Array(q.length);
  const dkSum = new Float64Array(k.length);
  const dvSum = new Float64Array(v.length);
  const dm = new Float64Array(m.length);
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < hq; h++) {
      const kvHead = Math.floor(h / group);
      const mBase = maskBase(call, b, h);
      for (let i = 0; i < n; i++) {
        const qBase = tokenOffset(b, i, h, n, hq, dk);
        const oBase = tokenOffset(b, i, h, n, hq, dv);
        for (let j = 0; j < n; j++) {
          const kBase = tokenOffset(b, j, kvHead, n, hkv, dk);
          const vBase = tokenOffset(b, j, kvHead, n, hkv, dv);
          const a = dot(q, qBase, k, kBase, dk);
          const dAm = dot(dO, oBase, v, vBase, dv);
          const weight = m[mBase + i * n + j]!;
          dm[mBase + i * n + j]! += dAm * a;
          if (weight === 0) continue;
          const dA = dAm * weight;
          for (let c = 0; c < dk; c++) {
            dq[qBase + c]! += dA * k[kBase + c]!;
            dkSum[kBase + c]! += dA * q[qBase + c]!;
          }
          for (let c = 0; c < dv; c++) dvSum[vBase + c]! += a * weight * dO[oBase + c]!;
        }
      }
    }
  }
  return {
    dq: Float32Array.from(dq),
    dk: Float32Array.from(dkSum),
    dv: Float32Array.from(dvSum),
    dm: Float32Array.from(dm),
  };
}

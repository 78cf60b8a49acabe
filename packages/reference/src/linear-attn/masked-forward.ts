/**
 * The seed's masked linear attention forward (spec §1), materialised: per sequence and query head,
 * `O = ((Q Kᵀ) ⊙ M) V` with no softmax and no scale, every product summed in f64.
 */
import { tokenOffset } from '../attention-shape.js';
import { type MaskedLinearAttentionOptions, maskBase, resolveMaskedCall } from './masked-options.js';
import { dot } from './shape.js';

/**
 * {@link maskedLinearAttention} in f64 from end to end. Tests take finite differences of it, which
 * rounding the output to f32 would drown in noise.
 */
export function maskedLinearAttentionF64(
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
  m: ArrayLike<number>,
  options: MaskedLinearAttentionOptions,
): Float64Array {
  const call = resolveMaskedCall(options, q, k, v, m);
  const { batch, n, hq, hkv, dk, dv, group } = call;
  const o = new Float64Array(batch * n * hq * dv);
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < hq; h++) {
      const kvHead = Math.floor(h / group);
      const mBase = maskBase(call, b, h);
      for (let i = 0; i < n; i++) {
        const qBase = tokenOffset(b, i, h, n, hq, dk);
        const oBase = tokenOffset(b, i, h, n, hq, dv);
        for (let j = 0; j < n; j++) {
          const weight = m[mBase + i * n + j]!;
          // A zero weight contributes exactly nothing, even where q·k would overflow: what a kernel
          // that skips all-zero mask tiles computes.
          if (weight === 0) continue;
          const a = dot(q, qBase, k, tokenOffset(b, j, kvHead, n, hkv, dk), dk);
          const vBase = tokenOffset(b, j, kvHead, n, hkv, dv);
          for (let c = 0; c < dv; c++) o[oBase + c]! += a * weight * v[vBase + c]!;
        }
      }
    }
  }
  return o;
}

/**
 * Masked linear attention: `o_i = Σ_j (q_i · k_j) M_ij v_j` per sequence and query head, the mask
 * broadcast over the batch and heads, accumulated in f64 and rounded once to f32. TransnormerLLM's
 * decayed causal attention is the special case of {@link decayMask}. The seed applies no scale:
 * scale q before the call for one.
 *
 * @param q - `[batch, n, hq, dk]`.
 * @param k - `[batch, n, hkv, dk]`.
 * @param v - `[batch, n, hkv, dv]`.
 * @param m - `[maskBatch, maskHeads, n, n]`, any real weights (0/1, decays, ...).
 * @param options - Sizes and the mask's dims.
 * @returns o, `[batch, n, hq, dv]`.
 * @throws Error if a size is invalid, hq is not a multiple of hkv, a mask dim is neither 1 nor the
 *   dim it broadcasts over, or an input's length does not match.
 */
export function maskedLinearAttention(
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
  m: ArrayLike<number>,
  options: MaskedLinearAttentionOptions,
): Float32Array {
  return Float32Array.from(maskedLinearAttentionF64(q, k, v, m, options));
}

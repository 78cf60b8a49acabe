/**
 * TransnormerLLM's decayed causal mask (spec §1 and §2) written as a mask for
 * {@link maskedLinearAttention}: the bridge between the seed's masked form and lightning attention.
 */
/**
 * `D[h, i, j] = λ_h^(i-j)` for `i >= j`, else 0: the mask under which masked linear attention is
 * lightning attention without a scale or an initial state. Its layout is the masked form's
 * `[maskBatch = 1, maskHeads = hq, n, n]`.
 *
 * @param decays - Per query head decay `λ_h`, `[hq]`.
 * @param n - Tokens per sequence.
 * @returns `[1, hq, n, n]`, computed in f64 and rounded once to f32.
 * @throws Error if n is not a non-negative integer.
 */
export function decayMask(decays: ArrayLike<number>, n: number): Float32Array {
  if (!Number.isInteger(n) || n < 0) throw new Error(`decayMask: n must be an integer >= 0, got ${n}`);
  const hq = decays.length;
  const mask = new Float32Array(hq * n * n);
  for (let h = 0; h < hq; h++) {
    for (let i = 0; i < n; i++) {
      for (let j = 0; j <= i; j++) mask[(h * n + i) * n + j] = decays[h]! ** (i - j);
    }
  }
  return mask;
}

/**
 * The absorbed attention at kernel level, the contract of `webattn run mla` (MQA over the latent,
 * as FlashMLA runs it): every head's latent query scores against the one shared key `[c_kv | k_pe]`,
 * the softmax weights average c_kv itself, and W_UV maps the latent average to the head's output.
 */
import { attentionForwardF64 } from '../attention-forward.js';
import { checkLength } from '../attention-shape.js';

/** Sizes and scale of {@link mlaAbsorbedAttention}; the batch is `lengths.length`. */
export interface MlaAbsorbedOptions {
  /** Query tokens per sequence, the last ones of the sequence. */
  nq: number;
  /** Cache slots per sequence; slots at or past the sequence's length are ignored. */
  nk: number;
  /** Query heads. */
  heads: number;
  /** Latent rank, `r`. */
  kvLoraRank: number;
  /** Rope dims, `dr`. */
  qkRopeHeadDim: number;
  /** Output head dim, `dv`. */
  vHeadDim: number;
  /** Softmax scale applied to both dot products' sum (96^-0.5 for MiniCPM3). */
  scale: number;
}

function checkOptions(options: MlaAbsorbedOptions, lengths: ArrayLike<number>): void {
  const { nq, nk, heads, kvLoraRank, qkRopeHeadDim, vHeadDim, scale } = options;
  for (const [name, value, min] of [
    ['nq', nq, 0],
    ['nk', nk, 0],
    ['heads', heads, 1],
    ['kvLoraRank', kvLoraRank, 1],
    ['qkRopeHeadDim', qkRopeHeadDim, 0],
    ['vHeadDim', vHeadDim, 1],
  ] as const) {
    if (!Number.isSafeInteger(value) || value < min) {
      throw new Error(`mla: ${name} must be an integer >= ${min}, got ${value}`);
    }
  }
  if (!Number.isFinite(scale)) throw new Error(`mla: scale must be finite, got ${scale}`);
  for (let b = 0; b < lengths.length; b++) {
    const length = lengths[b]!;
    if (!Number.isSafeInteger(length) || length < 0 || length > nk) {
      throw new Error(`mla: lengths[${b}] must be an integer in [0, ${nk}], got ${length}`);
    }
  }
}

/** {@link mlaAbsorbedAttention} in f64. */
export function mlaAbsorbedAttentionF64(
  qLatent: ArrayLike<number>,
  qPe: ArrayLike<number>,
  cKv: ArrayLike<number>,
  kPe: ArrayLike<number>,
  wUv: ArrayLike<number>,
  lengths: ArrayLike<number>,
  options: MlaAbsorbedOptions,
): Float64Array {
  checkOptions(options, lengths);
  const { nq, nk, heads, kvLoraRank: r, qkRopeHeadDim: dr, vHeadDim: dv, scale } = options;
  const batch = lengths.length;
  checkLength('qLatent', qLatent, [batch, nq, heads, r]);
  checkLength('qPe', qPe, [batch, nq, heads, dr]);
  checkLength('cKv', cKv, [batch, nk, r]);
  checkLength('kPe', kPe, [batch, nk, dr]);
  checkLength('wUv', wUv, [heads, r, dv]);
  const dk = r + dr;
  const o = new Float64Array(batch * nq * heads * dv);
  for (let b = 0; b < batch; b++) {
    const length = lengths[b]!;
    // q = [q_latent | q_pe] per head, k = [c_kv | k_pe] and v = c_kv with one kv head: the sum of the
    // two dot products is one dot product over the concatenation.
    const q = new Float64Array(nq * heads * dk);
    for (let row = 0; row < nq * heads; row++) {
      const from = b * nq * heads + row;
      for (let c = 0; c < r; c++) q[row * dk + c] = qLatent[from * r + c]!;
      for (let c = 0; c < dr; c++) q[row * dk + r + c] = qPe[from * dr + c]!;
    }
    // Only the first `length` slots are read at all, so whatever the rest holds (NaN included) is
    // never multiplied by a zero weight: the seed kernel's decode-tail bug (spec §3.4-1) cannot occur.
    const k = new Float64Array(length * dk);
    const v = new Float64Array(length * r);
    for (let j = 0; j < length; j++) {
      for (let c = 0; c < r; c++) k[j * dk + c] = v[j * r + c] = cKv[(b * nk + j) * r + c]!;
      for (let c = 0; c < dr; c++) k[j * dk + r + c] = kPe[(b * nk + j) * dr + c]!;
    }
    // Causal with bottom-right alignment: query i sits at position length - nq + i (spec §9, the fix
    // of §3.4-2). A row before the sequence's start sees nothing and stays 0, as does an empty sequence.
    const latent = attentionForwardF64(q, k, v, {
      batch: 1,
      n: nq,
      nk: length,
      hq: heads,
      hkv: 1,
      d: dk,
      dv: r,
      scale,
      causal: true,
    }).o;
    // The epilogue (spec §2, "post-multiplication"): o_h = ō_h · W_UV[h], with w_uv [heads, r, dv].
    for (let row = 0; row < nq * heads; row++) {
      const h = row % heads;
      const oBase = (b * nq * heads + row) * dv;
      for (let d = 0; d < dv; d++) {
        let sum = 0;
        for (let c = 0; c < r; c++) sum += latent[row * r + c]! * wUv[(h * r + c) * dv + d]!;
        o[oBase + d] = sum;
      }
    }
  }
  return o;
}

/**
 * Absorbed MLA attention over a latent cache, in f64 and rounded once to f32. For sequence b, head h
 * and query i (of nq, at position `p = lengths[b] − nq + i`):
 * `s_j = scale · (q_latent·c_kv[j] + q_pe·k_pe[j])` for keys `j <= p`, `ō = Σ_j softmax(s)_j c_kv[j]`,
 * `o = ō · w_uv[h]`. Slots `j >= lengths[b]` are never read, so they may hold anything, NaN included;
 * a query with no visible key (an empty sequence, or `i < nq − lengths[b]`) gets o = 0.
 *
 * @param qLatent - `[b, nq, heads, kvLoraRank]`: queries mapped into the latent space (`W_UKᵀ q_nope`).
 * @param qPe - `[b, nq, heads, qkRopeHeadDim]`, rotated.
 * @param cKv - `[b, nk, kvLoraRank]`, the normalised latent cache.
 * @param kPe - `[b, nk, qkRopeHeadDim]`, the rotated rope keys.
 * @param wUv - `[heads, kvLoraRank, vHeadDim]`, from {@link absorbMlaWeights}.
 * @param lengths - `[b]` keys per sequence, each at most nk.
 * @param options - Sizes and softmax scale.
 * @returns o, `[b, nq, heads, vHeadDim]`.
 * @throws Error if a size is invalid, a length is out of range or an input's length does not match.
 */
export function mlaAbsorbedAttention(
  qLatent: ArrayLike<number>,
  qPe: ArrayLike<number>,
  cKv: ArrayLike<number>,
  kPe: ArrayLike<number>,
  wUv: ArrayLike<number>,
  lengths: ArrayLike<number>,
  options: MlaAbsorbedOptions,
): Float32Array {
  return Float32Array.from(mlaAbsorbedAttentionF64(qLatent, qPe, cKv, kPe, wUv, lengths, options));
}

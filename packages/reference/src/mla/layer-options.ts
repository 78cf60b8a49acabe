/** What both forms of the MLA layer take and return. */
import type { MlaDims } from './dims.js';
import type { MlaRope } from './rope-frequencies.js';

/**
 * One sequence's latent KV cache for one layer (spec §4.1): per token the normalised latent and the
 * rotated rope key, appended before the token attends. This is all MLA stores; the unabsorbed form
 * expands it to per-head keys and values on the fly.
 */
export interface MlaSequenceCache {
  /** `c_kv` after kv_a_layernorm, `[tokens, kvLoraRank]`. */
  cKv: ArrayLike<number>;
  /** `k_pe` after RoPE at the token's position, `[tokens, qkRopeHeadDim]`. */
  kPe: ArrayLike<number>;
}

/**
 * Sizes, rope and batch layout of one layer call. The batch is a list of sequences of any lengths,
 * each adding `newLengths[s]` tokens to its cache: all of them for a prefill (no cache), 1 for a
 * decode step, several for chunked prefill or speculative verification. The new tokens are the last
 * ones of their sequence, so query i of sequence s sits at position `prefix_s + i`, and sees keys
 * `0 ..= prefix_s + i` (causal, aligned to the end of the sequence).
 */
export interface MlaLayerOptions {
  /** Layer sizes. */
  dims: MlaDims;
  /** Rotary embedding of q_pe and k_pe. */
  rope: MlaRope;
  /** New tokens of each sequence; `hidden` holds them packed, sequence after sequence. May be 0. */
  newLengths: readonly number[];
  /** Each sequence's cache before this call, one per sequence; empty caches when not given. */
  cache?: readonly MlaSequenceCache[];
  /** Softmax scale; {@link mlaSoftmaxScale} of the dims and rope by default. */
  scale?: number;
  /** Epsilon of q_a_layernorm and kv_a_layernorm; {@link MLA_LATENT_NORM_EPS} by default. */
  normEps?: number;
}

/** What a layer call returns. */
export interface MlaLayerOutput {
  /** The attention output after o_proj, `[totalNew, hiddenSize]`, packed as the input. */
  out: Float32Array;
  /** Each sequence's cache with the new tokens appended: pass it as `cache` to the next call. */
  cache: MlaSequenceCache[];
}

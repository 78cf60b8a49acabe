/** What the NSA reference functions take: sizes, hyper-parameters and input tensors. */
import type { NsaCompressor } from './compress.js';
import type { NsaConfig } from './config.js';

/**
 * Sizes of a dense NSA call. Tensors are token-major: q `[batch, n, hq, dqk]`, k `[batch, n, hkv, dqk]`,
 * v `[batch, n, hkv, dv]`, gate logits `[batch, n, hq, 3]`, o `[batch, n, hq, dv]`.
 */
export interface NsaShape {
  /** Number of independent sequences, all of length n. */
  batch: number;
  /** Tokens per sequence. */
  n: number;
  /** Query heads; a multiple of `hkv`. */
  hq: number;
  /** Key and value heads. Query head h reads kv head `floor(h / (hq / hkv))`. */
  hkv: number;
  /** Head dimension of q and k. */
  dqk: number;
  /** Head dimension of v and o. */
  dv: number;
}

/** Sizes and hyper-parameters of a dense NSA call; unset hyper-parameters take {@link NSA_DEFAULTS}. */
export interface NsaOptions extends NsaShape, NsaConfig {}

/**
 * The tensors of an NSA call. Dense shapes are given here; packed calls (`cuSeqlens`) drop the batch
 * axis and concatenate the sequences along the token axis: q `[total, hq, dqk]` and so on.
 */
export interface NsaInputs {
  /** Queries, `[batch, n, hq, dqk]`, after RoPE. */
  q: ArrayLike<number>;
  /** Keys, `[batch, n, hkv, dqk]`, after RoPE (they are compressed after it, as the reference does). */
  k: ArrayLike<number>;
  /** Values, `[batch, n, hkv, dv]`. */
  v: ArrayLike<number>;
  /** Gate logits, `[batch, n, hq, 3]`, in the order compressed, selected, window; sigmoid is applied inside. */
  gates: ArrayLike<number>;
  /** How keys are compressed; mean pooling when not given. */
  kCompressor?: NsaCompressor;
  /** How values are compressed; mean pooling when not given. */
  vCompressor?: NsaCompressor;
  /**
   * Selected blocks to use instead of computing them, in the layout of {@link NsaOutput.selection}.
   * For testing a kernel's branches on the kernel's own selection, and for finite differences,
   * which must not move the selection.
   */
  selection?: ArrayLike<number>;
}

/**
 * Options of the masked linear attention (spec §1): the sizes, and the dims of the mask, which
 * broadcasts over the batch and the query heads.
 */
import { checkLength } from '../attention-shape.js';
import {
  checkQkv,
  type LinearAttentionShape,
  type ResolvedLinearShape,
  resolveLinearShape,
} from './shape.js';

/**
 * Sizes of a masked linear attention call. The mask is `[maskBatch, maskHeads, n, n]`, row i holding
 * the weights of query i on keys 0..n-1. Its dims are given explicitly because its length alone
 * cannot tell `[1, h]` from `[b, 1]` when b = h.
 */
export interface MaskedLinearAttentionOptions extends LinearAttentionShape {
  /** 1 (one mask for every sequence) or `batch`. */
  maskBatch: number;
  /** 1 (one mask for every head) or `hq`: the mask belongs to query heads, not kv heads. */
  maskHeads: number;
}

/** Checked sizes of a masked call. */
export interface ResolvedMaskedCall extends ResolvedLinearShape {
  /** 1 or batch. */
  maskBatch: number;
  /** 1 or hq. */
  maskHeads: number;
}

/**
 * Checks the sizes, the mask dims and the lengths of q, k, v and the mask.
 *
 * @throws Error if a size is invalid, a mask dim is neither 1 nor the dim it broadcasts over, or an
 *   input's length does not match.
 */
export function resolveMaskedCall(
  options: MaskedLinearAttentionOptions,
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
  m: ArrayLike<number>,
): ResolvedMaskedCall {
  const caller = 'maskedLinearAttention';
  const shape = resolveLinearShape(options, caller);
  const { maskBatch, maskHeads } = options;
  if (maskBatch !== 1 && maskBatch !== shape.batch) {
    throw new Error(`${caller}: maskBatch must be 1 or batch (${shape.batch}), got ${maskBatch}`);
  }
  if (maskHeads !== 1 && maskHeads !== shape.hq) {
    throw new Error(`${caller}: maskHeads must be 1 or hq (${shape.hq}), got ${maskHeads}`);
  }
  checkQkv(shape, q, k, v);
  checkLength('m', m, [maskBatch, maskHeads, shape.n, shape.n]);
  return { ...shape, maskBatch, maskHeads };
}

/** Offset of row 0 of the mask that sequence `b`, query head `h` reads: index 0 along a broadcast dim. */
export function maskBase(call: ResolvedMaskedCall, b: number, h: number): number {
  const mb = call.maskBatch === 1 ? 0 : b;
  const mh = call.maskHeads === 1 ? 0 : h;
  return (mb * call.maskHeads + mh) * call.n * call.n;
}

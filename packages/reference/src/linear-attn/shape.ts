/**
 * Sizes shared by the linear attention references, their validation, and the offsets of the
 * token-major tensors: q `[batch, n, hq, dk]`, k `[batch, n, hkv, dk]`, v `[batch, n, hkv, dv]`,
 * o `[batch, n, hq, dv]`.
 */
import { checkLength } from '../attention-shape.js';

/** Sizes of one linear attention call. Queries and keys have the same number of tokens. */
export interface LinearAttentionShape {
  /** Number of independent sequences. */
  batch: number;
  /** Tokens per sequence. */
  n: number;
  /** Query heads; a multiple of `hkv`. */
  hq: number;
  /** Key and value heads. Query head h reads kv head `floor(h / (hq / hkv))` (GQA; MQA when 1). */
  hkv: number;
  /** Head dimension of q and k. */
  dk: number;
  /** Head dimension of v and o. */
  dv: number;
}

/** A checked {@link LinearAttentionShape}, with the GQA group size. */
export interface ResolvedLinearShape extends LinearAttentionShape {
  /** Query heads per kv head. */
  group: number;
}

/**
 * Checks the sizes: non-negative batch and n (zero-length sequences occur in packed batches),
 * positive heads and dims, and hq a multiple of hkv.
 *
 * @param shape - The sizes to check.
 * @param caller - Name of the calling function, for the error messages.
 * @throws Error if a size is invalid.
 */
export function resolveLinearShape(shape: LinearAttentionShape, caller: string): ResolvedLinearShape {
  const { batch, n, hq, hkv, dk, dv } = shape;
  const sizes: [string, number, number][] = [
    ['batch', batch, 0],
    ['n', n, 0],
    ['hq', hq, 1],
    ['hkv', hkv, 1],
    ['dk', dk, 1],
    ['dv', dv, 1],
  ];
  for (const [name, value, min] of sizes) {
    if (!Number.isInteger(value) || value < min) {
      throw new Error(`${caller}: ${name} must be an integer >= ${min}, got ${value}`);
    }
  }
  if (hq % hkv !== 0) throw new Error(`${caller}: hq (${hq}) must be a multiple of hkv (${hkv})`);
  return { batch, n, hq, hkv, dk, dv, group: hq / hkv };
}

/** Throws unless q, k and v hold exactly the elements of the shape's `[batch, n, heads, dim]`. */
export function checkQkv(
  shape: ResolvedLinearShape,
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
): void {
  const { batch, n, hq, hkv, dk, dv } = shape;
  checkLength('q', q, [batch, n, hq, dk]);
  checkLength('k', k, [batch, n, hkv, dk]);
  checkLength('v', v, [batch, n, hkv, dv]);
}

/** `Σ_c x[xBase + c] · y[yBase + c]` over `dim` values, in f64. */
export function dot(x: ArrayLike<number>, xBase: number, y: ArrayLike<number>, yBase: number, dim: number) {
  let sum = 0;
  for (let c = 0; c < dim; c++) sum += x[xBase + c]! * y[yBase + c]!;
  return sum;
}

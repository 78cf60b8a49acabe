/**
 * Shapes and options of the dense attention reference, their validation and the token-major layout
 * every attention tensor uses (FlashAttention's): `[batch, tokens, heads, dim]`.
 */
import { type AttentionWindow, UNBOUNDED_WINDOW } from './mask.js';

/**
 * Sizes of one dense attention call. Tensors are token-major: q `[batch, n, hq, d]`,
 * k `[batch, nk, hkv, d]`, v `[batch, nk, hkv, dv]`, o `[batch, n, hq, dv]`, lse `[batch, hq, n]`.
 */
export interface AttentionShape {
  /** Number of independent sequences. */
  batch: number;
  /** Query tokens per sequence. */
  n: number;
  /** Key and value tokens per sequence. */
  nk: number;
  /** Query heads; a multiple of `hkv`. */
  hq: number;
  /** Key and value heads. Query head h reads kv head `floor(h / (hq / hkv))` (GQA; MQA when 1). */
  hkv: number;
  /** Head dimension of q and k. */
  d: number;
  /** Head dimension of v and o. */
  dv: number;
}

/** Sizes, scale and mask of one dense attention call; see {@link isKeyVisible} for the mask. */
export interface AttentionOptions extends AttentionShape {
  /** Softmax scale applied to q·k, `1 / sqrt(d)` by default. */
  scale?: number;
  /** Hide keys after each query's aligned position. */
  causal?: boolean;
  /** `[left, right]` keys around each query's aligned position; -1 for an unbounded side. */
  window?: AttentionWindow;
}

/** Options with every default filled in and every size checked. */
export interface ResolvedAttention extends AttentionShape {
  /** The softmax scale, defaulted. */
  scale: number;
  /** Causal masking, defaulted to false. */
  causal: boolean;
  /** The window, defaulted to unbounded. */
  window: AttentionWindow;
  /** Query heads per kv head. */
  group: number;
}

function checkSize(name: string, value: number, min: number): void {
  if (!Number.isInteger(value) || value < min) {
    throw new Error(`attention: ${name} must be an integer >= ${min}, got ${value}`);
  }
}

/** Checks the sizes and fills in the defaults. */
export function resolveAttention(options: AttentionOptions): ResolvedAttention {
  const { batch, n, nk, hq, hkv, d, dv } = options;
  // Zero-length sequences are legal: they occur in packed batches.
  for (const [name, value] of Object.entries({ batch, n, nk })) checkSize(name, value, 0);
  for (const [name, value] of Object.entries({ hq, hkv, d, dv })) checkSize(name, value, 1);
  if (hq % hkv !== 0) throw new Error(`attention: hq (${hq}) must be a multiple of hkv (${hkv})`);
  const window = options.window ?? UNBOUNDED_WINDOW;
  if (window.length !== 2 || !window.every((side) => Number.isInteger(side) && side >= -1)) {
    throw new Error(
      `attention: window must be [left, right] with integers >= -1, got [${window.join(', ')}]`,
    );
  }
  const scale = options.scale ?? 1 / Math.sqrt(d);
  if (!Number.isFinite(scale)) throw new Error(`attention: scale must be finite, got ${scale}`);
  return { batch, n, nk, hq, hkv, d, dv, scale, causal: options.causal ?? false, window, group: hq / hkv };
}

/** Throws unless `array` holds exactly the elements of `shape`. */
export function checkLength(name: string, array: ArrayLike<number>, shape: readonly number[]): void {
  const expected = shape.reduce((size, dim) => size * dim, 1);
  if (array.length !== expected) {
    throw new Error(
      `attention: ${name} has ${array.length} elements, expected [${shape.join(', ')}] = ${expected}`,
    );
  }
}

/** Offset of the first element of (sequence `b`, token `t`, head `h`) in `[batch, tokens, heads, dim]`. */
export function tokenOffset(
  b: number,
  t: number,
  h: number,
  tokens: number,
  heads: number,
  dim: number,
): number {
  return ((b * tokens + t) * heads + h) * dim;
}

/** Rotary position embedding of token-major heads, in both pair layouts. */
import { checkLength } from '../attention-shape.js';
import type { MlaRopeStyle, RopeFrequencies } from './rope-frequencies.js';

/**
 * Rotates `x[offset .. offset + dim)` in place by the angles of `position`, with
 * `dim = 2 · frequencies.invFreq.length`: pair (a, b) becomes `m · (a cos − b sin, b cos + a sin)`.
 */
export function rotateInPlace(
  x: Float64Array,
  offset: number,
  position: number,
  frequencies: RopeFrequencies,
  style: MlaRopeStyle,
): void {
  const { invFreq, magnitude } = frequencies;
  const half = invFreq.length;
  for (let k = 0; k < half; k++) {
    const angle = position * invFreq[k]!;
    const cos = Math.cos(angle) * magnitude;
    const sin = Math.sin(angle) * magnitude;
    const [ia, ib] =
      style === 'rotate-half' ? [offset + k, offset + k + half] : [offset + 2 * k, offset + 2 * k + 1];
    const a = x[ia]!;
    const b = x[ib]!;
    x[ia] = a * cos - b * sin;
    x[ib] = b * cos + a * sin;
  }
}

/** Options of {@link applyRope}. */
export interface ApplyRopeOptions {
  /** Heads per token, all rotated by the token's position. */
  heads: number;
  /** Pair layout. */
  style: MlaRopeStyle;
  /** Rates and magnitude, from {@link ropeFrequencies}; they fix the head dim. */
  frequencies: RopeFrequencies;
}

/**
 * RoPE of `[tokens, heads, dim]` values, token t at `positions[t]`, in f64 and rounded once to f32.
 * In the MLA layer the positions count the real tokens of each sequence: its first token has
 * position 0 whatever else is in the batch (spec §1.4).
 *
 * @param x - `[tokens, heads, dim]` with `tokens = positions.length`.
 * @param positions - One position per token.
 * @param options - Heads, pair layout and frequencies.
 * @throws Error if `x` does not have that shape.
 */
export function applyRope(
  x: ArrayLike<number>,
  positions: ArrayLike<number>,
  options: ApplyRopeOptions,
): Float32Array {
  const { heads, style, frequencies } = options;
  const dim = 2 * frequencies.invFreq.length;
  checkLength('rope input', x, [positions.length, heads, dim]);
  const y = Float64Array.from(x);
  for (let t = 0; t < positions.length; t++) {
    for (let h = 0; h < heads; h++)
      rotateInPlace(y, (t * heads + h) * dim, positions[t]!, frequencies, style);
  }
  return Float32Array.from(y);
}

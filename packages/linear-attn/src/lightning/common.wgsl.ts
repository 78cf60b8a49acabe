/** WGSL pieces the lightning and decode kernels share. */

/**
 * `decayPow(λ, e) = λ^e` for a whole exponent, with `λ^0 = 1` (also for λ = 0, where WGSL's `pow`
 * is undefined) and `0^e = 0` for e > 0.
 */
export const DECAY_POW_WGSL = `fn decayPow(lam: f32, e: u32) -> f32 {
  if (e == 0u) { return 1.0; }
  if (lam <= 0.0) { return 0.0; }
  return exp2(f32(e) * log2(lam));
}`;

/**
 * `decayOf(h)`: λ_h, whose f32 bits the chunk table carries from word `p.decayTable` on: one binding
 * fewer than a separate decays array (the scan over split states binds six buffers as it is).
 */
export const DECAY_OF_WGSL = `fn decayOf(h: u32) -> f32 {
  return bitcast<f32>(table[p.decayTable + h]);
}`;

/**
 * `checkF16(v)`: sets the overflow flag when an f32 value is not finite or rounds past f16's largest
 * finite value (65504; anything from 65520 up rounds to infinity), so that an f16 output never holds
 * inf or NaN unnoticed. Needs a binding `overflow: array<atomic<u32>>`.
 */
export const CHECK_F16_WGSL = `fn checkF16(x: f32) {
  if ((bitcast<u32>(x) & 0x7fffffffu) > 0x477fefffu) { atomicOr(&overflow[0], 1u); }
}`;

/** `half(x)`: x as f16, checked first (CHECK_F16_WGSL, which must be in the module) when `checkFinite`. */
export function halfWgsl(checkFinite: boolean | undefined): string {
  return checkFinite
    ? 'fn half(x: f32) -> f16 { checkF16(x); return f16(x); }'
    : 'fn half(x: f32) -> f16 { return f16(x); }';
}

/** The store of one output value: converted to the storage dtype, checked first when asked. */
export function storeWgsl(target: string, value: string, dtype: 'f32' | 'f16', check: boolean): string {
  return `${check ? `checkF16(${value}); ` : ''}${target} = ${dtype}(${value});`;
}

/**
 * f32 to bfloat16 rounding. bf16 is the top half of an f32, so the conversion back is exact and
 * lives in f16.ts as `fromBf16Bits`; this is the lossy direction.
 */

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** Rounds one float to the nearest bf16 (ties to even) and returns its bit pattern. */
export function f32ToBf16Bits(value: number): number {
  f32[0] = value;
  const x = u32[0]!;
  // NaN: keep the sign, force a quiet NaN (truncating could drop every payload bit and yield inf).
  if ((x & 0x7fffffff) > 0x7f800000) return ((x >>> 16) & 0x8000) | 0x7fc0;
  // Adding 0x7fff plus the lowest kept bit rounds half to even; a carry out of the mantissa bumps
  // the exponent, which is correct, up to and including overflow to inf.
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

/** Floats to bf16 bit patterns, each rounded to nearest even. */
export function toBf16Bits(values: ArrayLike<number>): Uint16Array {
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = f32ToBf16Bits(values[i]!);
  return out;
}

/**
 * Seeded random data for tests and benches. Only 32-bit integer arithmetic feeds the generator, so a
 * seed gives the same numbers on every platform and engine, and a failing case can be replayed.
 */

/**
 * A uniform generator on [0, 1) from mulberry32: small, fast, and good enough to fill test tensors.
 *
 * @param seed - Any number; only its low 32 bits are used.
 * @returns A function returning the next sample each time it is called.
 */
export function seededUniform(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * `count` samples of a normal distribution with mean 0 and standard deviation `scale` (Box-Muller).
 *
 * @param count - Number of samples.
 * @param seed - Seed of the underlying {@link seededUniform} generator.
 * @param scale - Standard deviation.
 */
export function randn(count: number, seed: number, scale = 1): Float32Array {
  const next = seededUniform(seed);
  const out = new Float32Array(count);
  for (let i = 0; i < count; i += 2) {
    // 1 - u lies in (0, 1], so the logarithm is always finite.
    const radius = Math.sqrt(-2 * Math.log(1 - next())) * scale;
    const angle = 2 * Math.PI * next();
    out[i] = radius * Math.cos(angle);
    if (i + 1 < count) out[i + 1] = radius * Math.sin(angle);
  }
  return out;
}

/**
 * `count` samples of a uniform distribution on [lo, hi).
 *
 * @param count - Number of samples.
 * @param seed - Seed of the underlying {@link seededUniform} generator.
 * @param lo - Lower bound, included.
 * @param hi - Upper bound, excluded (up to f32 rounding).
 */
export function randu(count: number, seed: number, lo = -1, hi = 1): Float32Array {
  const next = seededUniform(seed);
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) out[i] = lo + (hi - lo) * next();
  return out;
}

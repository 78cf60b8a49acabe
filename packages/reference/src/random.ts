/** Seeded random numbers, the same on every platform, so tests and benches are reproducible. */

/** mulberry32: a small, fast 32-bit generator; returns uniform floats in [0, 1). */
export function seededUniform(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `count` standard normal samples (Box-Muller) times `scale`. */
export function randn(count: number, seed: number, scale = 1): Float32Array {
  const next = seededUniform(seed);
  const out = new Float32Array(count);
  for (let i = 0; i < count; i += 2) {
    const u = 1 - next(); // (0, 1]: log(u) is finite
    const r = Math.sqrt(-2 * Math.log(u)) * scale;
    const theta = 2 * Math.PI * next();
    out[i] = r * Math.cos(theta);
    if (i + 1 < count) out[i + 1] = r * Math.sin(theta);
  }
  return out;
}

/** `count` uniform samples in [lo, hi). */
export function randu(count: number, seed: number, lo = -1, hi = 1): Float32Array {
  const next = seededUniform(seed);
  return Float32Array.from({ length: count }, () => lo + (hi - lo) * next());
}

/**
 * TransnormerLLM's per-head decay rates (see the linear-attention spec, section 2): ALiBi-style
 * slopes, `λ_h = exp(-slope_h)`, optionally scaled by layer depth. Kernels take slopes as an input;
 * these helpers produce the schedule a TransnormerLLM layer uses.
 */
import { check } from '@webattn/core';

function powerOfTwoSlopes(heads: number): number[] {
  return Array.from({ length: heads }, (_, h) => 2 ** ((-8 * (h + 1)) / heads));
}

/**
 * ALiBi slopes for `heads` heads: `2^(-8(h+1)/H)` when H is a power of two; otherwise those of the
 * nearest lower power of two followed by every other slope of the next power of two.
 */
export function alibiSlopes(heads: number): Float32Array {
  check(
    Number.isSafeInteger(heads) && heads > 0,
    'invalid-argument',
    () => `heads: expected a positive integer, got ${heads}`,
  );
  const lower = 2 ** Math.floor(Math.log2(heads));
  const slopes = powerOfTwoSlopes(lower);
  if (lower !== heads) {
    const upper = powerOfTwoSlopes(2 * lower).filter((_, i) => i % 2 === 0);
    slopes.push(...upper.slice(0, heads - lower));
  }
  return Float32Array.from(slopes);
}

/**
 * TransnormerLLM's depth schedule: `slope * (1 - layer / (numLayers - 1) + 1e-5)`, so the first
 * layer decays fastest and the last hardly at all.
 */
export function layerScaledSlopes(slopes: Float32Array, layer: number, numLayers: number): Float32Array {
  check(
    Number.isSafeInteger(numLayers) && numLayers >= 2,
    'invalid-argument',
    () => `numLayers: expected an integer >= 2, got ${numLayers}`,
  );
  check(
    Number.isSafeInteger(layer) && layer >= 0 && layer < numLayers,
    'invalid-argument',
    () => `layer: expected an integer in [0, ${numLayers - 1}], got ${layer}`,
  );
  const factor = 1 - layer / (numLayers - 1) + 1e-5;
  return slopes.map((s) => s * factor);
}

/** Per-head decay `λ_h = exp(-slope_h)`, the factor applied per token of distance. */
export function decayFromSlopes(slopes: Float32Array): Float32Array {
  return slopes.map((s) => Math.exp(-s));
}

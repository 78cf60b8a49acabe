import { describe, expect, it } from 'vitest';
import { randn, randu, seededUniform } from '../src/index.js';

function mean(x: Float32Array): number {
  return x.reduce((a, b) => a + b, 0) / x.length;
}

function variance(x: Float32Array): number {
  const m = mean(x);
  return x.reduce((a, b) => a + (b - m) ** 2, 0) / x.length;
}

describe('seeded random data', () => {
  it('is the same for the same seed and differs between seeds', () => {
    expect(randn(101, 7)).toEqual(randn(101, 7));
    expect(randu(101, 7)).toEqual(randu(101, 7));
    expect(randn(101, 7)).not.toEqual(randn(101, 8));
    expect(randu(101, 7)).not.toEqual(randu(101, 8));
  });

  it('gives a prefix of the longer sequence for a shorter count, odd counts included', () => {
    expect(randn(5, 3)).toEqual(randn(6, 3).subarray(0, 5));
    expect(randu(5, 3)).toEqual(randu(6, 3).subarray(0, 5));
  });

  it('uses only the low 32 bits of the seed', () => {
    expect(randu(8, 1 + 2 ** 32)).toEqual(randu(8, 1));
  });

  it('draws uniforms in [0, 1) with mean 1/2', () => {
    const next = seededUniform(42);
    const x = Float32Array.from({ length: 100_000 }, next);
    expect(Math.min(...x)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...x)).toBeLessThan(1);
    expect(Math.abs(mean(x) - 0.5)).toBeLessThan(0.01);
  });

  it('draws randn with mean 0 and variance scale² over 1e5 samples', () => {
    const x = randn(100_000, 1);
    expect(x.every(Number.isFinite)).toBe(true);
    expect(Math.abs(mean(x))).toBeLessThan(0.02);
    expect(Math.abs(variance(x) - 1)).toBeLessThan(0.02);
    const scaled = randn(100_000, 2, 3);
    expect(Math.abs(variance(scaled) - 9)).toBeLessThan(0.2);
  });

  it('draws randu in [lo, hi) with the uniform mean and variance', () => {
    const x = randu(100_000, 5, 2, 6);
    expect(Math.min(...x)).toBeGreaterThanOrEqual(2);
    expect(Math.max(...x)).toBeLessThanOrEqual(6);
    expect(Math.abs(mean(x) - 4)).toBeLessThan(0.02);
    expect(Math.abs(variance(x) - 16 / 12)).toBeLessThan(0.03);
    const unit = randu(100_000, 6);
    expect(Math.min(...unit)).toBeGreaterThanOrEqual(-1);
    expect(Math.abs(mean(unit))).toBeLessThan(0.01);
  });
});

import { describe, expect, it } from 'vitest';
import { compare, maxAbsError, randn, rmsRelativeError, TOLERANCES, toleranceFor } from '../src/index.js';

describe('error measures', () => {
  it('compute max-abs and RMS-relative errors by hand', () => {
    const ref = [3, 4];
    const actual = [3, 4.5];
    expect(maxAbsError(ref, actual)).toBe(0.5);
    // sqrt(mean([0, 0.25])) / sqrt(mean([9, 16])) = sqrt(0.125) / sqrt(12.5) = 0.1
    expect(rmsRelativeError(ref, actual)).toBeCloseTo(0.1, 12);
  });

  it('count matching infinities as exact and anything else non-finite as a failure', () => {
    const ref = [Number.NEGATIVE_INFINITY, 1];
    expect(compare(ref, [Number.NEGATIVE_INFINITY, 1], TOLERANCES.f32)).toMatchObject({
      ok: true,
      maxAbs: 0,
      nonFinite: 0,
    });
    expect(compare(ref, [0, 1], TOLERANCES.f32).ok).toBe(false);
    const nan = compare([1, 2], [1, Number.NaN], TOLERANCES.f16);
    expect(nan.nonFinite).toBe(1);
    expect(nan.ok).toBe(false);
  });

  it('apply both bounds and scale max-abs by magnitude', () => {
    expect(compare([1, 1], [1, 1.5e-3], TOLERANCES.f32).ok).toBe(false);
    expect(toleranceFor('f16', 4)).toEqual({
      rmsRel: TOLERANCES.f16.rmsRel,
      maxAbs: TOLERANCES.f16.maxAbs * 4,
    });
    expect(() => compare([1], [1, 2], TOLERANCES.f32)).toThrow(/the reference has 1 elements, the result 2/);
  });
});

describe('random', () => {
  it('is deterministic per seed and roughly standard normal', () => {
    expect(randn(10, 7)).toEqual(randn(10, 7));
    expect(randn(10, 7)).not.toEqual(randn(10, 8));
    const x = randn(100_000, 1);
    const mean = x.reduce((a, b) => a + b, 0) / x.length;
    const variance = x.reduce((a, b) => a + (b - mean) ** 2, 0) / x.length;
    expect(Math.abs(mean)).toBeLessThan(0.02);
    expect(Math.abs(variance - 1)).toBeLessThan(0.02);
  });
});

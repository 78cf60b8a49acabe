import { describe, expect, it } from 'vitest';
import { compare, maxAbsError, rmsRelativeError, TOLERANCES } from '../src/index.js';

const INF = Number.POSITIVE_INFINITY;

describe('maxAbsError and rmsRelativeError', () => {
  it('match errors worked out by hand', () => {
    const ref = [3, 4];
    const actual = [3, 4.5];
    expect(maxAbsError(ref, actual)).toBe(0.5);
    // sqrt(mean([0, 0.25])) / sqrt(mean([9, 16])) = sqrt(0.125) / sqrt(12.5) = 0.1
    expect(rmsRelativeError(ref, actual)).toBeCloseTo(0.1, 12);
    // sqrt(mean([1, 4, 0, 9])) / sqrt(mean([1, 1, 4, 4])) = sqrt(3.5) / sqrt(2.5)
    expect(rmsRelativeError([1, -1, 2, -2], [2, 1, 2, -5])).toBeCloseTo(Math.sqrt(3.5 / 2.5), 12);
    expect(maxAbsError([1, -1, 2, -2], [2, 1, 2, -5])).toBe(3);
  });

  it('are zero for identical inputs and empty arrays', () => {
    expect(maxAbsError([1, 2, 3], [1, 2, 3])).toBe(0);
    expect(rmsRelativeError([1, 2, 3], [1, 2, 3])).toBe(0);
    expect(rmsRelativeError([], [])).toBe(0);
  });

  it('fall back to an absolute error against an all-zero reference instead of dividing by zero', () => {
    expect(rmsRelativeError([0, 0], [0, 0])).toBe(0);
    expect(rmsRelativeError([0, 0], [1e-3, 1e-3])).toBeGreaterThan(1e20);
  });

  it('count matching infinities as exact and leave -inf reference entries out of the norm', () => {
    expect(maxAbsError([-INF, 1], [-INF, 1])).toBe(0);
    // The norm comes from the finite entry only: sqrt(0.01 / 2) / sqrt(4 / 2) = 0.05.
    expect(rmsRelativeError([-INF, 2], [-INF, 2.1])).toBeCloseTo(0.05, 10);
    expect(maxAbsError([1, 2], [1, Number.NaN])).toBeNaN();
  });

  it('throw on a length mismatch, naming both lengths', () => {
    expect(() => maxAbsError([1], [1, 2])).toThrow(/1 elements.* 2/);
    expect(() => rmsRelativeError([1, 2, 3], [1])).toThrow(/3 elements.* 1/);
  });
});

describe('compare', () => {
  it('passes within both bounds', () => {
    expect(compare([1, 2, 3, 4], [1, 2, 3, 4 + 1e-5], TOLERANCES.f32)).toMatchObject({
      ok: true,
      nonFinite: 0,
    });
  });

  it('fails on one bad element that the RMS over many good ones would hide', () => {
    const ref = new Array(1001).fill(1);
    const actual = [...ref.slice(1), 1.0015];
    const result = compare(ref, actual, TOLERANCES.f32);
    // rms = 1.5e-3 / sqrt(1001), about 4.7e-5: within f32's 1e-4, but max-abs 1.5e-3 is over 1e-3.
    expect(result.rmsRel).toBeLessThan(TOLERANCES.f32.rmsRel);
    expect(result.maxAbs).toBeCloseTo(1.5e-3, 10);
    expect(result.ok).toBe(false);
  });

  it('fails on a small error everywhere that no single element shows', () => {
    const result = compare([1, 1], [1.0005, 0.9995], TOLERANCES.f32);
    expect(result.maxAbs).toBeLessThan(TOLERANCES.f32.maxAbs);
    expect(result.rmsRel).toBeCloseTo(5e-4, 10);
    expect(result.ok).toBe(false);
  });

  it('reports the tolerance it applied', () => {
    expect(compare([1], [1], TOLERANCES.f16).tolerance).toEqual(TOLERANCES.f16);
  });

  it('accepts -inf where the reference has -inf (lse of an empty row)', () => {
    expect(compare([-INF, 1], [-INF, 1], TOLERANCES.f32)).toMatchObject({
      ok: true,
      maxAbs: 0,
      nonFinite: 0,
    });
    expect(compare([INF], [INF], TOLERANCES.f32).ok).toBe(true);
  });

  it('rejects a finite value where the reference has an infinity, and the wrong infinity', () => {
    expect(compare([-INF, 1], [0, 1], TOLERANCES.f32).ok).toBe(false);
    expect(compare([-INF, 1], [-1e30, 1], TOLERANCES.f32).ok).toBe(false);
    const flipped = compare([-INF, 1], [INF, 1], TOLERANCES.f32);
    expect(flipped.nonFinite).toBe(1);
    expect(flipped.ok).toBe(false);
  });

  it('counts NaN and unexpected infinities in the result as non-finite', () => {
    const result = compare([1, 2, 3], [1, Number.NaN, -INF], TOLERANCES.f16);
    expect(result.nonFinite).toBe(2);
    expect(result.ok).toBe(false);
  });

  it('throws on a length mismatch, naming both lengths', () => {
    expect(() => compare([1], [1, 2], TOLERANCES.f32)).toThrow(/the reference has 1 elements, the result 2/);
  });
});

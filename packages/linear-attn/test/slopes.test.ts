import { describe, expect, it } from 'vitest';
import { alibiSlopes, decayFromSlopes, layerScaledSlopes } from '../src/index.js';

describe('alibiSlopes', () => {
  it('is 2^(-8(h+1)/H) for a power-of-two head count', () => {
    const s = alibiSlopes(8);
    expect(Array.from(s)).toEqual(
      Array.from(Float32Array.from([0.5, 0.25, 0.125, 0.0625, 0.03125, 0.015625, 0.0078125, 0.00390625])),
    );
  });

  it('interpolates for other head counts: the lower power of two, then every other slope of the next', () => {
    const s = Array.from(alibiSlopes(12));
    expect(s.slice(0, 8)).toEqual(Array.from(alibiSlopes(8)));
    // Every other slope of 16 heads: 2^(-0.5), 2^(-1.5), 2^(-2.5), 2^(-3.5).
    expect(s.slice(8)).toEqual(Array.from(Float32Array.from([2 ** -0.5, 2 ** -1.5, 2 ** -2.5, 2 ** -3.5])));
    expect(() => alibiSlopes(0)).toThrow(/heads: expected a positive integer, got 0/);
  });
});

describe('layer schedule and decay', () => {
  it('scales slopes from full at the first layer to ~0 at the last', () => {
    const s = alibiSlopes(4);
    expect(layerScaledSlopes(s, 0, 10)[0]).toBeCloseTo(s[0]! * (1 + 1e-5), 7);
    expect(layerScaledSlopes(s, 9, 10)[0]).toBeCloseTo(s[0]! * 1e-5, 10);
    expect(() => layerScaledSlopes(s, 10, 10)).toThrow(/layer: expected an integer in \[0, 9\], got 10/);
    expect(decayFromSlopes(Float32Array.from([0, 1]))[1]).toBeCloseTo(Math.exp(-1), 7);
  });
});

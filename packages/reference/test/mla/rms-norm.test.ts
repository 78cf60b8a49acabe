import { describe, expect, it } from 'vitest';
import { MLA_LATENT_NORM_EPS, rmsNorm } from '../../src/index.js';

describe('rmsNorm', () => {
  it('divides each row by its root mean square and multiplies by the weight', () => {
    // Row [3, 4]: mean square 12.5; row [1, -1]: mean square 1.
    const y = rmsNorm([3, 4, 1, -1], [1, 2], 2, 0);
    const r = Math.sqrt(12.5);
    expect(Array.from(y)).toEqual([3 / r, 8 / r, 1, -2].map((e) => expect.closeTo(e, 6)));
  });

  it('adds eps to the mean square, 1e-6 by default as q_a_layernorm and kv_a_layernorm use (spec §1.1)', () => {
    expect(MLA_LATENT_NORM_EPS).toBe(1e-6);
    // Mean square 1e-6: doubling it by eps divides by sqrt(2e-6) instead of sqrt(1e-6).
    expect(rmsNorm([1e-3], [1], 1)[0]).toBeCloseTo(1e-3 / Math.sqrt(2e-6), 5);
    expect(rmsNorm([1e-3], [1], 1, 1e-5)[0]).toBeCloseTo(1e-3 / Math.sqrt(1.1e-5), 5);
  });

  it('rejects an input that is not [rows, weight.length]', () => {
    expect(() => rmsNorm([1, 2, 3], [1, 1], 2)).toThrow(/rmsNorm input/);
  });
});

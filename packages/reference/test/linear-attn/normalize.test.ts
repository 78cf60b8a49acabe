import { describe, expect, it } from 'vitest';
import { l2Normalize, l2NormalizeBackward, maskedLinearAttention, randn } from '../../src/index.js';
import { l2NormalizeF64 } from '../../src/linear-attn/normalize.js';
import { expectGradient, f64 } from '../nsa/helpers.js';
import { inner, randomBinaryMask } from './helpers.js';

describe('l2Normalize', () => {
  it('scales every row to unit length and keeps an all-zero row at zero', () => {
    expect(Array.from(l2Normalize([3, 4, 0, 0, -5, 12], 2))).toEqual(
      Array.from(Float32Array.from([0.6, 0.8, 0, 0, -5 / 13, 12 / 13])),
    );
  });

  it('bounds every score of the masked form by 1, so |o_i| <= Σ_j |M_ij| max |v|', () => {
    // Large inputs, the kind whose raw scores overflow f16 (|q · k| in the hundreds here).
    const s = { batch: 1, n: 16, hq: 2, hkv: 1, dk: 8, dv: 4, maskBatch: 1, maskHeads: 1 };
    const q = randn(s.n * s.hq * s.dk, 211, 30);
    const k = randn(s.n * s.hkv * s.dk, 212, 30);
    const v = randn(s.n * s.hkv * s.dv, 213);
    const m = randomBinaryMask(s, 214);
    const raw = maskedLinearAttention(q, k, v, m, s);
    const o = maskedLinearAttention(l2Normalize(q, s.dk), l2Normalize(k, s.dk), v, m, s);
    const vMax = Math.max(...Array.from(v, Math.abs));
    for (let i = 0; i < s.n; i++) {
      let weight = 0;
      for (let j = 0; j < s.n; j++) weight += m[i * s.n + j]!;
      for (let e = 0; e < s.hq * s.dv; e++) {
        expect(Math.abs(o[i * s.hq * s.dv + e]!)).toBeLessThanOrEqual(weight * vMax + 1e-6);
      }
    }
    expect(Math.max(...Array.from(raw, Math.abs)), 'the raw output is far larger').toBeGreaterThan(
      100 * vMax,
    );
  });

  it('has the gradient of central finite differences, rows above and below eps', () => {
    // Rows of norm about 20 and about 2 with eps = 10: both branches, each far from the switch.
    const dim = 3;
    const x = f64(randn(6 * dim, 221));
    for (let e = 0; e < x.length; e++) x[e]! *= Math.floor(e / dim) % 2 === 0 ? 20 / Math.sqrt(dim) : 1;
    const dy = f64(randn(x.length, 222));
    for (const eps of [1e-12, 10]) {
      const grad = l2NormalizeBackward(x, dy, dim, eps);
      expectGradient(`dx, eps ${eps}`, x, grad, () => inner(l2NormalizeF64(x, dim, eps), dy));
    }
  });

  it('rejects a dim that does not divide the length, and a non-positive eps', () => {
    expect(() => l2Normalize([1, 2, 3], 2)).toThrow(/whole rows/);
    expect(() => l2Normalize([1, 2], 2, 0)).toThrow(/eps/);
    expect(() => l2NormalizeBackward([1, 2], [1], 2)).toThrow(/dy has/);
  });
});

import { describe, expect, it } from 'vitest';
import { matmul, randn } from '../src/index.js';

/** Row-major transpose of a [rows, cols] matrix. */
function transpose(x: ArrayLike<number>, rows: number, cols: number): Float32Array {
  return Float32Array.from({ length: rows * cols }, (_, e) => x[(e % rows) * cols + Math.floor(e / rows)]!);
}

describe('matmul', () => {
  it('multiplies a hand-computed 2x3 · 3x2 example', () => {
    // [1 2 3; 4 5 6] · [7 8; 9 10; 11 12] = [1·7+2·9+3·11, 1·8+2·10+3·12; 4·7+5·9+6·11, 4·8+5·10+6·12]
    expect(Array.from(matmul([1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11, 12], 2, 3, 2))).toEqual([
      58, 64, 139, 154,
    ]);
  });

  it('reads b as [n, k] with transposeB, giving the same product as the explicit transpose', () => {
    expect(
      Array.from(matmul([1, 2, 3, 4, 5, 6], [7, 9, 11, 8, 10, 12], 2, 3, 2, { transposeB: true })),
    ).toEqual([58, 64, 139, 154]);
    const [m, k, n] = [5, 7, 3];
    const a = randn(m * k, 1);
    const b = randn(k * n, 2);
    expect(matmul(a, transpose(b, k, n), m, k, n, { transposeB: true })).toEqual(matmul(a, b, m, k, n));
  });

  it('accumulates in f64: 1e8 + 1 - 1e8 is 1, where an f32 sum gives 0', () => {
    expect(Math.fround(Math.fround(1e8 + 1) - 1e8)).toBe(0);
    expect(matmul([1e8, 1, -1e8], [1, 1, 1], 1, 3, 1)[0]).toBe(1);
  });

  it('runs a batch as independent products, with b per product or broadcast', () => {
    const [batch, m, k, n] = [3, 4, 5, 2];
    const a = randn(batch * m * k, 3);
    const bs = randn(batch * k * n, 4);
    const shared = randn(k * n, 5);
    const batched = matmul(a, bs, m, k, n, { batch });
    const broadcast = matmul(a, shared, m, k, n, { batch, broadcastB: true });
    const sharedT = matmul(a, transpose(shared, k, n), m, k, n, {
      batch,
      broadcastB: true,
      transposeB: true,
    });
    for (let p = 0; p < batch; p++) {
      const ap = a.subarray(p * m * k, (p + 1) * m * k);
      const slot = (x: Float32Array) => x.subarray(p * m * n, (p + 1) * m * n);
      expect(slot(batched)).toEqual(matmul(ap, bs.subarray(p * k * n, (p + 1) * k * n), m, k, n));
      expect(slot(broadcast)).toEqual(matmul(ap, shared, m, k, n));
      expect(slot(sharedT)).toEqual(matmul(ap, shared, m, k, n));
    }
  });

  it('handles empty dimensions', () => {
    expect(matmul([], [], 0, 3, 0)).toEqual(new Float32Array(0));
    expect(Array.from(matmul([], [], 2, 0, 2))).toEqual([0, 0, 0, 0]);
  });

  it('rejects inputs whose length does not match the sizes', () => {
    expect(() => matmul([1, 2, 3], [1, 2], 1, 3, 1)).toThrow(/b has 2 elements, expected \[1, 3, 1\] = 3/);
    expect(() => matmul([1, 2], [1], 1, 3, 1)).toThrow(/a has 2 elements/);
    expect(() => matmul(new Float32Array(12), new Float32Array(6), 2, 3, 2, { batch: 2 })).toThrow(/b has 6/);
    expect(() => matmul([], [], -1, 0, 0)).toThrow(/m must be a non-negative integer/);
  });
});

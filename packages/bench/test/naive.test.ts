import { type Gpu, Tensor } from '@webattn/core';
import { testGpu } from '@webattn/core/testing';
import { attentionForward, compare, randn, toleranceFor } from '@webattn/reference';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { naiveAttention } from '../src/naive/naive-attention.js';

describe('the naive attention shown for contrast in the bench', () => {
  let gpu: Gpu;
  beforeAll(async () => {
    gpu = await testGpu();
  });
  afterAll(() => gpu.destroy());

  // One head's scores here are 2 · 21 · 30 f32 = 5040 bytes: all heads in one pass, two per pass,
  // or three then one.
  for (const [causal, heads] of [
    [false, 4],
    [true, 4],
    [true, 2],
    [false, 3],
  ] as const) {
    it(`matches the reference (${causal ? 'causal, ' : ''}GQA, nk > n, ${heads} heads per pass)`, async () => {
      const [b, n, nk, hq, hkv, d] = [2, 21, 30, 4, 2, 16];
      const q = randn(b * n * hq * d, 1);
      const k = randn(b * nk * hkv * d, 2);
      const v = randn(b * nk * hkv * d, 3);
      using tq = Tensor.from(gpu, q, [b, n, hq, d]);
      using tk = Tensor.from(gpu, k, [b, nk, hkv, d]);
      using tv = Tensor.from(gpu, v, [b, nk, hkv, d]);
      using o = await naiveAttention(gpu, tq, tk, tv, causal, heads * 5040 + 100);
      const ref = attentionForward(q, k, v, { batch: b, n, nk, hq, hkv, d, dv: d, causal });
      const result = compare(ref.o, await o.read(), toleranceFor('f32'));
      expect(result.ok, JSON.stringify(result)).toBe(true);
    });
  }

  it("refuses when one head's scores exceed the limit, naming the sizes", async () => {
    using q = Tensor.from(gpu, randn(2 * 21 * 4 * 16, 1), [2, 21, 4, 16]);
    using k = Tensor.from(gpu, randn(2 * 30 * 2 * 16, 2), [2, 30, 2, 16]);
    await expect(naiveAttention(gpu, q, k, k, true, 5039)).rejects.toThrow(
      /one head's scores need 5040 bytes; this device binds at most 5039/,
    );
  });
});

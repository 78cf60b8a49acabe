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

  for (const causal of [false, true]) {
    it(`matches the reference (${causal ? 'causal, ' : ''}GQA, nk > n)`, async () => {
      const [b, n, nk, hq, hkv, d] = [2, 21, 30, 4, 2, 16];
      const q = randn(b * n * hq * d, 1);
      const k = randn(b * nk * hkv * d, 2);
      const v = randn(b * nk * hkv * d, 3);
      using tq = Tensor.from(gpu, q, [b, n, hq, d]);
      using tk = Tensor.from(gpu, k, [b, nk, hkv, d]);
      using tv = Tensor.from(gpu, v, [b, nk, hkv, d]);
      using o = await naiveAttention(gpu, tq, tk, tv, causal);
      const ref = attentionForward(q, k, v, { batch: b, n, nk, hq, hkv, d, dv: d, causal });
      const result = compare(ref.o, await o.read(), toleranceFor('f32'));
      expect(result.ok, JSON.stringify(result)).toBe(true);
    });
  }
});

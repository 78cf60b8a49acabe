import { type Gpu, randomNormal } from '@webattn/core';
import { nullMatrixGpu } from '@webattn/core/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mlaAttention } from '../src/index.js';

// The null backend compiles and dispatches without computing. Presented as a tensor-core adapter,
// it takes every host path of the tier (split plans, uniforms, bindings, dispatch sizes) that
// otherwise only `webattn verify mla` reaches on a GPU.
describe('the tensor-core MLA attention runs its host paths on the null backend', () => {
  let gpu: Gpu;
  const labels: string[] = [];
  beforeAll(async () => {
    gpu = await nullMatrixGpu();
    const get = gpu.pipelines.get.bind(gpu.pipelines);
    gpu.pipelines.get = (code, label, entryPoint) => {
      labels.push(label);
      return get(code, label, entryPoint);
    };
  });
  afterAll(() => gpu.destroy());

  const [heads, r, dr, dv, nk] = [4, 32, 16, 16, 90];
  const lengths = [90, 1, 0, 37];
  for (const [kernel, nq] of [
    ['latent', 1],
    ['latent', 3],
    ['flash', 20],
  ] as const) {
    it(`${kernel} kernel, ${nq} queries per sequence, lengths ${lengths.join('/')}`, async () => {
      const b = lengths.length;
      // The values never matter here: nothing runs.
      const f16 = (shape: number[], seed: number) => randomNormal(gpu, shape, seed, { dtype: 'f16' });
      using qLatent = await f16([b, nq, heads, r], 1);
      using qPe = await f16([b, nq, heads, dr], 2);
      using cKv = await f16([b, nk, r], 3);
      using kPe = await f16([b, nk, dr], 4);
      using wUv = await f16([heads, r, dv], 5);
      const before = gpu.memory().liveBuffers;
      labels.length = 0;
      const o = await mlaAttention(gpu, qLatent, qPe, cKv, kPe, wUv, lengths, {
        scale: (r / 4 + dr) ** -0.5,
        tier: 'subgroup-matrix',
        kernel,
      });
      expect(o.shape).toEqual([b, nq, heads, dv]);
      expect(labels.some((l) => l.includes('matrix'))).toBe(true);
      o.dispose();
      expect(gpu.memory().liveBuffers).toBe(before);
    });
  }
});

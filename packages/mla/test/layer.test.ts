import { type Gpu, Tensor } from '@webattn/core';
import { testGpu } from '@webattn/core/testing';
import {
  compare,
  DEEPSEEK_V2_ROPE,
  MINICPM3_ROPE,
  type MlaDims,
  type MlaRope,
  type MlaSequenceCache,
  mlaLayer,
  mlaSoftmaxScale,
  randn,
  ropeFrequencies,
  toleranceFor,
} from '@webattn/reference';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MlaAttention, MlaCache } from '../src/index.js';

function weightsFor(d: MlaDims, seed: number) {
  const s = (n: number) => 1 / Math.sqrt(n);
  const dk = d.qkNopeHeadDim + d.qkRopeHeadDim;
  const w = {
    kvAProjWithMqa: randn((d.kvLoraRank + d.qkRopeHeadDim) * d.hiddenSize, seed + 1, s(d.hiddenSize)),
    kvALayernorm: randn(d.kvLoraRank, seed + 2, 0.1).map((x) => 1 + x),
    kvBProj: randn(d.heads * (d.qkNopeHeadDim + d.vHeadDim) * d.kvLoraRank, seed + 3, s(d.kvLoraRank)),
    oProj: randn(d.hiddenSize * d.heads * d.vHeadDim, seed + 4, s(d.heads * d.vHeadDim)),
  };
  if (d.qLoraRank) {
    return {
      ...w,
      qAProj: randn(d.qLoraRank * d.hiddenSize, seed + 5, s(d.hiddenSize)),
      qALayernorm: randn(d.qLoraRank, seed + 6, 0.1).map((x) => 1 + x),
      qBProj: randn(d.heads * dk * d.qLoraRank, seed + 7, s(d.qLoraRank)),
    };
  }
  return { ...w, qProj: randn(d.heads * dk * d.hiddenSize, seed + 7, s(d.hiddenSize)) };
}

async function session(gpu: Gpu, dims: MlaDims, rope: MlaRope, steps: number[][]) {
  const weights = weightsFor(dims, 10);
  const scale = mlaSoftmaxScale(dims, rope);
  const layer = new MlaAttention(gpu, weights, {
    dims,
    rope: { style: rope.style, frequencies: (n) => ropeFrequencies(dims.qkRopeHeadDim, rope, n) },
    scale,
  });
  using cache = new MlaCache(gpu, {
    kvLoraRank: dims.kvLoraRank,
    qkRopeHeadDim: dims.qkRopeHeadDim,
    pages: 16,
    pageSize: 4,
    dtype: 'f32',
  });
  gpu.write(cache.pages.buffer, new Float32Array(cache.pages.size).fill(Number.NaN));
  const ids = steps[0]!.map(() => cache.create());
  let refCache: MlaSequenceCache[] | undefined;
  try {
    for (const [i, newLengths] of steps.entries()) {
      const T = newLengths.reduce((a, b) => a + b, 0);
      const x = randn(T * dims.hiddenSize, 100 + i);
      const ref = mlaLayer(x, weights, {
        dims,
        rope,
        newLengths,
        scale,
        ...(refCache && { cache: refCache }),
      });
      refCache = ref.cache;
      using h = Tensor.from(gpu, x, [T, dims.hiddenSize]);
      using out = await layer.forward(h, cache, ids, newLengths);
      const result = compare(ref.out, await out.read(), toleranceFor('f32'));
      expect(result.ok, `step ${i} [${newLengths}]: ${JSON.stringify(result)}`).toBe(true);
    }
  } finally {
    layer.dispose();
  }
}

describe('MlaAttention (absorbed, on the GPU) equals the unabsorbed reference layer', () => {
  let gpu: Gpu;
  beforeAll(async () => {
    gpu = await testGpu();
  });
  afterAll(() => gpu.destroy());

  it('MiniCPM3-style: q_a_proj, LongRoPE rotate-half; prefill, decode, uneven chunks, an empty sequence', async () => {
    const dims: MlaDims = {
      hiddenSize: 48,
      heads: 3,
      qLoraRank: 24,
      kvLoraRank: 16,
      qkNopeHeadDim: 8,
      qkRopeHeadDim: 32,
      vHeadDim: 8,
    };
    await session(gpu, dims, MINICPM3_ROPE, [
      [5, 9, 0],
      [1, 1, 1],
      [3, 2, 4],
    ]);
  });

  it('DeepSeek-V2-Lite-style: q_proj, YaRN interleaved', async () => {
    const dims: MlaDims = {
      hiddenSize: 32,
      heads: 2,
      kvLoraRank: 16,
      qkNopeHeadDim: 8,
      qkRopeHeadDim: 8,
      vHeadDim: 16,
    };
    await session(gpu, dims, DEEPSEEK_V2_ROPE, [
      [7, 3],
      [1, 1],
      [2, 2],
    ]);
  });
});

import { type Gpu, matrixSubgroupSize } from '@webattn/core';
import { nullGpu } from '@webattn/core/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { headConcatWgsl } from '../src/bench/mla-eager-layer.wgsl.js';
import { STREAM_PROBE_WGSL, tensorCoreProbeWgsl } from '../src/bench/probes.js';
import { naiveOutputWgsl, naiveScoresWgsl, naiveSoftmaxWgsl } from '../src/naive/naive-attention.wgsl.js';

describe("the bench's own kernels compile on the null backend", () => {
  let gpu: Gpu;
  beforeAll(async () => {
    gpu = await nullGpu();
  });
  afterAll(() => gpu.destroy());

  it('naive attention in f32 and f16, both probes', async () => {
    const sources: [string, string][] = [
      ['softmax', naiveSoftmaxWgsl()],
      ['stream probe', STREAM_PROBE_WGSL],
      ['tensor-core probe', tensorCoreProbeWgsl({ M: 16, N: 16, K: 16 }, matrixSubgroupSize(gpu.caps))],
    ];
    for (const dtype of ['f32', 'f16'] as const) {
      sources.push(
        [`scores ${dtype}`, naiveScoresWgsl(dtype, 128)],
        [`output ${dtype}`, naiveOutputWgsl(dtype, 128)],
      );
    }
    for (const [label, code] of sources) await expect(gpu.pipelines.get(code, label)).resolves.toBeDefined();
  });

  it("the eager MLA layer's head concatenation in f16, with and without a second slice", async () => {
    const a = { width: 64, rowStride: 40 * 128, offset: 0, headStride: 128 };
    const b = { width: 32, rowStride: 32, offset: 0, headStride: 0 };
    for (const code of [
      headConcatWgsl({ dtype: 'f16', heads: 40, a, b }),
      headConcatWgsl({ dtype: 'f16', heads: 40, a }),
    ]) {
      await expect(gpu.pipelines.get(code, 'head concat')).resolves.toBeDefined();
    }
  });
});

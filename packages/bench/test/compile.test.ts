import { type Gpu, matrixSubgroupSize } from '@webattn/core';
import { nullGpu } from '@webattn/core/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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
});

import { type Gpu, randomNormal } from '@webattn/core';
import { testGpu } from '@webattn/core/testing';
import {
  disposeNsaForward,
  disposeNsaGradients,
  nsaBackward,
  nsaForward,
  nsaForwardTensors,
  resolveNsaConfig,
} from '@webattn/nsa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { peakAllocatedBytes } from '../src/bench/memory.js';

describe('NSA training-step memory (the NSA issue measure, counted by the bench)', () => {
  let gpu: Gpu;
  beforeAll(async () => {
    gpu = await testGpu();
  });
  afterAll(() => gpu.destroy());

  it('peaks under 2x q, k, v, o and the saved tensors', async () => {
    const config = resolveNsaConfig({
      heads: 8,
      kvHeads: 2,
      headDim: 32,
      kernelSize: 16,
      stride: 8,
      blockSize: 16,
      topN: 4,
      windowSize: 32,
    } as never);
    const n = 160;
    const shape = (heads: number, dim: number) => [1, n, heads, dim];
    const q = await randomNormal(gpu, shape(config.heads, config.headDim), 1);
    const k = await randomNormal(gpu, shape(config.kvHeads, config.headDim), 2);
    const v = await randomNormal(gpu, shape(config.kvHeads, config.vHeadDim), 3);
    const g = await randomNormal(gpu, shape(config.heads, 3), 4);
    const dO = await randomNormal(gpu, shape(config.heads, config.vHeadDim), 5);
    let saved = 0;
    const peak = await peakAllocatedBytes(gpu, async () => {
      const forward = await nsaForward(gpu, config, q, k, v, g);
      saved = nsaForwardTensors(forward).reduce((sum, t) => sum + t.byteLength, 0);
      const grads = await nsaBackward(forward, dO);
      disposeNsaForward(forward);
      disposeNsaGradients(grads);
      await gpu.sync();
    });
    const inputs = [q, k, v, g, dO].reduce((sum, t) => sum + t.byteLength, 0);
    const qkv = q.byteLength + k.byteLength + v.byteLength;
    // Before the backward freed each branch's upstream gradient and dq as it went, this was 2.8x.
    expect((inputs + peak) / (qkv + saved)).toBeLessThan(2);
    for (const t of [q, k, v, g, dO]) t.dispose();
  });
});

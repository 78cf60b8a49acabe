import { type Gpu, Tensor, vec4uElements } from '@webattn/core';
import { testGpu } from '@webattn/core/testing';
import { randn } from '@webattn/reference';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sumTensors } from '../src/backward/sum.js';
import { SUM_WORKGROUP } from '../src/backward/sum.wgsl.js';

// The backward sums the branches' gradients; both of its paths (16-byte vectors where the size is
// a whole number of them, one element per invocation otherwise), two and three terms, on sizes off
// the workgroup size. Each element's terms are added in f32 in one order either way: the f32 sums
// must be the bits of the same additions on the CPU.
describe('the gradient sum on SwiftShader', () => {
  let gpu: Gpu;
  beforeAll(async () => {
    gpu = await testGpu();
  });
  afterAll(() => gpu.destroy());

  const width = vec4uElements('f32');
  for (const size of [width * (SUM_WORKGROUP + 3), width * (SUM_WORKGROUP + 3) + 1, 7]) {
    for (const terms of [2, 3]) {
      const path = size % width === 0 ? '16-byte vectors' : 'one element each';
      it(`${terms} terms of ${size} elements (${path})`, async () => {
        const values = Array.from({ length: terms }, (_, i) => randn(size, 40 + i));
        const tensors = values.map((x) => Tensor.from(gpu, x, [size]));
        try {
          using sum = await sumTensors(gpu, tensors);
          const expected = new Float32Array(size);
          for (let e = 0; e < size; e++) {
            let acc = Math.fround(values[0]![e]! + values[1]![e]!);
            if (terms === 3) acc = Math.fround(acc + values[2]![e]!);
            expected[e] = acc;
          }
          expect(await sum.read()).toEqual(expected);
        } finally {
          for (const t of tensors) t.dispose();
        }
      });
    }
  }
});

import { type Gpu, Tensor } from '@webattn/core';
import { testGpu } from '@webattn/core/testing';
import { combineForward, compare, randn, toleranceFor } from '@webattn/reference';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { combineBranches } from '../src/combine/combine.js';
import { combineVectorElements } from '../src/combine/combine.wgsl.js';

// The whole-module tests run head dims that are multiples of four, all on the vectorised path:
// here both paths, with and without the compressed branch, on a row count off the workgroup size.
describe('the gated combine on SwiftShader against the reference', () => {
  let gpu: Gpu;
  beforeAll(async () => {
    gpu = await testGpu();
  });
  afterAll(() => gpu.destroy());

  const rows = 37;
  for (const dv of [4, 6, 8, 20]) {
    for (const withCompressed of [true, false]) {
      const path = dv % combineVectorElements('f32') === 0 ? '16-byte vectors' : 'one element each';
      it(`dv ${dv}, ${withCompressed ? 'three branches' : 'no compressed branch'} (${path})`, async () => {
        const gates = randn(rows * 3, 1);
        const outputs = [0, 1, 2].map((i) => randn(rows * dv, 2 + i));
        if (!withCompressed) outputs[0]!.fill(0);
        using gate = Tensor.from(gpu, gates, [rows, 3]);
        using compressed = Tensor.from(gpu, outputs[0]!, [rows, dv]);
        using selected = Tensor.from(gpu, outputs[1]!, [rows, dv]);
        using window = Tensor.from(gpu, outputs[2]!, [rows, dv]);
        using o = await combineBranches(gpu, gate, {
          ...(withCompressed && { compressed }),
          selected,
          window,
        });
        const [c, s, w] = outputs.map((x) => Float64Array.from(x));
        const expected = combineForward([c!, s!, w!], gates, dv);
        const result = compare(expected, await o.read(), toleranceFor('f32'));
        expect(result.ok, JSON.stringify(result)).toBe(true);
      });
    }
  }
});

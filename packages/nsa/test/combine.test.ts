import { type Gpu, Tensor, vec4uElements } from '@webattn/core';
import { testGpu } from '@webattn/core/testing';
import { combineBackward, combineForward, compare, randn, toleranceFor } from '@webattn/reference';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BRANCH_INDEX, combineBranchBackward, combineBranches } from '../src/combine/combine.js';

// The whole-module tests run head dims that are multiples of four, all on the vectorised path:
// here both paths, forward and backward, with and without the compressed branch, on a row count
// off the workgroup size.
describe('the gated combine on SwiftShader against the reference', () => {
  let gpu: Gpu;
  beforeAll(async () => {
    gpu = await testGpu();
  });
  afterAll(() => gpu.destroy());

  const rows = 37;
  for (const dv of [4, 6, 8, 20]) {
    for (const withCompressed of [true, false]) {
      const path = dv % vec4uElements('f32') === 0 ? '16-byte vectors' : 'one element each';
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

      it(`backward: dv ${dv}, ${withCompressed ? 'three branches' : 'no compressed branch'} (${path})`, async () => {
        const gates = randn(rows * 3, 5);
        const outputs = [0, 1, 2].map((i) => randn(rows * dv, 6 + i));
        const dO = randn(rows * dv, 9);
        if (!withCompressed) outputs[0]!.fill(0);
        using gate = Tensor.from(gpu, gates, [rows, 3]);
        using tdO = Tensor.from(gpu, dO, [rows, dv]);
        using dgate = Tensor.zeros(gpu, [rows, 3]);
        const [c, s, w] = outputs.map((x) => Float64Array.from(x));
        const expected = combineBackward([c!, s!, w!], gates, dO, dv);
        for (const branch of ['compressed', 'selected', 'window'] as const) {
          const i = BRANCH_INDEX[branch];
          const present = branch !== 'compressed' || withCompressed;
          using output = present ? Tensor.from(gpu, outputs[i]!, [rows, dv]) : undefined;
          using grad = await combineBranchBackward(gpu, gate, tdO, branch, output, dgate);
          expect(grad === undefined, branch).toBe(!present);
          if (grad) {
            const result = compare(expected.dBranches[i]!, await grad.read(), toleranceFor('f32'));
            expect(result.ok, `d${branch}: ${JSON.stringify(result)}`).toBe(true);
          }
        }
        // Without a compressed branch the reference's zero output gives its gate a zero gradient too.
        const result = compare(expected.dGates, await dgate.read(), toleranceFor('f32'));
        expect(result.ok, `dgate: ${JSON.stringify(result)}`).toBe(true);
      });
    }
  }
});

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
        // 39 tokens of 2 heads: a dense batch of 3 x 13 as far as the deltas' layouts go.
        const [tokens, heads] = [39, 2];
        const rows = tokens * heads;
        const gates = randn(rows * 3, 5);
        const outputs = [0, 1, 2].map((i) => randn(rows * dv, 6 + i));
        const dO = randn(rows * dv, 9);
        if (!withCompressed) outputs[0]!.fill(0);
        using gate = Tensor.from(gpu, gates, [tokens, heads, 3]);
        using tdO = Tensor.from(gpu, dO, [tokens, heads, dv]);
        using dgate = Tensor.zeros(gpu, [tokens, heads, 3]);
        const [c, s, w] = outputs.map((x) => Float64Array.from(x));
        const expected = combineBackward([c!, s!, w!], gates, dO, dv);
        // Each branch's delta in a layout of its own: the flash lse layout of a dense batch of 3 x
        // 13 (stride 13), token-major rows (1), the packed lse layout (39).
        const strides = { compressed: 13, selected: 1, window: tokens };
        for (const branch of ['compressed', 'selected', 'window'] as const) {
          const i = BRANCH_INDEX[branch];
          const present = branch !== 'compressed' || withCompressed;
          using output = present ? Tensor.from(gpu, outputs[i]!, [tokens, heads, dv]) : undefined;
          using delta = Tensor.zeros(gpu, [rows]);
          const stride = strides[branch];
          using grad = await combineBranchBackward(
            gpu,
            gate,
            tdO,
            branch,
            output && { o: output, delta: { tensor: delta, stride } },
            dgate,
          );
          expect(grad === undefined, branch).toBe(!present);
          if (grad) {
            const result = compare(expected.dBranches[i]!, await grad.read(), toleranceFor('f32'));
            expect(result.ok, `d${branch}: ${JSON.stringify(result)}`).toBe(true);
            const deltas = new Float64Array(rows);
            for (let row = 0; row < rows; row++) {
              const [t, h] = [Math.floor(row / heads), row % heads];
              let sum = 0;
              for (let e = 0; e < dv; e++)
                sum += expected.dBranches[i]![row * dv + e]! * outputs[i]![row * dv + e]!;
              deltas[(Math.floor(t / stride) * heads + h) * stride + (t % stride)] = sum;
            }
            const deltaResult = compare(deltas, await delta.read(), toleranceFor('f32'));
            expect(deltaResult.ok, `${branch} delta: ${JSON.stringify(deltaResult)}`).toBe(true);
          }
        }
        // Without a compressed branch the reference's zero output gives its gate a zero gradient too.
        const result = compare(expected.dGates, await dgate.read(), toleranceFor('f32'));
        expect(result.ok, `dgate: ${JSON.stringify(result)}`).toBe(true);
      });
    }
  }
});

import { type Gpu, Tensor } from '@webattn/core';
import { testGpu } from '@webattn/core/testing';
import { randn } from '@webattn/reference';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { disposeNsaForward, nsaForward, readSelection, resolveNsaConfig } from '../src/index.js';
import { invertSelection } from '../src/select/inverse.js';

// The tokens of every (selection block, KV head), in token order, straight from the selection.
function expectedInverse(
  selection: Int32Array,
  lengths: number[],
  kvHeads: number,
  topN: number,
  blockSize: number,
): number[][] {
  const lists: number[][] = [];
  let start = 0;
  for (const length of lengths) {
    for (let block = 0; block < Math.ceil(length / blockSize); block++) {
      for (let g = 0; g < kvHeads; g++) {
        const tokens: number[] = [];
        for (let pos = block * blockSize; pos < length; pos++) {
          const row = ((start + pos) * kvHeads + g) * topN;
          if (selection.subarray(row, row + topN).includes(block)) tokens.push(pos);
        }
        lists.push(tokens);
      }
    }
    start += length;
  }
  return lists;
}

describe('the inverted selection', () => {
  let gpu: Gpu;
  beforeAll(async () => {
    gpu = await testGpu();
  });
  afterAll(() => gpu.destroy());

  // Three slots are read one at a time, four as one vec4.
  const cases = [
    { name: 'dense batch of 2, n off every block size', lengths: [45, 45], cuSeqlens: undefined, topN: 3 },
    { name: 'packed sequences 1, 29, 70', lengths: [1, 29, 70], cuSeqlens: [0, 1, 30, 100], topN: 3 },
    {
      name: 'packed sequences 1, 29, 70, four slots',
      lengths: [1, 29, 70],
      cuSeqlens: [0, 1, 30, 100],
      topN: 4,
    },
  ];
  for (const c of cases) {
    it(`lists every selecting token once, in order: ${c.name}`, async () => {
      const config = resolveNsaConfig({
        heads: 4,
        kvHeads: 2,
        headDim: 16,
        kernelSize: 4,
        stride: 2,
        blockSize: 8,
        topN: c.topN,
        windowSize: 6,
      });
      const total = c.lengths.reduce((a, b) => a + b, 0);
      const dims = c.cuSeqlens ? [total] : [c.lengths.length, c.lengths[0] ?? 0];
      const make = (heads: number, dim: number, seed: number) =>
        Tensor.from(gpu, randn(total * heads * dim, seed), [...dims, heads, dim]);
      using q = make(4, 16, 1);
      using k = make(2, 16, 2);
      using v = make(2, 16, 3);
      using g = make(4, 3, 4);
      const forward = await nsaForward(
        gpu,
        config,
        q,
        k,
        v,
        g,
        c.cuSeqlens ? { cuSeqlens: c.cuSeqlens } : {},
      );
      const { ctx } = forward;
      const tables = {
        tensor: ctx.tables,
        tokenTable: ctx.tokenTable,
        blockTable: ctx.blockTable,
        blocks: ctx.blocks,
      };
      // Chunks of 2 tokens, so that lists of 0, 1, 2 and more tokens all occur.
      const chunk = 2;
      const inverse = await invertSelection(gpu, forward.selection, tables, ctx.layout, config, chunk);
      const words = new Uint32Array((await inverse.tensor.read()).buffer);
      const expected = expectedInverse(await readSelection(forward.selection), c.lengths, 2, c.topN, 8);
      expect(inverse.entries).toBe(expected.length + 1);
      const got = expected.map((_, i) =>
        Array.from(words.subarray(inverse.entries + words[i]!, inverse.entries + words[i + 1]!)),
      );
      expect(got).toEqual(expected);
      expect(words[expected.length]).toBe(expected.flat().length);
      // Each list's first chunk: max(1, ceil(count / chunk)) chunks per list, in list order.
      const starts = [0];
      for (const list of expected) starts.push(starts.at(-1)! + Math.max(1, Math.ceil(list.length / chunk)));
      expect(
        Array.from(words.subarray(inverse.chunkStart, inverse.chunkStart + expected.length + 1)),
      ).toEqual(starts);
      expect(new Set(expected.map((list) => list.length)).size).toBeGreaterThan(2);
      expect(inverse.maxChunks).toBeGreaterThanOrEqual(starts.at(-1)!);
      inverse.tensor.dispose();
      disposeNsaForward(forward);
    });
  }
});

import { type Gpu, Tensor } from '@webattn/core';
import { testGpu } from '@webattn/core/testing';
import { randn } from '@webattn/reference';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { disposeNsaForward, nsaForward, readSelection, resolveNsaConfig } from '../src/index.js';
import { nsaLayout, sequenceTable, wordsTensor } from '../src/layout.js';
import { invertSelection } from '../src/select/inverse.js';
import { INVERSE_GROUP, INVERSE_THREADS } from '../src/select/inverse.wgsl.js';

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
  // A selection written here rather than by a forward: sequences long enough for several steps of
  // the kernels' token walk and several groups of blocks per workgroup, so that every mask set is
  // used, cleared and used again, and groups straddle sequences.
  it('lists every selecting token once, in order, over many steps and block groups', async () => {
    const blockSize = 8;
    const topN = 4;
    const kvHeads = 2;
    const lengths = [3 * INVERSE_THREADS + 37, 5, 2 * INVERSE_GROUP * blockSize + 3 * INVERSE_THREADS + 11];
    const cuSeqlens = [0];
    for (const n of lengths) cuSeqlens.push(cuSeqlens.at(-1)! + n);
    const total = cuSeqlens.at(-1)!;
    const config = resolveNsaConfig({
      heads: 2,
      kvHeads,
      headDim: 16,
      kernelSize: 4,
      stride: 2,
      blockSize,
      topN,
      windowSize: 6,
    });
    // Each token picks distinct blocks at or before its own (the first always, as init blocks are),
    // the rest of its slots -1, from a fixed generator.
    let state = 12345;
    const next = () => {
      // xorshift32
      state ^= state << 13;
      state ^= state >>> 17;
      state ^= state << 5;
      return state >>> 0;
    };
    const selection = new Int32Array(total * kvHeads * topN).fill(-1);
    let start = 0;
    for (const length of lengths) {
      for (let pos = 0; pos < length; pos++) {
        for (let g = 0; g < kvHeads; g++) {
          const own = Math.floor(pos / blockSize);
          const picks = new Set([0]);
          const wanted = Math.min(own + 1, 1 + (next() % topN));
          while (picks.size < wanted) picks.add(next() % (own + 1));
          selection.set([...picks], ((start + pos) * kvHeads + g) * topN);
        }
      }
      start += length;
    }
    using q = Tensor.zeros(gpu, [total, 2, 16]);
    const layout = nsaLayout(q, config, cuSeqlens);
    const table = sequenceTable(layout, blockSize);
    using tables = wordsTensor(gpu, table.words);
    using picks = Tensor.from(gpu, new Float32Array(selection.buffer), [total, kvHeads, topN]);
    const inverse = await invertSelection(
      gpu,
      picks,
      { tensor: tables, tokenTable: table.tokenTable, blockTable: table.blockTable, blocks: table.blocks },
      layout,
      config,
    );
    const words = new Uint32Array((await inverse.tensor.read()).buffer);
    const expected = expectedInverse(selection, lengths, kvHeads, topN, blockSize);
    expect(table.blocks).toBeGreaterThan(2 * INVERSE_GROUP);
    expect(inverse.entries).toBe(expected.length + 1);
    const got = expected.map((_, i) =>
      Array.from(words.subarray(inverse.entries + words[i]!, inverse.entries + words[i + 1]!)),
    );
    expect(got).toEqual(expected);
    // The first block's list runs over every step of its sequence's walk; later blocks have lists
    // of many lengths.
    expect(expected[0]!.length).toBe(lengths[0]);
    expect(new Set(expected.map((list) => list.length)).size).toBeGreaterThan(20);
    inverse.tensor.dispose();
  });
});

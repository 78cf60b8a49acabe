import { type Gpu, Tensor } from '@webattn/core';
import { declaredWorkgroupBytes, testGpu } from '@webattn/core/testing';
import { compare, randn, nsaDecode as referenceDecode, toleranceFor } from '@webattn/reference';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeKernelConfig, decodeSelectSharedBytes, decodeSelectWgsl } from '../src/decode/decode.wgsl.js';
import {
  NsaCache,
  type NsaReferenceSettings,
  nsaDecode,
  readSelection,
  resolveNsaConfigFromReference,
} from '../src/index.js';

interface Case {
  name: string;
  lengths: number[];
  hq: number;
  hkv: number;
  d: number;
  dv: number;
  /** The reference's hyper-parameters (its names); its defaults where absent. */
  settings: NsaReferenceSettings;
}

const SMALL = {
  kernelSize: 4,
  stride: 2,
  selectSize: 8,
  topN: 3,
  windowSize: 6,
  initBlocks: 1,
  localBlocks: 1,
};
const CASES: Case[] = [
  {
    name: 'sequences of 1, 23 and 40 tokens, GQA 2',
    lengths: [1, 23, 40],
    hq: 4,
    hkv: 2,
    d: 16,
    dv: 8,
    settings: SMALL,
  },
  {
    // Over THREADS (64) compressed blocks and window keys: the online softmax across chunks; d not
    // a multiple of the unrolled step (8): the loops' remainders.
    name: 'sequences of 300 and 151 tokens, a window of 70, d = 20, GQA 4',
    lengths: [300, 151],
    hq: 4,
    hkv: 1,
    d: 20,
    dv: 8,
    settings: { ...SMALL, windowSize: 70 },
  },
  {
    name: 'the reference defaults, 100 tokens and 7 (no compressed block yet), GQA 16',
    lengths: [100, 7],
    hq: 16,
    hkv: 1,
    d: 16,
    dv: 16,
    settings: {},
  },
];

function configOf(c: Case) {
  return resolveNsaConfigFromReference(
    { heads: c.hq, kvHeads: c.hkv, headDim: c.d, vHeadDim: c.dv },
    c.settings,
  );
}

/** Rows `[start, start + count)` of a token-major array with `row` values per token. */
const rows = (x: Float32Array, start: number, count: number, row: number) =>
  x.subarray(start * row, (start + count) * row);

describe('NsaCache and nsaDecode on SwiftShader against the reference', () => {
  let gpu: Gpu;
  beforeAll(async () => {
    gpu = await testGpu();
  });
  afterAll(() => gpu.destroy());

  // The tier reaches the compressed and window attention, core's flash forward.
  for (const [c, tier] of CASES.flatMap((c) =>
    (['portable', 'subgroups'] as const).map((t) => [c, t] as const),
  )) {
    it(`the newest token of each sequence, the cache grown in two steps: ${c.name} [${tier}]`, async () => {
      const { lengths, hq, hkv, d, dv } = c;
      const config = configOf(c);
      const batch = lengths.length;
      const total = lengths.reduce((a, b) => a + b, 0);
      const cu = [0, ...lengths.map((_, i) => lengths.slice(0, i + 1).reduce((a, b) => a + b, 0))];
      const k = randn(total * hkv * d, 1);
      const v = randn(total * hkv * dv, 2);
      const q = randn(batch * hq * d, 3);
      const gates = randn(batch * hq * 3, 4);
      const before = gpu.memory().liveBuffers;
      const cache = NsaCache.create(gpu, config, { batch, capacity: Math.max(...lengths) + 3 });
      // Every prefix but its newest token, then the newest tokens, one per sequence: blocks are
      // completed by both calls.
      const prefix = (x: Float32Array, row: number) =>
        Float32Array.from(lengths.flatMap((n, b) => Array.from(rows(x, cu[b]!, n - 1, row))));
      const newest = (x: Float32Array, row: number) =>
        Float32Array.from(lengths.flatMap((n, b) => Array.from(rows(x, cu[b]! + n - 1, 1, row))));
      const counts = lengths.map((n) => n - 1);
      {
        using kp = Tensor.from(gpu, prefix(k, hkv * d), [total - batch, hkv, d]);
        using vp = Tensor.from(gpu, prefix(v, hkv * dv), [total - batch, hkv, dv]);
        await cache.append(kp, vp, counts);
        using kn = Tensor.from(gpu, newest(k, hkv * d), [batch, hkv, d]);
        using vn = Tensor.from(gpu, newest(v, hkv * dv), [batch, hkv, dv]);
        await cache.append(kn, vn);
      }
      expect(cache.lengths).toEqual(lengths);
      const tq = Tensor.from(gpu, q, [batch, hq, d]);
      const tg = Tensor.from(gpu, gates, [batch, hq, 3]);
      const result = await nsaDecode(gpu, cache, tq, tg, { tier });
      const options = { hq, hkv, dqk: d, dv, ...c.settings };
      const own = referenceDecode({ q, k, v, gates }, cu, options);
      const selection = await readSelection(result.selection);
      expect(Array.from(selection)).toEqual(Array.from(own.selection));
      const ref = referenceDecode({ q, k, v, gates, selection }, cu, options);
      const check = compare(ref.o, await result.o.read(), toleranceFor('f32'));
      expect(check.ok, JSON.stringify(check)).toBe(true);
      for (const t of [result.o, result.selection, tq, tg]) t.dispose();
      cache.dispose();
      expect(gpu.memory().liveBuffers).toBe(before);
    });
  }

  it('rejects bad input before dispatching', async () => {
    const [hq, hkv, d, dv] = [4, 2, 16, 8];
    const config = configOf(CASES[0]!);
    using cache = {
      c: NsaCache.create(gpu, config, { batch: 2, capacity: 4 }),
      [Symbol.dispose]() {
        this.c.dispose();
      },
    };
    using q = Tensor.from(gpu, randn(2 * hq * d, 5), [2, hq, d]);
    using g = Tensor.from(gpu, randn(2 * hq * 3, 6), [2, hq, 3]);
    await expect(nsaDecode(gpu, cache.c, q, g)).rejects.toThrow(/cache: sequence 0 is empty/);
    using k = Tensor.from(gpu, randn(5 * hkv * d, 7), [5, hkv, d]);
    using v = Tensor.from(gpu, randn(5 * hkv * dv, 8), [5, hkv, dv]);
    await expect(cache.c.append(k, v, [5, 0])).rejects.toThrow(
      /counts\[0\]: sequence 0 holds 0 of 4 tokens and cannot take 5 more/,
    );
    await expect(cache.c.append(k, v)).rejects.toThrow(/k: expected shape \[2, 2, 16\], got \[5, 2, 16\]/);
    using qWrong = Tensor.from(gpu, randn(2 * hq * 8, 9), [2, hq, 8]);
    await expect(nsaDecode(gpu, cache.c, qWrong, g)).rejects.toThrow(
      /q: expected shape \[2, 4, 16\], got \[2, 4, 8\]/,
    );
    expect(() => NsaCache.create(gpu, config, { batch: 0, capacity: 4 })).toThrow(
      /options.batch: expected a positive integer, got 0/,
    );
  });

  it("checks the selection's workgroup memory against what its kernel declares, and refuses a cache that exceeds it", async () => {
    const config = configOf(CASES[0]!);
    for (const maxBlocks of [1, 37, 1024]) {
      const c = decodeKernelConfig(config, 'f32', maxBlocks);
      expect(declaredWorkgroupBytes(decodeSelectWgsl(c)), `${maxBlocks} blocks`).toBe(
        decodeSelectSharedBytes(c),
      );
    }
    // A sequence with more selection blocks than the device's workgroup memory holds is refused.
    const limit = gpu.caps.limits.maxComputeWorkgroupStorageSize;
    const blocks = limit / 4;
    const tokens = blocks * config.blockSize;
    using cache = {
      c: NsaCache.create(gpu, config, { batch: 1, capacity: tokens }),
      [Symbol.dispose]() {
        this.c.dispose();
      },
    };
    const [hkv, d, dv] = [config.kvHeads, config.headDim, config.vHeadDim];
    using k = Tensor.zeros(gpu, [tokens, hkv, d]);
    using v = Tensor.zeros(gpu, [tokens, hkv, dv]);
    await cache.c.append(k, v, [tokens]);
    using q = Tensor.zeros(gpu, [1, config.heads, d]);
    using g = Tensor.zeros(gpu, [1, config.heads, 3]);
    await expect(nsaDecode(gpu, cache.c, q, g)).rejects.toThrow(/bytes of workgroup storage for selection/);
  });
});

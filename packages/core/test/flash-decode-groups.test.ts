import { attentionVarlen, attentionVarlenBackward, randn } from '@webattn/reference';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { groupedDecodeProblem, groupPermuteWgsl, isGroupedDecode } from '../src/flash/decode-groups.js';
import { flashProblem } from '../src/flash/problem.js';
import {
  FLASH_SPLIT_KV,
  flashAttention,
  flashAttentionBackward,
  type Gpu,
  planKeySplits,
  type SplitKvSettings,
  Tensor,
  type Tier,
} from '../src/index.js';
import { nullGpu, testGpu } from '../src/testing.js';
import { checkDenseCase, cumulativeLengths, type DenseCase, expectClose, problemOf } from './dense-cases.js';

describe('grouped decode: which problems take it', () => {
  let gpu: Gpu;
  beforeAll(async () => {
    gpu = await nullGpu();
  });
  afterAll(() => gpu.destroy());

  const problem = (n: number, hq: number, hkv: number, options: Parameters<typeof flashProblem>[3]) =>
    problemOf(gpu, { b: 2, n, nk: 100, hq, hkv, d: 16 }, options);

  it('takes one query per sequence with GQA, under any mask', () => {
    expect(isGroupedDecode(problem(1, 8, 2, { causal: true }))).toBe(true);
    expect(isGroupedDecode(problem(1, 8, 2, {}))).toBe(true);
    expect(isGroupedDecode(problem(1, 8, 2, { window: [20, 3] }))).toBe(true);
  });

  it('leaves two queries, no GQA, and key blocks', () => {
    expect(isGroupedDecode(problem(2, 8, 2, { causal: true }))).toBe(false);
    expect(isGroupedDecode(problem(1, 4, 4, { causal: true }))).toBe(false);
    expect(isGroupedDecode(problem(1, 8, 2, { keyBlocks: { size: 4, stride: 4 } }))).toBe(false);
  });

  it('gives the grouped queries the keys the query sees: the last left + 1 under a window', () => {
    const grouped = groupedDecodeProblem(problem(1, 8, 2, { window: [20, 0] }));
    expect(grouped.hq).toBe(2);
    expect(grouped.mask).toEqual({ left: -1, right: -1 });
    expect(grouped.sequences.map((s) => [s.qStart, s.qLen, s.kStart, s.kLen])).toEqual([
      [0, 4, 79, 21],
      [4, 4, 179, 21],
    ]);
    const whole = groupedDecodeProblem(problem(1, 8, 2, { window: [500, 0] }));
    expect(whole.sequences.map((s) => [s.kStart, s.kLen])).toEqual([
      [0, 100],
      [100, 100],
    ]);
  });

  it('compiles the f16 permutations on the null backend', async () => {
    for (const toGrouped of [true, false]) {
      const code = groupPermuteWgsl({ dtype: 'f16', width: 128, toGrouped });
      await expect(gpu.pipelines.get(code, `group permute ${toGrouped}`)).resolves.toBeDefined();
    }
  });
});

describe('grouped decode on SwiftShader against the reference', () => {
  let gpu: Gpu;
  const defaults: SplitKvSettings = { ...FLASH_SPLIT_KV };
  beforeAll(async () => {
    gpu = await testGpu();
  });
  afterAll(() => gpu.destroy());
  afterEach(() => Object.assign(FLASH_SPLIT_KV, defaults));

  // GQA 4 and 16, with and without the causal flag, windows short of the first key and reaching
  // it, and enough keys (700) that the grouped launch also splits over its keys.
  const CASES: (DenseCase & { tier: Tier })[] = [
    {
      name: 'GQA 4, causal',
      b: 3,
      n: 1,
      nk: 77,
      hq: 8,
      hkv: 2,
      d: 64,
      dv: 32,
      causal: true,
      tier: 'portable',
    },
    { name: 'GQA 16, not causal', b: 2, n: 1, nk: 40, hq: 16, hkv: 1, d: 32, dv: 32, tier: 'subgroups' },
    {
      name: 'GQA 4, window [20, 0] short of the first key',
      b: 2,
      n: 1,
      nk: 90,
      hq: 8,
      hkv: 2,
      d: 32,
      dv: 32,
      window: [20, 0],
      tier: 'portable',
    },
    {
      name: 'GQA 4, window reaching the first key, split over 700 keys',
      b: 2,
      n: 1,
      nk: 700,
      hq: 4,
      hkv: 1,
      d: 64,
      dv: 64,
      window: [800, 0],
      tier: 'subgroups',
    },
  ];

  for (const c of CASES) {
    it(`${c.name} [${c.tier}]: o, lse, and the backward from them`, async () => {
      const run = await checkDenseCase(gpu, c, c.tier, { seed: 31 });
      expect(isGroupedDecode(run.problem)).toBe(true);
    });
  }

  it('packed sequences of 1..300 keys, one with none, GQA 8, split in parts of 16', async () => {
    Object.assign(FLASH_SPLIT_KV, { minSplitKeys: 16, keyAlign: 16 });
    const kLens = [1, 300, 0, 45];
    const cuK = cumulativeLengths(kLens);
    const cuQ = kLens.map((_, i) => i).concat(kLens.length);
    const [totalQ, totalK, hq, hkv, d, dv] = [kLens.length, cuK.at(-1)!, 8, 1, 32, 16];
    const qa = randn(totalQ * hq * d, 35);
    const ka = randn(totalK * hkv * d, 36);
    const va = randn(totalK * hkv * dv, 37);
    using q = Tensor.from(gpu, qa, [totalQ, hq, d]);
    using k = Tensor.from(gpu, ka, [totalK, hkv, d]);
    using v = Tensor.from(gpu, va, [totalK, hkv, dv]);
    const options = { causal: true, cuSeqlensQ: cuQ, cuSeqlensK: cuK };
    expect(isGroupedDecode(flashProblem(q, k, v, options))).toBe(true);
    const { o, lse } = await flashAttention(gpu, q, k, v, { ...options, tier: 'portable' });
    using _o = o;
    using _lse = lse;
    const ref = attentionVarlen(qa, ka, va, Int32Array.from(cuQ), Int32Array.from(cuK), {
      hq,
      hkv,
      d,
      dv,
      causal: true,
    });
    const [go, glse] = [await o.read(), await lse.read()];
    expectClose('o', ref.o, go);
    expectClose('lse', ref.lse, glse);
    // The sequence with no keys: o = 0 and lse = -inf for every head.
    for (let h = 0; h < hq; h++) expect(glse[h * totalQ + 2]).toBe(Number.NEGATIVE_INFINITY);
    expect(go.subarray(2 * hq * dv, 3 * hq * dv).every((x) => x === 0)).toBe(true);
    expect(planKeySplits(groupedDecodeProblem(flashProblem(q, k, v, options)), 32).splits).toBeGreaterThan(1);
  });
});

describe('a dense cache with per-sequence lengths (cacheSeqlens) on SwiftShader', () => {
  let gpu: Gpu;
  beforeAll(async () => {
    gpu = await testGpu();
  });
  afterAll(() => gpu.destroy());

  const [capacity, hq, hkv, d, dv] = [90, 4, 2, 32, 16];
  const lengths = [90, 37, 0];
  const batch = lengths.length;
  /** Random rows, NaN past each sequence's length: a kernel that reads them poisons its output. */
  const cacheRows = (width: number, seed: number) => {
    const x = randn(batch * capacity * hkv * width, seed);
    lengths.forEach((len, b) => {
      x.fill(Number.NaN, (b * capacity + len) * hkv * width, (b + 1) * capacity * hkv * width);
    });
    return x;
  };
  /** The first `lengths[b]` rows of each sequence, packed. */
  const packed = (x: Float32Array, width: number) =>
    Float32Array.from(
      lengths.flatMap((len, b) =>
        Array.from(x.subarray(b * capacity * hkv * width, (b * capacity + len) * hkv * width)),
      ),
    );
  const cuK = cumulativeLengths(lengths);

  // One query per sequence (a grouped decode) and three (a chunk at the end of each sequence; the
  // empty sequence's rows see nothing).
  for (const n of [1, 3]) {
    it(`n = ${n}: o, lse and dq, dk, dv match the packed reference, the rows past each length unread and given no gradient`, async () => {
      const qa = randn(batch * n * hq * d, 41);
      const ka = cacheRows(d, 42);
      const va = cacheRows(dv, 43);
      const da = randn(batch * n * hq * dv, 44);
      using q = Tensor.from(gpu, qa, [batch, n, hq, d]);
      using k = Tensor.from(gpu, ka, [batch, capacity, hkv, d]);
      using v = Tensor.from(gpu, va, [batch, capacity, hkv, dv]);
      using dO = Tensor.from(gpu, da, [batch, n, hq, dv]);
      const options = { causal: true, cacheSeqlens: lengths };
      expect(isGroupedDecode(flashProblem(q, k, v, options))).toBe(n === 1);
      const { o, lse, ctx } = await flashAttention(gpu, q, k, v, { ...options, tier: 'portable' });
      using _o = o;
      using _lse = lse;
      const cuQ = lengths.map((_, b) => b * n).concat(batch * n);
      const shape = { hq, hkv, d, dv, causal: true };
      const [pk, pv] = [packed(ka, d), packed(va, dv)];
      const ref = attentionVarlen(qa, pk, pv, Int32Array.from(cuQ), Int32Array.from(cuK), shape);
      expectClose('o', ref.o, await o.read());
      // Dense lse [b, hq, n] against packed [hq, b·n].
      const glse = await lse.read();
      const wantLse = new Float32Array(glse.length);
      for (let b = 0; b < batch; b++)
        for (let h = 0; h < hq; h++)
          for (let i = 0; i < n; i++) wantLse[(b * hq + h) * n + i] = ref.lse[h * batch * n + b * n + i]!;
      expectClose('lse', wantLse, glse);
      const grads = await flashAttentionBackward(ctx, dO);
      using dq = grads.dq;
      using dk = grads.dk;
      using dvT = grads.dv;
      const refGrads = attentionVarlenBackward(
        qa,
        pk,
        pv,
        ref.o,
        ref.lse,
        da,
        Int32Array.from(cuQ),
        Int32Array.from(cuK),
        shape,
      );
      expectClose('dq', refGrads.dq, await dq.read(), 4);
      const [gk, gv] = [await dk.read(), await dvT.read()];
      expectClose('dk', refGrads.dk, packed(gk, d), 4);
      expectClose('dv', refGrads.dv, packed(gv, dv), 4);
      lengths.forEach((len, b) => {
        const past = gk.subarray((b * capacity + len) * hkv * d, (b + 1) * capacity * hkv * d);
        expect(past.every((x) => x === 0)).toBe(true);
      });
    });
  }

  it('refuses cache lengths of the wrong count, past the capacity, or with cuSeqlens', () => {
    using q = Tensor.empty(gpu, [batch, 1, hq, d]);
    using k = Tensor.empty(gpu, [batch, capacity, hkv, d]);
    using v = Tensor.empty(gpu, [batch, capacity, hkv, dv]);
    expect(() => flashProblem(q, k, v, { cacheSeqlens: [1, 2] })).toThrow(/cacheSeqlens: expected 3 entries/);
    expect(() => flashProblem(q, k, v, { cacheSeqlens: [1, 91, 2] })).toThrow(
      /cacheSeqlens\[1\]: expected an integer in \[0, 90\].*got 91/,
    );
    using pq = Tensor.empty(gpu, [3, hq, d]);
    using pk = Tensor.empty(gpu, [3, hkv, d]);
    using pv = Tensor.empty(gpu, [3, hkv, dv]);
    const cu = [0, 1, 2, 3];
    expect(() =>
      flashProblem(pq, pk, pv, { cuSeqlensQ: cu, cuSeqlensK: cu, cacheSeqlens: [1, 1, 1] }),
    ).toThrow(/cacheSeqlens: expected no cache lengths/);
  });
});

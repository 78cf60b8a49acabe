import {
  attentionBackward,
  attentionForward,
  attentionVarlen,
  compare,
  randn,
  toleranceFor,
} from '@webattn/reference';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { flashProblem } from '../src/flash/problem.js';
import { splitCombineWgsl } from '../src/flash/split-combine.wgsl.js';
import { UNSPLIT } from '../src/flash/split-kv.js';
import {
  FLASH_SPLIT_KV,
  flashAttention,
  flashAttentionBackward,
  flashForwardRows,
  flashForwardVariant,
  type Gpu,
  planKeySplits,
  type SplitKvSettings,
  Tensor,
  type Tier,
} from '../src/index.js';
import { nullGpu, testGpu } from '../src/testing.js';

const DEFAULTS: SplitKvSettings = { ...FLASH_SPLIT_KV };

/** Shapes only: the planner reads the tensors' shapes, never their data. */
function problemOf(
  gpu: Gpu,
  shape: { b: number; n: number; nk: number; hq: number; hkv: number; d: number },
  options: Parameters<typeof flashProblem>[3] = {},
) {
  using q = Tensor.empty(gpu, [shape.b, shape.n, shape.hq, shape.d]);
  using k = Tensor.empty(gpu, [shape.b, shape.nk, shape.hkv, shape.d]);
  using v = Tensor.empty(gpu, [shape.b, shape.nk, shape.hkv, shape.d]);
  return flashProblem(q, k, v, options);
}

describe('split-KV planning', () => {
  let gpu: Gpu;
  beforeAll(async () => {
    gpu = await nullGpu();
  });
  afterAll(() => gpu.destroy());

  it('splits a decode launch until it has the target work items, in aligned parts', () => {
    // NSA's dense decode: 8 sequences x 64 heads = 512 work items, 16384 keys.
    const p = problemOf(gpu, { b: 8, n: 1, nk: 16384, hq: 64, hkv: 4, d: 64 }, { causal: true });
    expect(planKeySplits(p, 32)).toEqual({ splits: 8, splitKeys: 2048 });
  });

  it('does not split a launch with enough work items, or keys too few to share', () => {
    const prefill = problemOf(gpu, { b: 1, n: 4096, nk: 4096, hq: 64, hkv: 4, d: 64 }, { causal: true });
    expect(planKeySplits(prefill, 32)).toEqual(UNSPLIT);
    const short = problemOf(gpu, { b: 1, n: 1, nk: 300, hq: 2, hkv: 1, d: 64 });
    expect(planKeySplits(short, 32)).toEqual(UNSPLIT);
  });

  it('sizes the parts by the keys a tile can see, not the sequence: a window of 513 keys', () => {
    const p = problemOf(gpu, { b: 1, n: 1, nk: 16384, hq: 4, hkv: 1, d: 64 }, { window: [512, 0] });
    expect(planKeySplits(p, 32)).toEqual({ splits: 2, splitKeys: 320 });
  });

  it('caps the parts at maxSplits', () => {
    const p = problemOf(gpu, { b: 1, n: 1, nk: 1 << 19, hq: 1, hkv: 1, d: 16 });
    const plan = planKeySplits(p, 32);
    expect(plan.splits).toBe(DEFAULTS.maxSplits);
    expect(plan.splitKeys * plan.splits).toBeGreaterThanOrEqual(1 << 19);
  });

  it('compiles the f16 merge on the null backend', async () => {
    const code = splitCombineWgsl({ dtype: 'f16', dv: 256 });
    await expect(gpu.pipelines.get(code, 'split combine f16')).resolves.toBeDefined();
  });
});

describe('split-KV forward on SwiftShader against the reference', () => {
  let gpu: Gpu;
  beforeAll(async () => {
    gpu = await testGpu();
  });
  afterAll(() => gpu.destroy());
  afterEach(() => Object.assign(FLASH_SPLIT_KV, DEFAULTS));

  // Parts of 16 keys make small problems split many ways, some parts of a windowed row empty.
  const fine = () => Object.assign(FLASH_SPLIT_KV, { minSplitKeys: 16, keyAlign: 16 });

  interface SplitCase {
    name: string;
    b: number;
    n: number;
    nk: number;
    hq: number;
    hkv: number;
    d: number;
    dv: number;
    causal?: boolean;
    window?: [number, number];
    /** Settings beyond the defaults, applied before the call. */
    settings?: () => void;
    tiers: Tier[];
  }

  const CASES: SplitCase[] = [
    // The default settings split this one in two: 4 work items, 700 keys (no GQA, so not grouped).
    {
      name: 'decode, default plan',
      b: 1,
      n: 1,
      nk: 700,
      hq: 4,
      hkv: 4,
      d: 64,
      dv: 64,
      tiers: ['portable', 'subgroups'],
    },
    {
      name: 'decode batch, GQA 4 (run grouped, decode-groups.ts), d=128 dv=64, parts of 16',
      b: 3,
      n: 1,
      nk: 181,
      hq: 4,
      hkv: 1,
      d: 128,
      dv: 64,
      causal: true,
      settings: fine,
      tiers: ['portable', 'subgroups'],
    },
    {
      name: 'chunk of 5 queries at the end, causal, parts of 16',
      b: 2,
      n: 5,
      nk: 150,
      hq: 2,
      hkv: 2,
      d: 64,
      dv: 64,
      causal: true,
      settings: fine,
      tiers: ['portable'],
    },
    {
      name: 'window [20, 0]: parts past the window of an early row see nothing',
      b: 1,
      n: 40,
      nk: 200,
      hq: 2,
      hkv: 1,
      d: 64,
      dv: 32,
      window: [20, 0],
      settings: () => Object.assign(FLASH_SPLIT_KV, { minSplitKeys: 8, keyAlign: 8, maxSplits: 8 }),
      tiers: ['portable'],
    },
    {
      name: 'nk < n: rows that see no key in any part',
      b: 1,
      n: 40,
      nk: 34,
      hq: 2,
      hkv: 1,
      d: 64,
      dv: 64,
      causal: true,
      settings: fine,
      tiers: ['portable'],
    },
  ];

  const tolerance = (magnitude = 1) => toleranceFor('f32', magnitude);

  for (const c of CASES) {
    for (const tier of c.tiers) {
      it(`${c.name} [${tier}]: o, lse, and the backward from them`, async () => {
        c.settings?.();
        const options = {
          ...(c.causal !== undefined && { causal: c.causal }),
          ...(c.window !== undefined && { window: c.window }),
        };
        using q = Tensor.from(gpu, randn(c.b * c.n * c.hq * c.d, 21), [c.b, c.n, c.hq, c.d]);
        using k = Tensor.from(gpu, randn(c.b * c.nk * c.hkv * c.d, 22), [c.b, c.nk, c.hkv, c.d]);
        using v = Tensor.from(gpu, randn(c.b * c.nk * c.hkv * c.dv, 23), [c.b, c.nk, c.hkv, c.dv]);
        using dO = Tensor.from(gpu, randn(c.b * c.n * c.hq * c.dv, 24), [c.b, c.n, c.hq, c.dv]);
        const rows = flashForwardRows(flashForwardVariant(gpu.caps, tier, c.d, c.dv));
        expect(planKeySplits(flashProblem(q, k, v, options), rows).splits).toBeGreaterThan(1);
        const first = await flashAttention(gpu, q, k, v, { ...options, tier });
        using o = first.o;
        using lse = first.lse;
        const [qa, ka, va, da] = await Promise.all([q.read(), k.read(), v.read(), dO.read()]);
        const shape = { batch: c.b, n: c.n, nk: c.nk, hq: c.hq, hkv: c.hkv, d: c.d, dv: c.dv, ...options };
        const ref = attentionForward(qa, ka, va, shape);
        const [go, glse] = [await o.read(), await lse.read()];
        for (const [label, want, got] of [
          ['o', ref.o, go],
          ['lse', ref.lse, glse],
        ] as const) {
          const result = compare(want, got, tolerance());
          expect(result.ok, `${label}: ${JSON.stringify(result)}`).toBe(true);
        }
        // Rows that see no key are exactly 0 with lse -inf, whichever parts they fell in.
        for (let i = 0; i < ref.lse.length; i++) {
          if (ref.lse[i] === Number.NEGATIVE_INFINITY) expect(glse[i]).toBe(Number.NEGATIVE_INFINITY);
        }
        expect(go.every(Number.isFinite)).toBe(true);
        // The same bits on a second run: the merge takes the parts in order.
        const again = await flashAttention(gpu, q, k, v, { ...options, tier });
        using o2 = again.o;
        using lse2 = again.lse;
        expect(Buffer.from((await o2.read()).buffer).equals(Buffer.from(go.buffer))).toBe(true);
        expect(Buffer.from((await lse2.read()).buffer).equals(Buffer.from(glse.buffer))).toBe(true);
        // The backward reads the merged o and lse.
        const grads = await flashAttentionBackward(first.ctx, dO);
        using dq = grads.dq;
        using dk = grads.dk;
        using dv = grads.dv;
        const refGrads = attentionBackward(qa, ka, va, ref.o, ref.lse, da, shape);
        for (const [label, want, got] of [
          ['dq', refGrads.dq, await dq.read()],
          ['dk', refGrads.dk, await dk.read()],
          ['dv', refGrads.dv, await dv.read()],
        ] as const) {
          const result = compare(want, got, tolerance(4));
          expect(result.ok, `${label}: ${JSON.stringify(result)}`).toBe(true);
        }
      });
    }
  }

  it('packed sequences of 1..300 keys and one query each, parts of 16', async () => {
    fine();
    const kLens = [1, 300, 0, 77];
    const cuK = [0, ...kLens.map((_, i) => kLens.slice(0, i + 1).reduce((a, b) => a + b, 0))];
    const cuQ = kLens.map((_, i) => i).concat(kLens.length);
    const [totalQ, totalK, hq, hkv, d, dv] = [kLens.length, cuK.at(-1)!, 4, 2, 64, 64];
    const qa = randn(totalQ * hq * d, 25);
    const ka = randn(totalK * hkv * d, 26);
    const va = randn(totalK * hkv * dv, 27);
    using q = Tensor.from(gpu, qa, [totalQ, hq, d]);
    using k = Tensor.from(gpu, ka, [totalK, hkv, d]);
    using v = Tensor.from(gpu, va, [totalK, hkv, dv]);
    const options = { causal: true, cuSeqlensQ: cuQ, cuSeqlensK: cuK };
    const rows = flashForwardRows(flashForwardVariant(gpu.caps, 'portable', d, dv));
    expect(planKeySplits(flashProblem(q, k, v, options), rows).splits).toBeGreaterThan(1);
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
    const glse = await lse.read();
    expect(compare(ref.o, await o.read(), tolerance()).ok).toBe(true);
    expect(compare(ref.lse, glse, tolerance()).ok).toBe(true);
    // The sequence with no keys: lse -inf for every head.
    for (let h = 0; h < hq; h++) expect(glse[h * totalQ + 2]).toBe(Number.NEGATIVE_INFINITY);
  });
});

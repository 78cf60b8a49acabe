import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { groupedDecodeProblem, isGroupedDecode } from '../src/flash/decode-groups.js';
import { splitCombineWgsl } from '../src/flash/split-combine.wgsl.js';
import { UNSPLIT } from '../src/flash/split-kv.js';
import {
  FLASH_SPLIT_KV,
  flashForwardRows,
  flashForwardVariant,
  type Gpu,
  planKeySplits,
  type SplitKvSettings,
  type Tier,
} from '../src/index.js';
import { nullGpu, testGpu } from '../src/testing.js';
import { checkDenseCase, type DenseCase, problemOf } from './dense-cases.js';

const DEFAULTS: SplitKvSettings = { ...FLASH_SPLIT_KV };

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

  it("splits no further than the parts' outputs fit one binding", () => {
    const p = problemOf(gpu, { b: 1, n: 1, nk: 16384, hq: 8, hkv: 8, d: 64 });
    const limits = (parts: number) => ({ outputBytes: 1000, maxBindingBytes: parts * 1000 + 999 });
    expect(planKeySplits(p, 32, FLASH_SPLIT_KV, limits(5)).splits).toBe(5);
    expect(planKeySplits(p, 32, FLASH_SPLIT_KV, limits(1))).toEqual(UNSPLIT);
    expect(planKeySplits(p, 32).splits).toBe(DEFAULTS.maxSplits);
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

  interface SplitCase extends DenseCase {
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

  for (const c of CASES) {
    for (const tier of c.tiers) {
      it(`${c.name} [${tier}]: o, lse, the same bits twice, and the backward from them`, async () => {
        c.settings?.();
        const run = await checkDenseCase(gpu, c, tier, { seed: 21, sameBitsTwice: true });
        const rows = flashForwardRows(flashForwardVariant(gpu.caps, tier, c.d, c.dv));
        // The case takes the split path (grouped first where it is a GQA decode).
        const problem = isGroupedDecode(run.problem) ? groupedDecodeProblem(run.problem) : run.problem;
        expect(planKeySplits(problem, rows).splits).toBeGreaterThan(1);
      });
    }
  }
});

import { dispatch, type Gpu, Tensor } from '@webattn/core';
import { declaredWorkgroupBytes, moduleErrors, nullGpu, testGpu } from '@webattn/core/testing';
import { randn } from '@webattn/reference';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchMlaAttention } from '../src/attention/attention.js';
import { softmaxLanes } from '../src/attention/attention-matrix.wgsl.js';
import {
  MLA_COMBINE_PARAMS,
  MLA_MAX_SPLITS,
  MLA_MIN_SPLIT_KEYS,
  MLA_TARGET_WORKGROUPS,
  MlaCache,
  mlaAppendWgsl,
  mlaAttention,
  mlaAttentionMatrixWgsl,
  mlaAttentionWgsl,
  mlaCombineWgsl,
  mlaConcatQueryWgsl,
  mlaEpilogueWgsl,
  mlaGatherKeysWgsl,
  mlaMatrixHoldsQuery,
  mlaMatrixSharedBytes,
  mlaMatrixUnsupported,
  mlaPadRowsWgsl,
  planMlaAttention,
  planMlaMatrix,
} from '../src/index.js';
import {
  mlaEpilogueMatrixUnsupported,
  mlaEpilogueMatrixWgsl,
  mlaEpilogueMatrixWorkgroups,
} from '../src/prefill/epilogue-matrix.wgsl.js';
import { u32Tensor } from '../src/u32.js';

describe('every MLA kernel compiles on the null backend, f32 and f16', () => {
  let gpu: Gpu;
  beforeAll(async () => {
    gpu = await nullGpu();
  });
  afterAll(() => gpu.destroy());

  for (const dtype of ['f32', 'f16'] as const) {
    it(dtype, async () => {
      const kernels: [string, string][] = [];
      for (const [name, dims] of [
        ['MiniCPM3', { heads: 40, r: 256, dr: 32, dv: 64 }],
        ['DeepSeek-V2', { heads: 16, r: 512, dr: 64, dv: 128 }],
        ['small, no rope', { heads: 3, r: 32, dr: 0, dv: 8 }],
      ] as const) {
        for (const nq of [1, 3, 64]) {
          const plan = planMlaAttention(gpu, { batch: 2, nq, maxLength: 1000, ...dims });
          for (const source of ['dense', 'paged'] as const) {
            for (const fused of [true, false]) {
              kernels.push([
                `${name} nq=${nq} ${source} fused=${fused}`,
                mlaAttentionWgsl({ dtype, ...dims, rows: plan.rows, keyTile: plan.keyTile, source, fused }),
              ]);
            }
            kernels.push([
              `${name} gather ${source}`,
              mlaGatherKeysWgsl({ dtype, r: dims.r, dr: dims.dr, source }),
            ]);
          }
        }
        kernels.push([`${name} combine`, mlaCombineWgsl({ dtype, ...dims })]);
        kernels.push([`${name} epilogue`, mlaEpilogueWgsl({ dtype, ...dims })]);
        kernels.push([`${name} concat`, mlaConcatQueryWgsl({ dtype, r: dims.r, dr: dims.dr })]);
        kernels.push([`${name} pad rows`, mlaPadRowsWgsl({ width: dims.r })]);
        for (const input of ['f32', 'f16'] as const) {
          kernels.push([
            `${name} append ${input}`,
            mlaAppendWgsl({ input, cache: dtype, r: dims.r, dr: dims.dr }),
          ]);
        }
      }
      for (const [name, code] of kernels) {
        await expect(gpu.pipelines.get(code, name), name).resolves.toBeDefined();
      }
    });
  }
});

describe('the split planner', () => {
  let gpu: Gpu;
  beforeAll(async () => {
    gpu = await nullGpu();
  });
  afterAll(() => gpu.destroy());

  it('splits keys up to one resident wave of workgroups, never past it, at most one split per 128 keys and 64 in all', () => {
    const workgroups = (batch: number, maxLength: number) => {
      const plan = planMlaAttention(gpu, { batch, nq: 1, maxLength, heads: 40, r: 256, dr: 32 });
      expect(plan.splits * plan.keysPerSplit).toBeGreaterThanOrEqual(maxLength);
      expect(plan.splits).toBeLessThanOrEqual(
        Math.min(Math.ceil(maxLength / MLA_MIN_SPLIT_KEYS), MLA_MAX_SPLITS),
      );
      return { splits: plan.splits, count: batch * plan.rowBlocks * plan.splits };
    };
    // 132 / 32 is 4.1: 4 splits (128 workgroups), not 5 (160, a second wave).
    expect(workgroups(32, 4096).splits).toBe(4);
    // One sequence: a split per 128 keys up to 64 splits.
    expect(workgroups(1, 1024).splits).toBe(8);
    expect(workgroups(1, 4096).splits).toBe(32);
    expect(workgroups(1, 16384).splits).toBe(64);
    for (const batch of [1, 7, 32, 64, 100]) {
      for (const n of [1, 300, 4096, 16384]) {
        const { splits, count } = workgroups(batch, n);
        if (splits > 1) expect(count, `batch ${batch}, ${n} keys`).toBeLessThanOrEqual(MLA_TARGET_WORKGROUPS);
      }
    }
    // A batch wider than a wave still gets one split per sequence.
    expect(workgroups(300, 4096).splits).toBe(1);
  });
});

describe('the tensor-core kernel compiles on the null backend', () => {
  let gpu: Gpu;
  beforeAll(async () => {
    gpu = await nullGpu();
  });
  afterAll(() => gpu.destroy());

  it('as planned there, and at the H100/H200 tile sizes as a shader module', async () => {
    for (const [name, dims] of [['MiniCPM3', { heads: 40, r: 256, dr: 32 }]] as const) {
      for (const nq of [1, 2, 4]) {
        const plan = planMlaMatrix(gpu, { batch: 2, nq, maxLength: 1000, ...dims });
        expect(plan, `${name} nq=${nq}`).toBeDefined();
        expect(plan).toMatchObject({ wideLoads: true, vectorStaging: false });
        for (const source of ['dense', 'paged'] as const) {
          // 16-byte loads as planned (the cache bound as vec4<u32>), and 8-byte loads.
          for (const wideLoads of [true, false]) {
            const code = mlaAttentionMatrixWgsl({ ...dims, ...plan!, source, wideLoads });
            expect(code.includes('array<vec4<u32>>'), `${source} wide ${wideLoads}`).toBe(wideLoads);
            await expect(gpu.pipelines.get(code, `${name} ${source} ${wideLoads}`)).resolves.toBeDefined();
          }
        }
      }
    }
    // The null backend allows 16 KiB of workgroup memory; the GPUs this targets allow 48 KiB, where
    // the planner takes 48 rows and 32-key tiles. Their shader modules must compile without errors.
    for (const [source, dims] of [
      ['dense', { heads: 40, r: 256, dr: 32, rows: 48, keyTile: 32 }],
      ['paged', { heads: 40, r: 256, dr: 32, rows: 48, keyTile: 32 }],
      ['paged', { heads: 16, r: 512, dr: 64, rows: 16, keyTile: 32 }],
    ] as const) {
      // Four subgroups, and the eight the planner tries first where they fit.
      for (const subgroups of [4, 8]) {
        const c = { ...dims, subgroups, subgroupSize: 32, pinSubgroupSize: true, source };
        expect(mlaMatrixSharedBytes(c)).toBeLessThanOrEqual(49152);
        // The rescale's scratch shares the scores' array: 30.8 KiB for MiniCPM3's eight subgroups.
        if (dims.r === 256 && subgroups === 8) expect(mlaMatrixSharedBytes(c)).toBe(31568);
        // Each load width, with the queries read from storage in every tile and held in registers
        // (where each subgroup has at most one score fragment per tile).
        for (const wideLoads of [false, true]) {
          for (const holdQuery of [false, true]) {
            // Staged into an f16 array, or one of vec4<f16> (each loaded vector stored whole).
            const vectorStaging = wideLoads === holdQuery;
            const config = { ...c, wideLoads, holdQuery, vectorStaging };
            const code = mlaAttentionMatrixWgsl(config);
            expect(code.includes('var qf0 ='), `holds the queries: ${JSON.stringify(config)}`).toBe(
              mlaMatrixHoldsQuery(config),
            );
            expect(code.includes('var<workgroup> Ks: array<vec4<f16>,')).toBe(vectorStaging);
            expect(declaredWorkgroupBytes(code), 'the bytes the planner checks').toBe(
              mlaMatrixSharedBytes(config),
            );
            expect(
              await moduleErrors(gpu, code),
              `${source} r=${dims.r} subgroups=${subgroups} wide ${wideLoads} hold ${holdQuery}`,
            ).toEqual([]);
          }
        }
      }
    }
  });
});

describe("the prefill's tensor-core epilogue", () => {
  it('compiles for MiniCPM3 and DeepSeek-V2 dims, pinned and not, and refuses dims of partial fragments', async () => {
    const gpu = await nullGpu();
    try {
      for (const dims of [
        { heads: 40, r: 256, dv: 64 },
        { heads: 16, r: 512, dv: 128 },
      ]) {
        for (const [subgroupSize, pinSubgroupSize] of [
          [32, true],
          [64, false],
        ] as const) {
          const c = { ...dims, subgroupSize, pinSubgroupSize };
          expect(mlaEpilogueMatrixUnsupported(c)).toBeUndefined();
          const code = mlaEpilogueMatrixWgsl(c);
          expect(code.includes('@subgroup_size(32)')).toBe(pinSubgroupSize);
          expect(await moduleErrors(gpu, code), JSON.stringify(c)).toEqual([]);
        }
      }
      // One workgroup per head and 64 tokens: 8192 tokens of 40 heads take 5120.
      expect(mlaEpilogueMatrixWorkgroups({ heads: 40 }, 8192)).toBe(5120);
      expect(mlaEpilogueMatrixWorkgroups({ heads: 40 }, 65)).toBe(80);
      const c = { heads: 3, r: 32, dv: 8, subgroupSize: 32, pinSubgroupSize: true };
      expect(mlaEpilogueMatrixUnsupported(c)).toMatch(/dv = 8 is not a multiple of 16/);
      expect(mlaEpilogueMatrixUnsupported({ ...c, dv: 16, r: 40 })).toMatch(/r = 40/);
      expect(() => mlaEpilogueMatrixWgsl(c)).toThrow(/dv = 8/);
    } finally {
      gpu.destroy();
    }
  });
});

describe('the tensor-core kernel holds the queries', () => {
  it('only where asked and where every subgroup has at most one score fragment per tile', () => {
    const c = { heads: 40, r: 256, dr: 32, rows: 48, keyTile: 32, subgroupSize: 32, pinSubgroupSize: true };
    const source = 'paged' as const;
    expect(mlaMatrixHoldsQuery({ ...c, source, subgroups: 8, holdQuery: true })).toBe(true);
    expect(mlaMatrixHoldsQuery({ ...c, source, subgroups: 8, holdQuery: false })).toBe(false);
    // Six score fragments over four subgroups: two of them would hold two row blocks' queries.
    expect(mlaMatrixHoldsQuery({ ...c, source, subgroups: 4, holdQuery: true })).toBe(false);
    expect(mlaMatrixHoldsQuery({ ...c, source, rows: 16, keyTile: 32, subgroups: 2, holdQuery: true })).toBe(
      true,
    );
  });
});

describe("the tensor-core kernel's softmax lanes", () => {
  it('gives every row the most lanes the invocations allow, and refuses more rows than invocations', () => {
    const base = { keyTile: 32, subgroupSize: 32 };
    expect(softmaxLanes({ ...base, rows: 48, subgroups: 4 })).toBe(2);
    expect(softmaxLanes({ ...base, rows: 48, subgroups: 8 })).toBe(4);
    expect(softmaxLanes({ ...base, rows: 16, subgroups: 8 })).toBe(16);
    expect(softmaxLanes({ ...base, keyTile: 16, rows: 16, subgroups: 8 })).toBe(16);
    expect(softmaxLanes({ ...base, rows: 64, subgroups: 2 })).toBe(1);
    const c = { heads: 40, r: 256, dr: 32, rows: 64, keyTile: 16, subgroups: 1, subgroupSize: 32 };
    expect(mlaMatrixUnsupported({ ...c, pinSubgroupSize: true, source: 'dense' })).toMatch(
      /64 rows exceed the 32 invocations/,
    );
  });
});

describe('the tensor-core path launches on the null backend (bindings and pipelines validated)', () => {
  let gpu: Gpu;
  beforeAll(async () => {
    gpu = await nullGpu();
  });
  afterAll(() => gpu.destroy());

  it('dense and paged, one split and several', async () => {
    const [b, nq, h, r, dr, dv, nk] = [2, 1, 40, 256, 32, 64, 300];
    const f16 = (shape: number[]) => Tensor.zeros(gpu, shape, 'f16');
    using ql = f16([b, nq, h, r]);
    using qp = f16([b, nq, h, dr]);
    using c = f16([b, nk, r]);
    using k = f16([b, nk, dr]);
    using w = f16([h, r, dv]);
    using cache = new MlaCache(gpu, { kvLoraRank: r, qkRopeHeadDim: dr, pages: 16 });
    const ids = [cache.create(), cache.create()];
    await cache.append(ids, c, k, [nk, 7]);
    using table = u32Tensor(gpu, cache.tables(ids).words);
    const { maxPages } = cache.tables(ids);
    for (const splits of [1, 3]) {
      for (const keys of [
        { source: 'dense' as const, cKv: c, kPe: k, slots: nk },
        { source: 'paged' as const, pages: cache.pages, table, pageSize: cache.pageSize, maxPages },
      ]) {
        using o = await launchMlaAttention(gpu, {
          qLatent: ql,
          qPe: qp,
          keys,
          wUv: w,
          lengths: [nk, 7],
          scale: 0.1,
          tier: 'subgroup-matrix',
          splits,
        });
        expect(o.shape).toEqual([b, nq, h, dv]);
      }
    }
    // The f16 tier's row kernel, split and fused, and the flash prefill path.
    for (const options of [{ splits: 1 }, { splits: 3 }, { kernel: 'flash' as const }]) {
      using o = await mlaAttention(gpu, ql, qp, c, k, w, [nk, 7], { scale: 0.1, tier: 'f16', ...options });
      expect(o.shape).toEqual([b, nq, h, dv]);
    }
    await expect(gpu.sync()).resolves.toBeUndefined();
  });
});

describe('mlaAttention rejects bad input before dispatching, and leaks nothing', () => {
  let gpu: Gpu;
  beforeAll(async () => {
    gpu = await testGpu();
  });
  afterAll(() => gpu.destroy());

  const make = (shape: number[]) =>
    Tensor.from(
      gpu,
      randn(
        shape.reduce((a, b) => a * b, 1),
        1,
      ),
      shape,
    );

  it('names the argument, the expected and the actual value', async () => {
    using ql = make([2, 1, 4, 16]);
    using qp = make([2, 1, 4, 8]);
    using c = make([2, 10, 16]);
    using k = make([2, 10, 8]);
    using w = make([4, 16, 8]);
    using bad3 = make([2, 10, 4]);
    const run = (
      args: Partial<Record<'ql' | 'qp' | 'c' | 'k' | 'w', Tensor>>,
      lengths: number[],
      options: object,
    ) =>
      mlaAttention(gpu, args.ql ?? ql, args.qp ?? qp, args.c ?? c, args.k ?? k, args.w ?? w, lengths, {
        scale: 0.1,
        ...options,
      });
    await expect(run({}, [3, 11], {})).rejects.toThrow(
      /lengths\[1\]: expected an integer in \[0, 10\].*got 11/,
    );
    await expect(run({}, [3], {})).rejects.toThrow(/lengths: expected 2 entries \(the batch\), got 1/);
    await expect(run({}, [3, -1], {})).rejects.toThrow(/lengths\[1\]/);
    await expect(run({ k: bad3 }, [3, 3], {})).rejects.toThrow(
      /kPe: expected shape \[b, nk, dr\] = \[2, 10, 8\], got \[2, 10, 4\]/,
    );
    await expect(run({ c: bad3 }, [3, 3], {})).rejects.toThrow(
      /cKv: expected shape \[b, nk, r\] = \[2, 10, 16\], got \[2, 10, 4\]/,
    );
    await expect(run({ w: bad3 }, [3, 3], {})).rejects.toThrow(
      /wUv: expected shape \[h, r, dv\] = \[4, 16, \*\], got \[2, 10, 4\]/,
    );
    await expect(run({ qp: bad3 }, [3, 3], {})).rejects.toThrow(/qPe: expected shape/);
    await expect(run({ ql: bad3 }, [3, 3], {})).rejects.toThrow(
      /qLatent: expected shape \[b, nq, h, r\] \(4 dims\)/,
    );
    await expect(run({}, [3, 3], { scale: Number.NaN })).rejects.toThrow(
      /options.scale: expected a finite number, got NaN/,
    );
    await expect(run({}, [3, 3], { splits: 0 })).rejects.toThrow(
      /options.splits: expected a positive integer, got 0/,
    );
    await expect(run({}, [3, 3], { kernel: 'x' })).rejects.toThrow(
      /options.kernel: expected 'auto', 'latent' or 'flash'/,
    );
    await expect(run({}, [3, 3], { tier: 'f16' })).rejects.toThrow(/tier 'f16'/);
  });

  it('leaks no GPU memory and gives the same bits twice', async () => {
    using ql = make([2, 3, 4, 16]);
    using qp = make([2, 3, 4, 8]);
    using c = make([2, 40, 16]);
    using k = make([2, 40, 8]);
    using w = make([4, 16, 8]);
    const live = gpu.memory().liveBuffers;
    const bits: string[] = [];
    for (const options of [{ splits: 1 }, { splits: 3 }, { splits: 3 }, { kernel: 'flash' as const }]) {
      using o = await mlaAttention(gpu, ql, qp, c, k, w, [40, 17], { scale: 0.1, ...options });
      bits.push(Buffer.from((await o.read()).buffer).toString('base64'));
    }
    expect(bits[1]).toBe(bits[2]);
    expect(gpu.memory().liveBuffers).toBe(live);
  });
});

describe('the split combine', () => {
  let gpu: Gpu;
  beforeAll(async () => {
    gpu = await testGpu();
  });
  afterAll(() => gpu.destroy());

  /**
   * The combine's own oracle: per row, the splits' log-sum-exp merge of their partial latents (a
   * split with sum 0 ignored, whatever its partial holds), then the row's head's W_UV.
   */
  function combineOnCpu(
    c: {
      batch: number;
      rows: number;
      rowStride: number;
      splits: number;
      heads: number;
      r: number;
      dv: number;
    },
    part: Float32Array,
    stats: Float32Array,
    wuv: Float32Array,
  ): Float32Array {
    const o = new Float32Array(c.batch * c.rows * c.dv);
    for (let b = 0; b < c.batch; b++) {
      for (let row = 0; row < c.rows; row++) {
        const at = (s: number) => (b * c.splits + s) * c.rowStride + row;
        let m = -3e38;
        for (let s = 0; s < c.splits; s++) m = Math.max(m, stats[at(s) * 2]!);
        let l = 0;
        for (let s = 0; s < c.splits; s++) l += stats[at(s) * 2 + 1]! * Math.exp(stats[at(s) * 2]! - m);
        const latent = new Float64Array(c.r);
        for (let s = 0; s < c.splits; s++) {
          if (!(stats[at(s) * 2 + 1]! > 0)) continue;
          const w = Math.exp(stats[at(s) * 2]! - m);
          for (let col = 0; col < c.r; col++) latent[col]! += (w * part[at(s) * c.r + col]!) / l;
        }
        const head = row % c.heads;
        for (let d = 0; d < c.dv; d++) {
          let sum = 0;
          for (let col = 0; col < c.r; col++) sum += latent[col]! * wuv[(head * c.r + col) * c.dv + d]!;
          o[(b * c.rows + row) * c.dv + d] = sum;
        }
      }
    }
    return o;
  }

  // 300 splits: several chunks of the workgroup's 64 and not a multiple of the four read per step;
  // r = 256 and 512 give each invocation several latent columns, r = 32 leaves most without one.
  for (const dims of [
    { heads: 40, r: 256, dv: 64, splits: 7 },
    { heads: 3, r: 32, dv: 8, splits: 300 },
    { heads: 2, r: 512, dv: 128, splits: 5 },
  ]) {
    it(`r = ${dims.r}, dv = ${dims.dv}, ${dims.splits} splits, some empty (NaN partials), one row seeing nothing`, async () => {
      const c = { batch: 2, rows: dims.heads + 1, rowStride: dims.heads + 3, ...dims };
      const partSize = c.batch * c.splits * c.rowStride;
      const part = randn(partSize * c.r, 11);
      const stats = new Float32Array(partSize * 2);
      const logits = randn(partSize, 12);
      const sums = randn(partSize, 13);
      for (let i = 0; i < partSize; i++) {
        const row = i % c.rowStride;
        // Every third split of a row saw no key; row 1 of each sequence saw none at all.
        const empty = i % 3 === 1 || row === 1;
        stats[i * 2] = empty ? -3e38 : 4 * logits[i]!;
        stats[i * 2 + 1] = empty ? 0 : 1 + Math.abs(sums[i]!);
        if (empty) part.fill(Number.NaN, i * c.r, (i + 1) * c.r);
      }
      const wuv = randn(c.heads * c.r * c.dv, 14);
      using partTensor = Tensor.from(gpu, part, [partSize, c.r]);
      using statsTensor = Tensor.from(gpu, stats, [partSize, 2]);
      using wuvTensor = Tensor.from(gpu, wuv, [c.heads, c.r, c.dv]);
      using o = Tensor.empty(gpu, [c.batch, c.rows, c.dv]);
      await dispatch(gpu, {
        label: 'mla combine test',
        code: mlaCombineWgsl({ dtype: 'f32', heads: c.heads, r: c.r, dv: c.dv }),
        buffers: [partTensor, statsTensor, wuvTensor, o],
        params: { layout: MLA_COMBINE_PARAMS, values: c },
        workgroups: c.batch * c.rows,
      });
      const got = await o.read();
      const want = combineOnCpu(c, part, stats, wuv);
      let worst = 0;
      for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i]! - want[i]!));
      expect(got.every(Number.isFinite)).toBe(true);
      expect(worst).toBeLessThan(1e-3 * Math.sqrt(c.r));
      // Row 1 saw no key in any split: exactly 0.
      expect(Array.from(got.subarray(c.dv, 2 * c.dv))).toEqual(new Array(c.dv).fill(0));
    });
  }
});

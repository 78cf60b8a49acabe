import { type Gpu, Tensor } from '@webattn/core';
import { declaredWorkgroupBytes, moduleErrors, nullGpu, testGpu } from '@webattn/core/testing';
import { randn } from '@webattn/reference';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sumWgsl } from '../src/backward/sum.wgsl.js';
import { combineWgsl } from '../src/combine/combine.wgsl.js';
import { combineBackwardWgsl } from '../src/combine/combine-backward.wgsl.js';
import { compressWgsl } from '../src/compress/compress.wgsl.js';
import {
  compressBackwardWgsl,
  compressPeBackwardWgsl,
  compressWeightBackwardWgsl,
} from '../src/compress/compress-backward.wgsl.js';
import {
  blockRowsBackwardWgsl,
  blockRowsWgsl,
  learnedActivationBackwardWgsl,
  learnedActivationWgsl,
  transposeWgsl,
} from '../src/compress/learned.wgsl.js';
import { cacheCompressWgsl, cacheWriteWgsl } from '../src/decode/cache.wgsl.js';
import {
  decodeCombineWgsl,
  decodeProbabilitiesWgsl,
  decodeSelectedWgsl,
  decodeSelectWgsl,
} from '../src/decode/decode.wgsl.js';
import { nsaForward, resolveNsaConfig } from '../src/index.js';
import { gateInputBackwardWgsl, gateLogitsWgsl, gateParamsBackwardWgsl } from '../src/module/gate.wgsl.js';
import { SELECT_MATRIX_SHAPES } from '../src/select/select.js';
import { type BlockGeometry, selectWgsl } from '../src/select/select.wgsl.js';
import {
  selectMatrixSharedBytes,
  selectMatrixShuffles,
  selectMatrixUnsupported,
  selectMatrixWgsl,
} from '../src/select/select-matrix.wgsl.js';
import { selectedAttentionWgsl } from '../src/selected/selected.wgsl.js';
import {
  selectedDkWgsl,
  selectedDqWgsl,
  selectedDvWgsl,
  selectedStatsWgsl,
} from '../src/selected/selected-backward.wgsl.js';
import {
  selectedBackwardMatrixUnsupported,
  selectedDqMatrixSharedBytes,
  selectedDqMatrixWgsl,
  selectedKeysMatrixSharedBytes,
  selectedKeysMatrixWgsl,
  selectedKeysSumWgsl,
} from '../src/selected/selected-backward-matrix.wgsl.js';
import {
  selectedDkDvRolesMatrixWgsl,
  selectedDkDvRolesSharedBytes,
  selectedDkDvRolesUnsupported,
} from '../src/selected/selected-dkdv-roles-matrix.wgsl.js';
import {
  selectedDqRolesMatrixWgsl,
  selectedDqRolesSharedBytes,
  selectedDqRolesUnsupported,
} from '../src/selected/selected-dq-roles-matrix.wgsl.js';
import { selectedGroupWgsl } from '../src/selected/selected-group.wgsl.js';
import {
  selectedLazyMatrixWgsl,
  selectedLazySharedBytes,
  selectedLazyThreads,
  selectedLazyUnsupported,
} from '../src/selected/selected-lazy-matrix.wgsl.js';
import {
  type SelectedMatrixConfig,
  selectedMatrixSharedBytes,
  selectedMatrixUnsupported,
  selectedMatrixWgsl,
} from '../src/selected/selected-matrix.wgsl.js';

/** The reference config's blocks (kernel 32, stride 16, selection 64), and a geometry off it. */
const REFERENCE_GEOMETRY: BlockGeometry = { kernelSize: 32, stride: 16, blockSize: 64 };
const ODD_GEOMETRY: BlockGeometry = { kernelSize: 48, stride: 16, blockSize: 80 };

describe('every NSA kernel compiles on the null backend, f32 and f16', () => {
  let gpu: Gpu;
  beforeAll(async () => {
    gpu = await nullGpu();
  });
  afterAll(() => gpu.destroy());

  for (const dtype of ['f32', 'f16'] as const) {
    it(dtype, async () => {
      const kernels: [string, string][] = [
        ['compress', compressWgsl(dtype, false)],
        ['compress, weighted', compressWgsl(dtype, true)],
        ['compress weighted backward pe', compressPeBackwardWgsl(dtype)],
        ['compress weighted backward weight', compressWeightBackwardWgsl(dtype)],
        ['compress backward, weighted', compressBackwardWgsl(dtype, true)],
        ['gate logits', gateLogitsWgsl(dtype)],
        ['gate backward q', gateInputBackwardWgsl(dtype)],
        ['gate backward parameters', gateParamsBackwardWgsl(dtype)],
        ['cache write', cacheWriteWgsl(dtype)],
        ['cache compress', cacheCompressWgsl(dtype)],
        ...([64, 128, 192] as const).flatMap((d): [string, string][] => {
          const c = {
            dtype,
            d,
            dv: 128,
            group: 16,
            topN: 16,
            maxBlocks: 2048,
            geometry: REFERENCE_GEOMETRY,
            windowParts: 9,
          };
          return [
            [`decode probabilities d=${d}`, decodeProbabilitiesWgsl(c)],
            [`decode select d=${d}`, decodeSelectWgsl(c)],
            [`decode selected and window d=${d}`, decodeSelectedWgsl(c)],
            [`decode combine d=${d}`, decodeCombineWgsl(c)],
          ];
        }),
        ['learned compressor rows', blockRowsWgsl(dtype)],
        ['learned compressor rows backward', blockRowsBackwardWgsl(dtype)],
        ['learned compressor transpose', transposeWgsl(dtype)],
        ...(['linear', 'swiglu', 'sigmoid-mul'] as const).flatMap((method): [string, string][] => [
          [`learned ${method}`, learnedActivationWgsl(dtype, method)],
          [`learned ${method} backward`, learnedActivationBackwardWgsl(dtype, method)],
        ]),
        ...([false, true] as const).flatMap((subgroups): [string, string][] => [
          [
            `select, 16 heads per KV head, d=128, subgroups ${subgroups}`,
            selectWgsl({
              dtype,
              topN: 16,
              maxBlocks: 1024,
              group: 16,
              dim: 128,
              subgroups,
              geometry: REFERENCE_GEOMETRY,
            }),
          ],
          [
            `select, 3 heads per KV head, d=30 (scalar loads), subgroups ${subgroups}`,
            selectWgsl({
              dtype,
              topN: 5,
              maxBlocks: 40,
              group: 3,
              dim: 30,
              subgroups,
              geometry: ODD_GEOMETRY,
            }),
          ],
        ]),
        ['combine', combineWgsl(dtype, true, false)],
        ['combine, no compressed branch', combineWgsl(dtype, false, false)],
        ['combine, 16-byte vectors', combineWgsl(dtype, true, true)],
        ['combine, 16-byte vectors, no compressed branch', combineWgsl(dtype, false, true)],
        ['combine backward', combineBackwardWgsl(dtype, true, false)],
        ['combine backward, no compressed branch', combineBackwardWgsl(dtype, false, false)],
        ['combine backward, 16-byte vectors', combineBackwardWgsl(dtype, true, true)],
        ['combine backward, 16-byte vectors, no compressed branch', combineBackwardWgsl(dtype, false, true)],
        ['compress backward', compressBackwardWgsl(dtype, false)],
        ['sum of 2', sumWgsl(dtype, 2)],
        ['sum of 3', sumWgsl(dtype, 3)],
        ['sum of 2, 16-byte vectors', sumWgsl(dtype, 2, true)],
        ['sum of 3, 16-byte vectors', sumWgsl(dtype, 3, true)],
        ...([64, 128, 192] as const).map((d): [string, string] => [
          `selected d=${d}`,
          selectedAttentionWgsl({ dtype, d, dv: 128, topN: 16 }),
        ]),
        [
          'selected, group-centric, GQA 16',
          selectedGroupWgsl({ dtype, d: 128, dv: 128, topN: 16, group: 16 }),
        ],
        ['selected stats', selectedStatsWgsl({ dtype, d: 192, dv: 128, topN: 16 })],
        ['selected dq', selectedDqWgsl({ dtype, d: 192, dv: 128, topN: 16 })],
        ['selected dk', selectedDkWgsl({ dtype, d: 192, dv: 128, topN: 16 })],
        ['selected dv', selectedDvWgsl({ dtype, d: 192, dv: 128, topN: 16 })],
      ];
      for (const [name, code] of kernels) {
        await expect(gpu.pipelines.get(code, name), name).resolves.toBeDefined();
      }
    });
  }
});

describe('the tensor-core selection and selected attention compile on the null backend', () => {
  let gpu: Gpu;
  beforeAll(async () => {
    gpu = await nullGpu();
  });
  afterAll(() => gpu.destroy());

  // The null backend allows 16 KiB of workgroup memory: these shapes exercise every code path
  // (one and two row fragments, groups smaller than a fragment, tiles below the block size); the
  // H100-sized ones (45 KiB) differ only in constants and run in webattn verify nsa.
  const base = { topN: 16, matrix: { M: 16, N: 16, K: 16 }, subgroupSize: 32, pinSubgroupSize: true };
  const selectBase = { ...base, geometry: REFERENCE_GEOMETRY };
  const shapes: SelectedMatrixConfig[] = [
    { ...base, d: 64, dv: 64, group: 2, blockSize: 64, tile: 16 },
    { ...base, d: 64, dv: 64, group: 16, blockSize: 32, tile: 32 },
    { ...base, d: 32, dv: 32, group: 32, blockSize: 64, tile: 32 },
    { ...base, d: 48, dv: 32, group: 8, blockSize: 64, tile: 32, subgroupSize: 128, pinSubgroupSize: false },
    // Scores split over two parts of d: one and two row fragments.
    { ...base, d: 64, dv: 64, group: 16, blockSize: 32, tile: 32, scoreParts: 2 },
    { ...base, d: 32, dv: 64, group: 32, blockSize: 64, tile: 16, scoreParts: 2 },
  ];
  for (const c of shapes) {
    it(`d=${c.d} dv=${c.dv} group ${c.group} tile ${c.tile}`, async () => {
      expect(selectedMatrixUnsupported(c)).toBeUndefined();
      expect(selectedMatrixSharedBytes(c)).toBeLessThanOrEqual(
        gpu.caps.limits.maxComputeWorkgroupStorageSize,
      );
      await expect(gpu.pipelines.get(selectedMatrixWgsl(c), 'selected matrix')).resolves.toBeDefined();
    });
  }

  it('the forward with its scores split over parts of d: one subgroup per (key slice, part), the H200 shape as a module, and where it refuses', async () => {
    const h200 = { ...base, d: 128, dv: 128, group: 16, blockSize: 64, tile: 64, scoreParts: 2 };
    expect(selectedMatrixUnsupported(h200)).toBeUndefined();
    expect(selectedMatrixSharedBytes(h200)).toBeLessThanOrEqual(48 * 1024);
    const code = selectedMatrixWgsl(h200);
    expect(code).toContain('@workgroup_size(256)');
    // Each subgroup holds its part's Q fragments (4 steps of 16 of d = 128), and the lanes add the parts.
    expect(code.match(/let qf0_\d+ = /g)?.length).toBe(4);
    expect(code).toMatch(/\(Fs\[row \* 68u \+ col\] \+ Fs\[1088u \+ row \* 68u \+ col\]\)/);
    expect(await moduleErrors(gpu, code)).toEqual([]);
    // Whole scores: the same kernel as without the field.
    expect(selectedMatrixWgsl({ ...h200, scoreParts: 1 })).toBe(
      selectedMatrixWgsl({ ...h200, scoreParts: undefined }),
    );
    expect(selectedMatrixUnsupported({ ...h200, scoreParts: 3 })).toMatch(/3 parts/);
    expect(selectedMatrixUnsupported({ ...h200, scoreParts: 0 })).toMatch(/positive integer/);
    // Sixteen subgroups would leave each 8 of dv's columns, less than a fragment.
    expect(selectedMatrixUnsupported({ ...h200, scoreParts: 4 })).toMatch(/multiples of N/);
  });

  // The flash-shaped forward: one N-key slice of scores per subgroup, the accumulators in fragments.
  const lazyShapes = [
    { ...base, d: 64, dv: 64, group: 16, blockSize: 64, tile: 32 },
    { ...base, d: 64, dv: 64, group: 16, blockSize: 64, tile: 64 },
    { ...base, d: 32, dv: 32, group: 32, blockSize: 32, tile: 32 },
    { ...base, d: 64, dv: 32, group: 2, blockSize: 64, tile: 32, wideLoads: true, indexAhead: true },
    { ...base, d: 48, dv: 64, group: 8, blockSize: 64, tile: 16, kvHeadMajor: true },
    // Several key fragments per subgroup: the output leaves through Ss two fragments at a time.
    { ...base, d: 64, dv: 64, group: 16, blockSize: 64, tile: 64, subgroups: 2 },
    { ...base, d: 32, dv: 64, group: 32, blockSize: 32, tile: 32, subgroups: 1 },
    // Each tile's keys loaded during the tile before (one tile per block).
    { ...base, d: 64, dv: 64, group: 16, blockSize: 64, tile: 64, wideLoads: true, prefetchKeys: true },
    { ...base, d: 64, dv: 32, group: 2, blockSize: 32, tile: 32, prefetchKeys: true, kvHeadMajor: true },
    // Thirty-two 8-byte value loads per invocation: their indices run past 16.
    { ...base, d: 32, dv: 256, group: 16, blockSize: 16, tile: 16 },
  ];
  for (const c of lazyShapes) {
    it(`the flash-shaped forward, d=${c.d} dv=${c.dv} group ${c.group} tile ${c.tile}, ${selectedLazyThreads(c) / 32} subgroups`, async () => {
      expect(selectedLazyUnsupported(c)).toBeUndefined();
      const code = selectedLazyMatrixWgsl(c);
      expect(declaredWorkgroupBytes(code)).toBe(selectedLazySharedBytes(c));
      expect(code).toContain(`@workgroup_size(${selectedLazyThreads(c)})`);
      await expect(gpu.pipelines.get(code, 'selected lazy matrix')).resolves.toBeDefined();
    });
  }

  it('the flash-shaped forward at the H200 shape as a module: two subgroups, accumulators rescaled only when a max jumps', async () => {
    const c = {
      ...base,
      d: 128,
      dv: 128,
      group: 16,
      blockSize: 64,
      tile: 32,
      wideLoads: true,
      kvHeadMajor: true,
      indexAhead: true,
    };
    expect(selectedLazyUnsupported(c)).toBeUndefined();
    expect(selectedLazyThreads(c)).toBe(64);
    const code = selectedLazyMatrixWgsl(c);
    expect(await moduleErrors(gpu, code)).toEqual([]);
    // Q held (8 steps of 16 of d = 128), four accumulators of 16 columns per subgroup, kept across tiles.
    expect(code.match(/let qf0_\d+ = /g)?.length).toBe(8);
    expect(code.match(/^ {2}var of0_\d+ = /gm)?.length).toBe(4);
    expect(code).toContain('if (workgroupUniformLoad(&rescaleFlag[0]) != 0u)');
    expect(selectedLazyUnsupported({ ...c, tile: 48 })).toMatch(/block size 64/);
    expect(selectedLazyUnsupported({ ...c, prefetchKeys: true })).toMatch(/one tile per block, not 2/);
    expect(selectedLazyUnsupported({ ...c, dv: 64, tile: 128, blockSize: 128 })).toMatch(
      /multiples of N = 16 over 8/,
    );
    expect(selectedLazyUnsupported({ ...c, group: 64 })).toMatch(/power-of-two multiple/);
  });

  // The forward's shape on the H200: 64-key tiles, scores over two parts of d, 16-byte loads.
  const selectedH200 = {
    ...base,
    d: 128,
    dv: 128,
    group: 16,
    blockSize: 64,
    tile: 64,
    scoreParts: 2,
    wideLoads: true,
  };

  it('the forward with 16-byte K/V loads: K and V bound as vec4<u32>, eight f16 unpacked per load', async () => {
    const c = { ...base, d: 64, dv: 64, group: 16, blockSize: 32, tile: 32, scoreParts: 2, wideLoads: true };
    expect(selectedMatrixUnsupported(c)).toBeUndefined();
    const code = selectedMatrixWgsl(c);
    expect(code).toContain('var<storage, read> k: array<vec4<u32>>;');
    expect(code).toContain('var<storage, read> v: array<vec4<u32>>;');
    // The queries, staged once per workgroup, keep their 8-byte loads.
    expect(code).toContain('var<storage, read> q: array<vec4<f16>>;');
    expect(code).toContain('bitcast<vec2<f16>>');
    await expect(gpu.pipelines.get(code, 'selected matrix wide')).resolves.toBeDefined();
    expect(await moduleErrors(gpu, selectedMatrixWgsl(selectedH200))).toEqual([]);
  });

  it('the forward with arrays of vectors: staged loads stored whole, four scores, probabilities and outputs per access', async () => {
    const h200 = { ...selectedH200, vectorArrays: true };
    expect(selectedMatrixUnsupported(h200)).toBeUndefined();
    const code = selectedMatrixWgsl(h200);
    // The same bytes as the scalar arrays, and what the host checks.
    expect(declaredWorkgroupBytes(code)).toBe(selectedMatrixSharedBytes(h200));
    expect(declaredWorkgroupBytes(selectedMatrixWgsl(selectedH200))).toBe(selectedMatrixSharedBytes(h200));
    expect(code).toContain('var<workgroup> Ks: array<vec4<f16>,');
    expect(code).toContain('var<workgroup> Fs: array<vec4<f32>,');
    expect(code).toContain('var<storage, read_write> o: array<vec4<f16>>;');
    expect(code).toContain('= bitcast<vec4<f16>>(ex0.zw);');
    // The two parts' scores added four at a time.
    expect(code).toMatch(/\(Fs\[row \* 17u \+ col \/ 4u\] \+ Fs\[272u \+ row \* 17u \+ col \/ 4u\]\)/);
    expect(await moduleErrors(gpu, code)).toEqual([]);
    // Smaller shapes, one and two row fragments, 8-byte loads, as pipelines on the null backend.
    for (const c of [
      { ...base, d: 64, dv: 64, group: 16, blockSize: 32, tile: 32, scoreParts: 2, vectorArrays: true },
      { ...base, d: 32, dv: 64, group: 32, blockSize: 64, tile: 16, vectorArrays: true },
    ]) {
      expect(selectedMatrixUnsupported(c)).toBeUndefined();
      await expect(
        gpu.pipelines.get(selectedMatrixWgsl(c), 'selected matrix vectors'),
      ).resolves.toBeDefined();
    }
    // Sixteen lanes per row of a 32-key tile leave each two keys: not a vector.
    const narrow = { ...base, d: 64, dv: 128, group: 16, blockSize: 32, tile: 32, scoreParts: 4 };
    expect(selectedMatrixUnsupported(narrow)).toBeUndefined();
    expect(selectedMatrixUnsupported({ ...narrow, vectorArrays: true })).toMatch(/in fours/);
  });

  it('every kernel walking a list with its indices read a step ahead: only the walk differs, and it compiles', async () => {
    const small = { ...base, d: 32, dv: 32, group: 16, blockSize: 32, tile: 16 };
    const kernels = [
      ['forward', (c: SelectedMatrixConfig) => selectedMatrixWgsl(c), 'nextBlock'],
      ['dq', (c: SelectedMatrixConfig) => selectedDqMatrixWgsl(c), 'nextBlock'],
      ['dq roles', (c: SelectedMatrixConfig) => selectedDqRolesMatrixWgsl(c), 'nextBlock'],
      ['dk', (c: SelectedMatrixConfig) => selectedKeysMatrixWgsl(c, 'dk'), 'nextPos'],
      [
        'dk dv roles',
        (c: SelectedMatrixConfig) => selectedDkDvRolesMatrixWgsl({ ...c, columnSplits: 1 }),
        'nextPos',
      ],
    ] as const;
    for (const [name, generate, index] of kernels) {
      const inTurn = generate(small);
      const ahead = generate({ ...small, indexAhead: true });
      expect(inTurn, name).not.toContain(index);
      // The next index read once before the walk and once in each step, under its bound.
      expect(ahead.match(new RegExp(`${index} = (selected|i32\\(inverse)\\[`, 'g'))?.length, name).toBe(2);
      expect(declaredWorkgroupBytes(ahead), name).toBe(declaredWorkgroupBytes(inTurn));
      await expect(gpu.pipelines.get(ahead, `selected ${name} index ahead`)).resolves.toBeDefined();
    }
    // The H200 shapes as modules.
    for (const code of [
      selectedMatrixWgsl({ ...selectedH200, vectorArrays: true, indexAhead: true }),
      selectedDqRolesMatrixWgsl({ ...selectedH200, scoreParts: 1, wideLoads: true, indexAhead: true }),
      selectedDkDvRolesMatrixWgsl({
        ...selectedH200,
        scoreParts: 1,
        tile: 32,
        columnSplits: 2,
        wideLoads: true,
        indexAhead: true,
      }),
    ]) {
      expect(await moduleErrors(gpu, code)).toEqual([]);
    }
  });

  it('the role-split dQ kernel loading each key tile a step ahead: the same workgroup memory, and it compiles', async () => {
    const small = { ...base, d: 32, dv: 32, group: 16, blockSize: 32, tile: 16, indexAhead: true };
    const inTurn = selectedDqRolesMatrixWgsl(small);
    const prefetched = selectedDqRolesMatrixWgsl({ ...small, prefetchTiles: true });
    expect(inTurn).not.toContain('aheadK0');
    // The first tile's loads before the walk, each next tile's after the tile's stores: two copies
    // of K's loads, one of its stores, the barriers unchanged in number.
    const keyLoads = (code: string) => code.match(/= k\[/g)?.length ?? 0;
    expect(keyLoads(inTurn)).toBeGreaterThan(0);
    expect(keyLoads(prefetched)).toBe(2 * keyLoads(inTurn));
    expect(prefetched.match(/workgroupBarrier\(\)/g)?.length).toBe(
      inTurn.match(/workgroupBarrier\(\)/g)?.length,
    );
    expect(declaredWorkgroupBytes(prefetched)).toBe(declaredWorkgroupBytes(inTurn));
    await expect(gpu.pipelines.get(prefetched, 'selected dq roles prefetched')).resolves.toBeDefined();
    // The H200 shape as a module.
    const h200 = { ...selectedH200, tile: 16, scoreParts: 1, indexAhead: true, prefetchTiles: true };
    expect(await moduleErrors(gpu, selectedDqRolesMatrixWgsl(h200))).toEqual([]);
  });

  it('the forward and dQ kernels walking the tokens of one KV head first: only the opening differs, and it compiles', async () => {
    const c = { ...base, d: 32, dv: 32, group: 16, blockSize: 32, tile: 16 };
    const generators = [
      ['forward', selectedMatrixWgsl],
      ['dq', selectedDqMatrixWgsl],
      ['dq roles', selectedDqRolesMatrixWgsl],
    ] as const;
    for (const [name, generate] of generators) {
      const tokenMajor = generate(c);
      const headMajor = generate({ ...c, kvHeadMajor: true });
      expect(tokenMajor).toContain('let t = w / p.kvHeads;\n  let g = w % p.kvHeads;');
      expect(headMajor).toContain('let t = w % p.tokens;\n  let g = w / p.tokens;');
      expect(
        headMajor.replace(
          'let t = w % p.tokens;\n  let g = w / p.tokens;',
          'let t = w / p.kvHeads;\n  let g = w % p.kvHeads;',
        ),
      ).toBe(tokenMajor);
      await expect(gpu.pipelines.get(headMajor, `selected ${name} kv-head major`)).resolves.toBeDefined();
    }
  });

  // The backward's kernels hold more: smaller head dims still take every path.
  const backwardShapes: SelectedMatrixConfig[] = [
    { ...base, d: 32, dv: 16, group: 16, blockSize: 64, tile: 32 },
    { ...base, d: 32, dv: 16, group: 4, blockSize: 32, tile: 16 },
    { ...base, d: 16, dv: 32, group: 32, blockSize: 64, tile: 16 },
  ];
  for (const c of backwardShapes) {
    it(`backward d=${c.d} dv=${c.dv} group ${c.group} tile ${c.tile}: dq, dk, dv and their chunk sums`, async () => {
      expect(selectedBackwardMatrixUnsupported(c)).toBeUndefined();
      const limit = gpu.caps.limits.maxComputeWorkgroupStorageSize;
      expect(selectedDqMatrixSharedBytes(c)).toBeLessThanOrEqual(limit);
      expect(selectedKeysMatrixSharedBytes(c, 'dk')).toBeLessThanOrEqual(limit);
      await expect(gpu.pipelines.get(selectedDqMatrixWgsl(c), 'selected dq matrix')).resolves.toBeDefined();
      await expect(
        gpu.pipelines.get(selectedKeysMatrixWgsl(c, 'dk'), 'selected dk matrix'),
      ).resolves.toBeDefined();
      await expect(
        gpu.pipelines.get(selectedKeysMatrixWgsl(c, 'dv'), 'selected dv matrix'),
      ).resolves.toBeDefined();
      for (const grad of ['dk', 'dv'] as const) {
        await expect(
          gpu.pipelines.get(selectedKeysSumWgsl(c, grad), `selected ${grad} sum`),
        ).resolves.toBeDefined();
      }
    });
  }

  it('backward at the H200 shape (d = 128, group 16): dQ and dV with 64-key tiles, dK with 32, as shader modules', async () => {
    // Over the null backend's 16 KiB: the modules must compile; the pipelines are created on the
    // GPU by `webattn verify nsa`. The tiles are the widest within 48 KiB.
    const h200 = { ...base, d: 128, dv: 128, group: 16, blockSize: 64 };
    const limit = 48 * 1024;
    const fits = (bytes: (c: SelectedMatrixConfig) => number, tile: number) =>
      bytes({ ...h200, tile }) <= limit;
    expect([
      fits(selectedDqMatrixSharedBytes, 64),
      fits((c) => selectedKeysMatrixSharedBytes(c, 'dv'), 64),
    ]).toEqual([true, true]);
    expect([
      fits((c) => selectedKeysMatrixSharedBytes(c, 'dk'), 64),
      fits((c) => selectedKeysMatrixSharedBytes(c, 'dk'), 32),
    ]).toEqual([false, true]);
    for (const code of [
      selectedDqMatrixWgsl({ ...h200, tile: 64 }),
      selectedKeysMatrixWgsl({ ...h200, tile: 64 }, 'dv'),
      selectedKeysSumWgsl({ ...h200, tile: 64 }, 'dv'),
      selectedKeysMatrixWgsl({ ...h200, tile: 32 }, 'dk'),
    ]) {
      expect(await moduleErrors(gpu, code)).toEqual([]);
    }
  });

  it('the role-split dQ (d = dv): pipelines within 16 KiB, the H200 shape as a module, and where it refuses', async () => {
    // Q held by one role's subgroups, dO by the other's; each subgroup owns d / (2 · tile/16) of dQ's columns.
    for (const c of [
      { ...base, d: 64, dv: 64, group: 16, blockSize: 64, tile: 32 },
      { ...base, d: 32, dv: 32, group: 32, blockSize: 32, tile: 16 },
    ]) {
      expect(selectedDqRolesUnsupported(c)).toBeUndefined();
      expect(selectedDqRolesSharedBytes(c)).toBeLessThanOrEqual(
        gpu.caps.limits.maxComputeWorkgroupStorageSize,
      );
      const code = selectedDqRolesMatrixWgsl(c);
      expect(code).toContain(`@workgroup_size(${2 * (c.tile / 16) * 32})`);
      await expect(gpu.pipelines.get(code, 'selected dq roles matrix')).resolves.toBeDefined();
      // 16-byte loads: q, k, v and dO bound as vec4<u32>.
      const wide = selectedDqRolesMatrixWgsl({ ...c, wideLoads: true });
      expect(wide.match(/array<vec4<u32>>/g)?.length).toBe(4);
      await expect(gpu.pipelines.get(wide, 'selected dq roles matrix wide')).resolves.toBeDefined();
    }
    const h200 = { ...base, d: 128, dv: 128, group: 16, blockSize: 64, tile: 64 };
    expect(selectedDqRolesSharedBytes(h200)).toBeLessThanOrEqual(48 * 1024);
    for (const wideLoads of [false, true]) {
      expect(await moduleErrors(gpu, selectedDqRolesMatrixWgsl({ ...h200, wideLoads }))).toEqual([]);
    }
    expect(selectedDqRolesUnsupported({ ...h200, dv: 64 })).toMatch(/differ/);
    expect(selectedDqRolesUnsupported({ ...h200, d: 64, dv: 64 })).toMatch(/8 slices/);
  });

  it('the fused dK/dV split by role (d = dv): pipelines within 16 KiB with their chunk sum, the H200 shape as a module, and where it refuses', async () => {
    // S by one role, dP by the other; each role split by columns over `columnSplits` subgroups.
    for (const c of [
      { ...base, d: 32, dv: 32, group: 16, blockSize: 64, tile: 32, columnSplits: 1 },
      { ...base, d: 32, dv: 32, group: 16, blockSize: 32, tile: 16, columnSplits: 2 },
      { ...base, d: 32, dv: 32, group: 32, blockSize: 32, tile: 16, columnSplits: 1 },
    ]) {
      expect(selectedDkDvRolesUnsupported(c)).toBeUndefined();
      expect(selectedDkDvRolesSharedBytes(c)).toBeLessThanOrEqual(
        gpu.caps.limits.maxComputeWorkgroupStorageSize,
      );
      const code = selectedDkDvRolesMatrixWgsl(c);
      expect(code).toContain(`@workgroup_size(${2 * c.columnSplits * (c.tile / 16) * 32})`);
      // Each subgroup holds its role's gradient's columns of one key slice: d / columnSplits.
      expect(code.match(/var acc\d+ = subgroup_matrix_result/g)?.length).toBe(c.d / 16 / c.columnSplits);
      await expect(gpu.pipelines.get(code, 'selected dk dv roles matrix')).resolves.toBeDefined();
      const wide = selectedDkDvRolesMatrixWgsl({ ...c, wideLoads: true });
      expect(wide.match(/array<vec4<u32>>/g)?.length).toBe(4);
      await expect(gpu.pipelines.get(wide, 'selected dk dv roles matrix wide')).resolves.toBeDefined();
      const sum = selectedKeysSumWgsl(c, 'dkdv');
      expect(sum).toContain('f16(sum * p.scale)');
      await expect(gpu.pipelines.get(sum, 'selected dk dv sum')).resolves.toBeDefined();
    }
    // At d = 128 each subgroup holds its K or V fragments and their array takes q and dO; where the
    // tile is taller than the group's 16 rows, K and V are staged in turn through one tile's place.
    // The default, 32-key tiles over one column split, declares 16,000 bytes, under the H200's
    // first step of 16 KiB (two splits: 20.1 KiB, 28.6 with K and V side by side); 64-key tiles fit
    // 48 KiB (38.6 KiB over two splits, 55.6 side by side).
    const h200 = { ...base, d: 128, dv: 128, group: 16, blockSize: 64, tile: 32, columnSplits: 1 };
    expect(selectedDkDvRolesSharedBytes(h200)).toBe(16000);
    expect(selectedDkDvRolesSharedBytes({ ...h200, columnSplits: 2 })).toBe(20608);
    expect(selectedDkDvRolesSharedBytes({ ...h200, tile: 16, columnSplits: 2 })).toBeLessThanOrEqual(
      16 * 1024,
    );
    expect(selectedDkDvRolesSharedBytes({ ...h200, tile: 64, columnSplits: 2 })).toBe(39552);
    for (const c of [h200, { ...h200, tile: 64, columnSplits: 2 }, { ...h200, tile: 16, columnSplits: 2 }]) {
      const code = selectedDkDvRolesMatrixWgsl(c);
      expect(declaredWorkgroupBytes(code)).toBe(selectedDkDvRolesSharedBytes(c));
      expect(await moduleErrors(gpu, code)).toEqual([]);
    }
    // One fragment per d-step of the subgroup's part (128 / 16), loaded once, before the walk: K's
    // by role 0 once K is staged, V's by role 1 once V has taken its place.
    const held = selectedDkDvRolesMatrixWgsl(h200);
    expect(held.match(/kv\d+ = subgroupMatrixLoad/g)?.length).toBe(16);
    const at = (text: string) => held.indexOf(text);
    expect(at('= k[')).toBeLessThan(at('if (role == 0u)'));
    expect(at('if (role == 0u)')).toBeLessThan(at('= v['));
    expect(at('= v[')).toBeLessThan(at('if (role == 1u)'));
    expect(at('if (role == 1u)')).toBeLessThan(at('for (var m = '));
    // 16-key tiles (no taller than the group) stage K and V side by side, as before.
    const sideBySide = selectedDkDvRolesMatrixWgsl({ ...h200, tile: 16, columnSplits: 2 });
    expect(sideBySide.match(/let kv\d+ = subgroupMatrixLoad/g)?.length).toBe(4);
    expect(sideBySide).not.toContain('if (role == 0u)');
    for (const [columnSplits, wideLoads] of [
      [1, false],
      [2, false],
      [2, true],
    ] as const) {
      expect(
        await moduleErrors(gpu, selectedDkDvRolesMatrixWgsl({ ...h200, columnSplits, wideLoads })),
      ).toEqual([]);
    }
    expect(selectedDkDvRolesUnsupported({ ...h200, dv: 64 })).toMatch(/differ/);
    expect(selectedDkDvRolesUnsupported({ ...h200, columnSplits: 3 })).toMatch(/3 parts/);
    expect(selectedDkDvRolesUnsupported({ ...h200, columnSplits: 0 })).toMatch(/positive integer/);
    expect(() => selectedDkDvRolesMatrixWgsl({ ...h200, dv: 64 })).toThrow(/differ/);
  });

  for (const group of [4, 16, 32]) {
    it(`selection, group ${group} (queries ${group % 16 ? 'staged' : 'read from q'}; probabilities ${group > 16 ? 'through workgroup memory' : 'shuffled'}), one to four tokens per workgroup`, async () => {
      for (const [tokens, vectorStaging] of [
        [1, false],
        [2, true],
        [4, false],
      ] as const) {
        const plain = { ...selectBase, d: 32, group, maxBlocks: 256, tile: 32, tokens, vectorStaging };
        // Head-major scores wherever each token has one subgroup (groups of 16 or fewer).
        const c = { ...plain, headMajorScores: group <= 16 };
        expect(selectMatrixUnsupported(c)).toBeUndefined();
        if (group > 16) {
          expect(selectMatrixUnsupported({ ...plain, headMajorScores: true })).toMatch(
            /one subgroup per token/,
          );
        }
        expect(selectMatrixShuffles(c)).toBe(group <= 16);
        // Shapes over the null backend's 16 KiB of workgroup memory compile as modules; the others
        // as pipelines.
        // The top-n kept while walking wherever the probabilities are shuffled.
        const streaming = { ...c, streamingPicks: true };
        expect(selectMatrixUnsupported(streaming)).toEqual(
          group <= 16 ? undefined : expect.stringMatching(/one subgroup per token/),
        );
        for (const variant of group <= 16 ? [c, streaming] : [c]) {
          const code = selectMatrixWgsl(variant);
          expect(code.includes('subgroupBallot'), 'streaming').toBe(variant === streaming);
          if (selectMatrixSharedBytes(variant) > gpu.caps.limits.maxComputeWorkgroupStorageSize) {
            expect(await moduleErrors(gpu, code)).toEqual([]);
          } else {
            await expect(gpu.pipelines.get(code, `select matrix x${tokens}`)).resolves.toBeDefined();
          }
        }
      }
    });
  }

  it('selection at the H200 shape (six tokens, d = 128, 1024 blocks) as a shader module', async () => {
    // Its 46 KiB of workgroup memory exceed the null backend's 16 KiB: the module must compile; the
    // pipeline is created on the GPU by `webattn verify nsa`.
    const c = { ...selectBase, d: 128, group: 16, maxBlocks: 1024, ...SELECT_MATRIX_SHAPES[0]! };
    expect(c).toMatchObject({ tile: 32, tokens: 6 });
    // One pinned 32-lane subgroup per token: the probabilities reach the scores through shuffles.
    expect(selectMatrixShuffles(c)).toBe(true);
    expect(selectMatrixShuffles({ ...c, pinSubgroupSize: false })).toBe(false);
    expect(selectMatrixSharedBytes(c)).toBeLessThanOrEqual(48 * 1024);
    // Head-major scores take 16 more bytes per block row and still fit six tokens.
    expect(selectMatrixSharedBytes({ ...c, headMajorScores: true })).toBeLessThanOrEqual(48 * 1024);
    // What the host checks against the device is what each variant declares.
    for (const variant of [c, { ...c, vectorStaging: true, headMajorScores: true }]) {
      expect(declaredWorkgroupBytes(selectMatrixWgsl(variant))).toBe(selectMatrixSharedBytes(variant));
    }
    expect(selectMatrixUnsupported({ ...c, headMajorScores: true })).toBeUndefined();
    // The top-n kept while walking drops the score per selection block, so that the planner's
    // six tokens fit 24 KiB: two workgroups per H200 SM where 48 KiB held one (specs/webgpu.md).
    const planned = { ...c, wideLoads: true, vectorStaging: true, headMajorScores: true };
    const streaming = { ...planned, streamingPicks: true };
    expect(selectMatrixSharedBytes(planned)).toBeGreaterThan(24 * 1024);
    expect(selectMatrixSharedBytes(streaming)).toBeLessThanOrEqual(24 * 1024);
    expect(declaredWorkgroupBytes(selectMatrixWgsl(streaming))).toBe(selectMatrixSharedBytes(streaming));
    expect(await moduleErrors(gpu, selectMatrixWgsl(streaming))).toEqual([]);
    // With 8- and 16-byte compressed-key loads (the keys bound as vec4<u32>, prefetched a tile
    // ahead), staged into f16 or vec4<f16> arrays.
    for (const [wideLoads, vectorStaging] of [
      [false, false],
      [true, false],
      [false, true],
      [true, true],
    ]) {
      // Head-major scores with vector staging (the planner's choice), row-major without.
      const code = selectMatrixWgsl({ ...c, wideLoads, vectorStaging, headMajorScores: vectorStaging });
      expect(code.includes('subgroupMatrixStore<col_major>(&Ss'), `head-major ${vectorStaging}`).toBe(
        vectorStaging,
      );
      expect(code.includes('cmpK: array<vec4<u32>>'), `wide ${wideLoads}`).toBe(wideLoads);
      expect(code.includes('var<workgroup> Ks: array<vec4<f16>,'), `vectors ${vectorStaging}`).toBe(
        vectorStaging,
      );
      expect(await moduleErrors(gpu, code)).toEqual([]);
    }
  });

  it('says why a shape does not fit', () => {
    expect(
      selectMatrixUnsupported({ ...selectBase, d: 32, group: 48, maxBlocks: 64, tile: 32, tokens: 1 }),
    ).toMatch(/two fragments/);
    const streaming = {
      ...selectBase,
      d: 32,
      group: 16,
      maxBlocks: 64,
      tile: 32,
      tokens: 2,
      headMajorScores: true,
      streamingPicks: true,
    };
    expect(selectMatrixUnsupported(streaming)).toBeUndefined();
    expect(selectMatrixUnsupported({ ...streaming, topN: 33 })).toMatch(/topN = 33 blocks in 32 lanes/);
    // 80-token selection blocks are five strides: a 32-block tile does not hold whole ones.
    expect(
      selectMatrixUnsupported({ ...streaming, geometry: { ...REFERENCE_GEOMETRY, blockSize: 80 } }),
    ).toMatch(/whole selection blocks of 5 strides/);
    expect(() => selectMatrixWgsl({ ...streaming, topN: 33 })).toThrow(/topN = 33/);
    expect(selectedMatrixUnsupported({ ...shapes[0]!, group: 48 })).toMatch(/two fragments/);
    expect(selectedMatrixUnsupported({ ...shapes[0]!, blockSize: 40 })).toMatch(/multiple of the tile/);
    expect(selectedMatrixUnsupported({ ...shapes[0]!, dv: 40, tile: 64 })).toMatch(/dv = 40/);
  });
});

describe('nsaForward rejects bad input before dispatching', () => {
  let gpu: Gpu;
  beforeAll(async () => {
    gpu = await testGpu();
  });
  afterAll(() => gpu.destroy());

  it('names the argument, the expected and the actual value', async () => {
    const config = resolveNsaConfig({ heads: 4, kvHeads: 2, headDim: 16 });
    const make = (shape: number[], dtype: 'f32' | 'f16' = 'f32') =>
      Tensor.from(
        gpu,
        randn(
          shape.reduce((a, b) => a * b, 1),
          1,
        ),
        shape,
        dtype,
      );
    using q = make([1, 8, 4, 16]);
    using k = make([1, 8, 2, 16]);
    using kWrongHeads = make([1, 8, 3, 16]);
    using g = make([1, 8, 4, 3]);
    using gShort = make([1, 7, 4, 3]);
    using weight = make([32]);
    using weightShort = make([31]);
    using pe = make([32, 16]);
    using peF16 = make([32, 16], 'f16');
    const before = gpu.memory().liveBuffers;
    await expect(nsaForward(gpu, config, q, kWrongHeads, k, g)).rejects.toThrow(
      /k: expected shape \[1, 8, 2, 16\], got \[1, 8, 3, 16\]/,
    );
    await expect(nsaForward(gpu, config, q, k, k, gShort)).rejects.toThrow(
      /g: expected shape \[1, 8, 4, 3\], got \[1, 7, 4, 3\]/,
    );
    await expect(nsaForward(gpu, config, q, k, k, g, { cuSeqlens: [0, 8] })).rejects.toThrow(
      /q: expected rank 3 \[total, heads, dim\] with cuSeqlens, got \[1, 8, 4, 16\]/,
    );
    await expect(
      nsaForward(gpu, config, q, k, k, g, { compressors: { k: { weight: weightShort, pe } } }),
    ).rejects.toThrow(/compressors\.k\.weight: expected shape \[32\], got \[31\]/);
    await expect(
      nsaForward(gpu, config, q, k, k, g, { compressors: { v: { weight, pe: peF16 } } }),
    ).rejects.toThrow(/compressors\.v\.pe: expected dtype f32 \(v's\), got f16/);
    await expect(
      nsaForward(gpu, config, q, k, k, g, { compressors: { k: { method: 'swiglu', weight: pe } } }),
    ).rejects.toThrow(/compressors\.k\.weight: expected shape \[32, 512\], got \[32, 16\]/);
    expect(gpu.memory().liveBuffers).toBe(before);
  });
});

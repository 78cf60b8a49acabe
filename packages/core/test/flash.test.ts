import {
  attentionBackward,
  attentionForward,
  attentionVarlen,
  attentionVarlenBackward,
  randn,
} from '@webattn/reference';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  matrixBackwardUnsupported,
  matrixDkDvSharedBytes,
  matrixDqSharedBytes,
} from '../src/flash/backward-matrix.wgsl.js';
import {
  flashDkDvRolesMatrixWgsl,
  matrixDkDvRolesSharedBytes,
  matrixDkDvRolesUnsupported,
  roleSplitRows,
  roleSplitSubgroups,
} from '../src/flash/backward-roles-matrix.wgsl.js';
import {
  flashDqRolesMatrixWgsl,
  matrixDqRolesSharedBytes,
  matrixDqRolesUnsupported,
} from '../src/flash/dq-roles-matrix.wgsl.js';
import { DKDV_KERNEL, DQ_KERNEL, FORWARD_SHAPES, matrixBackwardKernels } from '../src/flash/flash.js';
import {
  type MatrixForwardConfig,
  matrixForwardQueryInWorkgroup,
  matrixForwardRows,
  matrixForwardSharedBytes,
  matrixForwardSubgroups,
  matrixForwardUnsupported,
  matrixForwardValueLoads,
} from '../src/flash/forward-matrix.wgsl.js';
import {
  flashAttention,
  flashAttentionBackward,
  flashDeltaWgsl,
  flashDkDvMatrixWgsl,
  flashDkDvWgsl,
  flashDqMatrixWgsl,
  flashDqWgsl,
  flashForwardMatrixWgsl,
  flashForwardRows,
  flashForwardVariant,
  flashForwardWgsl,
  type Gpu,
  matrixBackwardConfig,
  matrixForwardConfig,
  ROW_DOT_THREADS,
  randomNormal,
  rowKernelConfig,
  Tensor,
  type Tier,
} from '../src/index.js';
import { declaredWorkgroupBytes, moduleErrors, nullGpu, nullMatrixGpu, testGpu } from '../src/testing.js';
import { WORKGROUP_MEMORY_STEPS, workgroupsPerSm } from '../src/workgroup-memory-steps.js';
import { checkDenseCase, cumulativeLengths, type DenseCase, expectClose } from './dense-cases.js';

// The edges: a single token; lengths off every tile size; more keys than queries (bottom-right
// alignment) and fewer (rows that see nothing); windows inside and beyond the sequence; GQA groups
// 1, 4 and 16; head dims 64, 128, 192 with d != dv, and a dv off the 16-byte vectors.
const CASES: DenseCase[] = [
  { name: 'n=1', b: 1, n: 1, nk: 1, hq: 1, hkv: 1, d: 64, dv: 64 },
  { name: 'causal GQA 4, n off the tiles', b: 2, n: 77, nk: 77, hq: 4, hkv: 1, d: 64, dv: 64, causal: true },
  {
    name: 'nk > n bottom-right, d=128 dv=64',
    b: 1,
    n: 65,
    nk: 130,
    hq: 2,
    hkv: 2,
    d: 128,
    dv: 64,
    causal: true,
  },
  {
    name: 'nk < n: the first rows see no key',
    b: 1,
    n: 100,
    nk: 60,
    hq: 2,
    hkv: 1,
    d: 64,
    dv: 64,
    causal: true,
  },
  { name: 'GQA 16', b: 1, n: 40, nk: 40, hq: 16, hkv: 1, d: 64, dv: 64, causal: true },
  {
    name: 'window [512, 0] longer than n',
    b: 1,
    n: 200,
    nk: 200,
    hq: 2,
    hkv: 2,
    d: 64,
    dv: 64,
    window: [512, 0],
  },
  {
    name: 'window [16, 8], not causal',
    b: 1,
    n: 100,
    nk: 100,
    hq: 2,
    hkv: 1,
    d: 64,
    dv: 32,
    window: [16, 8],
  },
  { name: 'd=192 dv=128, custom scale', b: 1, n: 33, nk: 47, hq: 2, hkv: 1, d: 192, dv: 128, scale: 0.3 },
  // dv off the 16-byte vectors: the delta pass reads one element at a time.
  { name: 'd=16 dv=6, causal', b: 1, n: 37, nk: 37, hq: 2, hkv: 1, d: 16, dv: 6, causal: true },
];

describe('flash attention on SwiftShader against the reference', () => {
  let gpu: Gpu;
  beforeAll(async () => {
    gpu = await testGpu();
  });
  afterAll(() => gpu.destroy());

  for (const c of CASES) {
    const tiers: Tier[] =
      c.name === 'n=1' || c.name.startsWith('causal GQA') ? ['portable', 'subgroups'] : ['portable'];
    for (const tier of tiers) {
      it(`${c.name} [${tier}]: o, lse, dq, dk, dv`, async () => {
        await checkDenseCase(gpu, c, tier);
      });
    }
  }

  it('packed variable-length batches, lengths 1..300, forward and backward', async () => {
    const qLens = [1, 300, 17, 64];
    const kLens = [1, 300, 40, 64];
    const [cuQ, cuK] = [cumulativeLengths(qLens), cumulativeLengths(kLens)];
    const [totalQ, totalK, hq, hkv, d, dv] = [cuQ.at(-1)!, cuK.at(-1)!, 4, 2, 64, 64];
    const q = randn(totalQ * hq * d, 5);
    const k = randn(totalK * hkv * d, 6);
    const v = randn(totalK * hkv * dv, 7);
    const dO = randn(totalQ * hq * dv, 8);
    using tq = Tensor.from(gpu, q, [totalQ, hq, d]);
    using tk = Tensor.from(gpu, k, [totalK, hkv, d]);
    using tv = Tensor.from(gpu, v, [totalK, hkv, dv]);
    using tdo = Tensor.from(gpu, dO, [totalQ, hq, dv]);
    const { o, lse, ctx } = await flashAttention(gpu, tq, tk, tv, {
      causal: true,
      cuSeqlensQ: cuQ,
      cuSeqlensK: cuK,
    });
    using _o = o;
    using _lse = lse;
    expect(lse.shape).toEqual([hq, totalQ]);
    const shape = { hq, hkv, d, dv, causal: true };
    const ref = attentionVarlen(q, k, v, Int32Array.from(cuQ), Int32Array.from(cuK), shape);
    expectClose('o', ref.o, await o.read());
    expectClose('lse', ref.lse, await lse.read());
    const grads = await flashAttentionBackward(ctx, tdo);
    const refGrads = attentionVarlenBackward(
      q,
      k,
      v,
      ref.o,
      ref.lse,
      dO,
      Int32Array.from(cuQ),
      Int32Array.from(cuK),
      shape,
    );
    expectClose('dq', refGrads.dq, await grads.dq.read(), 4);
    expectClose('dk', refGrads.dk, await grads.dk.read(), 4);
    expectClose('dv', refGrads.dv, await grads.dv.read(), 4);
    for (const t of Object.values(grads)) t.dispose();
  });

  // NSA's compressed attention: key j stands for tokens [j·stride, j·stride + size) and is seen by
  // query t when its last token is not after t (and, with a window, not before t - left). The oracle
  // runs the reference once per query row over exactly the keys that row sees.
  for (const [name, blocks, window] of [
    ['causal', { size: 8, stride: 4 }, undefined],
    ['causal, window [20, 0], no overlap', { size: 4, stride: 4 }, [20, 0]],
  ] as const) {
    it(`key blocks (${name}): o, lse, dq, dk, dv`, async () => {
      const [b, n, nk, hq, hkv, d, dv] = [2, 45, 10, 4, 2, 32, 16];
      const q = randn(b * n * hq * d, 11);
      const k = randn(b * nk * hkv * d, 12);
      const v = randn(b * nk * hkv * dv, 13);
      const dO = randn(b * n * hq * dv, 14);
      const ref = {
        o: new Float32Array((q.length / d) * dv),
        lse: new Float32Array(b * hq * n).fill(Number.NEGATIVE_INFINITY),
        dq: new Float32Array(q.length),
        dk: new Float32Array(k.length),
        dv: new Float32Array(v.length),
      };
      for (let bi = 0; bi < b; bi++) {
        for (let t = 0; t < n; t++) {
          const seen = Array.from({ length: nk }, (_, j) => j).filter((j) => {
            const last = j * blocks.stride + blocks.size - 1;
            return last <= t && (window === undefined || last >= t - window[0]);
          });
          if (seen.length === 0) continue;
          const [lo, count] = [seen[0]!, seen.length];
          const rowOf = (x: Float32Array, width: number, heads: number, at: number, len: number) =>
            x.subarray(
              (bi * (x === q || x === dO ? n : nk) + at) * heads * width,
              (bi * (x === q || x === dO ? n : nk) + at + len) * heads * width,
            );
          const qt = rowOf(q, d, hq, t, 1);
          const dOt = rowOf(dO, dv, hq, t, 1);
          const kt = rowOf(k, d, hkv, lo, count);
          const vt = rowOf(v, dv, hkv, lo, count);
          const shape = { batch: 1, n: 1, nk: count, hq, hkv, d, dv };
          const row = attentionForward(qt, kt, vt, shape);
          const g = attentionBackward(qt, kt, vt, row.o, row.lse, dOt, shape);
          ref.o.set(row.o, (bi * n + t) * hq * dv);
          for (let h = 0; h < hq; h++) ref.lse[(bi * hq + h) * n + t] = row.lse[h]!;
          ref.dq.set(g.dq, (bi * n + t) * hq * d);
          const kAt = (bi * nk + lo) * hkv;
          g.dk.forEach((x, e) => {
            ref.dk[kAt * d + e]! += x;
          });
          g.dv.forEach((x, e) => {
            ref.dv[kAt * dv + e]! += x;
          });
        }
      }
      using tq = Tensor.from(gpu, q, [b, n, hq, d]);
      using tk = Tensor.from(gpu, k, [b, nk, hkv, d]);
      using tv = Tensor.from(gpu, v, [b, nk, hkv, dv]);
      using tdo = Tensor.from(gpu, dO, [b, n, hq, dv]);
      const { o, lse, ctx } = await flashAttention(gpu, tq, tk, tv, {
        causal: true,
        keyBlocks: blocks,
        ...(window !== undefined && { window: [...window] as [number, number] }),
      });
      using _o = o;
      using _lse = lse;
      expectClose('o', ref.o, await o.read());
      const glse = await lse.read();
      // Rows that see no block (t < size - 1) have lse = -inf in both.
      expectClose(
        'lse',
        ref.lse.map((x) => (x === Number.NEGATIVE_INFINITY ? 0 : x)),
        glse.map((x) => (x === Number.NEGATIVE_INFINITY ? 0 : x)),
      );
      expect(glse[0]).toBe(Number.NEGATIVE_INFINITY);
      const grads = await flashAttentionBackward(ctx, tdo);
      expectClose('dq', ref.dq, await grads.dq.read(), 4);
      expectClose('dk', ref.dk, await grads.dk.read(), 4);
      expectClose('dv', ref.dv, await grads.dv.read(), 4);
      for (const t of Object.values(grads)) t.dispose();
    });
  }

  it('is deterministic and frees what it allocates', async () => {
    const before = gpu.memory().liveBuffers;
    const bits: string[] = [];
    for (let run = 0; run < 2; run++) {
      using q = Tensor.from(gpu, randn(50 * 8 * 32, 9), [1, 50, 8, 32]);
      using k = Tensor.from(gpu, randn(50 * 2 * 32, 10), [1, 50, 2, 32]);
      const { o, lse, ctx } = await flashAttention(gpu, q, k, k, { causal: true });
      const g = await flashAttentionBackward(ctx, o);
      const outputs = await Promise.all([o, lse, g.dq, g.dk, g.dv].map((t) => t.read()));
      bits.push(outputs.map((x) => Buffer.from(x.buffer).toString('base64')).join());
      for (const t of [o, lse, g.dq, g.dk, g.dv]) t.dispose();
    }
    expect(bits[0]).toBe(bits[1]);
    expect(gpu.memory().liveBuffers).toBe(before);
  });

  it("takes a caller's delta in place of its own pass, and checks it", async () => {
    const [n, hq, hkv, d] = [50, 8, 2, 32];
    using q = Tensor.from(gpu, randn(n * hq * d, 21), [1, n, hq, d]);
    using k = Tensor.from(gpu, randn(n * hkv * d, 22), [1, n, hkv, d]);
    using v = Tensor.from(gpu, randn(n * hkv * d, 23), [1, n, hkv, d]);
    using dO = Tensor.from(gpu, randn(n * hq * d, 24), [1, n, hq, d]);
    const { o, lse, ctx } = await flashAttention(gpu, q, k, v, { causal: true });
    using _o = o;
    using _lse = lse;
    const own = await flashAttentionBackward(ctx, dO);
    // rowsum(dO ∘ o) per (head, token): the lse layout of a dense batch.
    const [oh, dOh] = await Promise.all([o.read(), dO.read()]);
    const rows = new Float32Array(hq * n);
    for (let t = 0; t < n; t++) {
      for (let h = 0; h < hq; h++) {
        let sum = 0;
        for (let e = 0; e < d; e++) sum += oh[(t * hq + h) * d + e]! * dOh[(t * hq + h) * d + e]!;
        rows[h * n + t] = sum;
      }
    }
    using delta = Tensor.from(gpu, rows, lse.shape);
    const given = await flashAttentionBackward(ctx, dO, { delta });
    for (const name of ['dq', 'dk', 'dv'] as const) {
      expectClose(name, await own[name].read(), await given[name].read());
    }
    // A wrong delta moves dq: the given one is what the kernels read.
    using zeros = Tensor.zeros(gpu, lse.shape);
    const wrong = await flashAttentionBackward(ctx, dO, { delta: zeros });
    const [dq, dqWrong] = await Promise.all([own.dq.read(), wrong.dq.read()]);
    expect(Math.max(...dq.map((x, i) => Math.abs(x - dqWrong[i]!)))).toBeGreaterThan(1e-2);
    for (const g of [own, given, wrong]) for (const t of Object.values(g)) t.dispose();
    using flat = Tensor.zeros(gpu, [hq * n]);
    await expect(flashAttentionBackward(ctx, dO, { delta: flat })).rejects.toThrow(
      /options.delta: expected shape \[1, 8, 50\] \(lse's\), got \[400\]/,
    );
    using half = Tensor.zeros(gpu, lse.shape, 'f16');
    await expect(flashAttentionBackward(ctx, dO, { delta: half })).rejects.toThrow(
      /options.delta: expected dtype f32, got f16/,
    );
  });

  it('rejects bad input before dispatching, naming the argument', async () => {
    using q = Tensor.from(gpu, randn(2 * 4 * 8, 1), [1, 2, 4, 8]);
    using k = Tensor.from(gpu, randn(2 * 3 * 8, 1), [1, 2, 3, 8]);
    using k2 = Tensor.from(gpu, randn(2 * 2 * 8, 1), [1, 2, 2, 8]);
    using k16 = Tensor.from(gpu, randn(2 * 2 * 8, 1), [1, 2, 2, 8], 'f16');
    using v4 = Tensor.from(gpu, randn(2 * 2 * 8, 1), [2, 2, 8]);
    await expect(flashAttention(gpu, q, k, k)).rejects.toMatchObject({ code: 'heads-not-divisible' });
    await expect(flashAttention(gpu, q, k, k)).rejects.toThrow(
      /q: expected a head count divisible by k's 3, got 4/,
    );
    await expect(flashAttention(gpu, q, k16, k16)).rejects.toThrow(/k: expected dtype f32 \(q's\), got f16/);
    await expect(flashAttention(gpu, q, k2, v4)).rejects.toThrow(
      /v: expected rank 4 \[batch, tokens, heads, dim\], got shape \[2, 2, 8\]/,
    );
    await expect(flashAttention(gpu, q, k2, k2, { window: [-2, 0] })).rejects.toThrow(
      /options.window\[0\]: expected an integer >= -1/,
    );
    const packed = Tensor.from(gpu, randn(3 * 4 * 8, 1), [3, 4, 8]);
    await expect(
      flashAttention(gpu, packed, packed, packed, { cuSeqlensQ: [0, 2], cuSeqlensK: [0, 3] }),
    ).rejects.toThrow(/options.cuSeqlensQ: expected the last entry to equal the packed token count 3, got 2/);
    packed.dispose();
    const { o, lse, ctx } = await flashAttention(gpu, q, k2, k2);
    await expect(flashAttentionBackward(ctx, k2)).rejects.toThrow(
      /dO: expected shape \[1, 2, 4, 8\] \(o's\), got \[1, 2, 2, 8\]/,
    );
    o.dispose();
    lse.dispose();
    if (!gpu.caps.tiers.includes('f16')) {
      await expect(flashAttention(gpu, k16, k16, k16)).rejects.toMatchObject({ code: 'missing-feature' });
    }
  });
});

/** The H200's tensor-core kernel basics: 16x16x16 fragments, subgroups pinned to 32 lanes. */
const H200_MATRIX = { matrix: { M: 16, N: 16, K: 16 }, subgroupSize: 32, pinSubgroupSize: true };
/** The role-split kernels' shape at d = 128 on the H200, before its tile and column splits. */
const H200_ROLES_128 = { d: 128, dv: 128, ...H200_MATRIX, subgroups: 2 };

describe('flash attention: every variant compiles on the null backend', () => {
  let gpu: Gpu;
  beforeAll(async () => {
    gpu = await nullGpu();
  });
  afterAll(() => gpu.destroy());

  // The head dims the families need: 64..256, MLA's 96/64 and its latent 288/256.
  const dims: [number, number][] = [
    [64, 64],
    [96, 64],
    [128, 128],
    [192, 128],
    [256, 256],
    [288, 256],
  ];
  // The shapes the null backend's 16 KiB of workgroup memory allows; the larger ones chosen on GPUs
  // with more (the H100's 48 KiB) are compiled and checked there by `webattn verify flash`.
  for (const matrix of [
    { M: 16, N: 16, K: 16 },
    { M: 8, N: 16, K: 16 },
    { M: 8, N: 8, K: 8 },
  ]) {
    it(`subgroup-matrix forward and backward ${matrix.M}x${matrix.N}x${matrix.K} for the head dims that fit`, async () => {
      let compiled = 0;
      let backwards = 0;
      for (const [d, dv] of dims) {
        const config = matrixForwardConfig(gpu.caps, d, dv, matrix);
        if (config) {
          const code = flashForwardMatrixWgsl(config);
          await expect(gpu.pipelines.get(code, `matrix forward ${d}/${dv}`)).resolves.toBeDefined();
          compiled++;
        }
        const backward = matrixBackwardConfig(gpu.caps, d, dv, matrix);
        if (backward) {
          // Vector arrays as chosen, and scalar ones.
          expect(backward.vectorStaging, `${d}/${dv}`).toBe(true);
          const scalars = { ...backward, vectorStaging: false, vectorScores: false };
          for (const [what, c] of [
            ['', backward],
            [' scalar arrays', scalars],
          ] as const) {
            await expect(
              gpu.pipelines.get(flashDqMatrixWgsl(c), `matrix dq ${d}/${dv}${what}`),
            ).resolves.toBeDefined();
            await expect(
              gpu.pipelines.get(flashDkDvMatrixWgsl(c), `matrix dkdv ${d}/${dv}${what}`),
            ).resolves.toBeDefined();
          }
          backwards++;
        }
      }
      expect(compiled).toBeGreaterThanOrEqual(2);
      expect(backwards).toBeGreaterThanOrEqual(1);
    });
  }

  // The H200 shapes (d = dv, 16- and 32-row tiles, one or two column splits) of each role-split
  // backward kernel: over the null backend's 16 KiB of workgroup memory at d = 128, so the modules
  // must compile; the pipelines are created on the GPU by `webattn verify flash`. Each subgroup
  // holds d/16 fragments of its own rows (K or V; Q or dO) and its share of the accumulators.
  const roleSplitKernels = [
    {
      pass: 'dK/dV',
      wgsl: flashDkDvRolesMatrixWgsl,
      unsupported: matrixDkDvRolesUnsupported,
      sharedBytes: matrixDkDvRolesSharedBytes,
      held: /let ownf\d+ = subgroupMatrixLoad/g,
      accumulators: (d: number, columnSplits: number) => d / 16 / columnSplits,
      staging: 'QO',
      scores: 'SD',
      // The first query tile's loads, issued before the walk over the group's heads and tiles.
      prefetchOpening: /if \(steps > 0u\) \{/,
      // Role 0's P or role 1's dS, four queries at once.
      vectorStore: /PD\[[^\]]+\] = vec4<f16>\(x\);/,
    },
    {
      pass: 'dQ',
      wgsl: flashDqRolesMatrixWgsl,
      unsupported: matrixDqRolesUnsupported,
      sharedBytes: matrixDqRolesSharedBytes,
      // Declared once; each role loads its own (Q's or dO's) after their staging.
      held: /var hf\d+ = subgroup_matrix_left/g,
      accumulators: (d: number, columnSplits: number) => d / 32 / columnSplits,
      staging: 'X',
      scores: 'SD',
      // The first key tile's loads, issued before the loop over the key tiles.
      prefetchOpening: /if \(range\.x < range\.y\) \{\s+let k0 = range\.x;/,
      // dS, four keys at once.
      vectorStore: /Ds\[[^\]]+\] = vec4<f16>\(ds\);/,
    },
  ];
  it("the kernels the planner picks at d = 128 on the H200's limits stay under their workgroup-memory steps", async () => {
    // A kernel just past a step of the H200's workgroup memory runs slower (the forward 1.3x at
    // 16,400 bytes against 16,384, 1.9x at 24,592 against 24,576): a new workgroup variable must
    // not push these over unnoticed.
    const gpu = await nullMatrixGpu();
    try {
      const limits = { ...gpu.caps.limits, maxComputeWorkgroupStorageSize: 48 * 1024 };
      const caps = { ...gpu.caps, limits };
      const [first, second] = WORKGROUP_MEMORY_STEPS as [number, number];
      // Two row groups: two workgroups of four subgroups per SM, where one group holds three of two.
      const forward = matrixForwardConfig(caps, 128, 128)!;
      expect(forward).toMatchObject({ subgroups: 2, tile: 32, rowFragments: 2, rowGroups: 2 });
      expect(matrixForwardSharedBytes(forward)).toBeLessThanOrEqual(second);
      const backward = matrixBackwardConfig(caps, 128, 128)!;
      // The dQ kernel's two row groups: two workgroups of eight subgroups, where one holds three of four.
      const dq = {
        ...backward,
        tile: DQ_KERNEL.rolesTile,
        columnSplits: DQ_KERNEL.columnSplits,
        rowGroups: DQ_KERNEL.rowGroups,
      };
      expect(dq.rowGroups).toBe(2);
      expect(matrixDqRolesUnsupported(dq)).toBeUndefined();
      expect(matrixDqRolesSharedBytes(dq)).toBeLessThanOrEqual(second);
      expect(matrixDqRolesSharedBytes({ ...dq, rowGroups: 1 })).toBeLessThanOrEqual(first);
      const dkDv = {
        ...backward,
        tile: DKDV_KERNEL.rolesTile,
        columnSplits: DKDV_KERNEL.columnSplits,
        splitSteps: DKDV_KERNEL.splitSteps,
        rowGroups: DKDV_KERNEL.rowGroups,
      };
      expect(matrixDkDvRolesUnsupported(dkDv)).toBeUndefined();
      expect(matrixDkDvRolesSharedBytes(dkDv)).toBeLessThanOrEqual(second);
    } finally {
      gpu.destroy();
    }
  });

  it('the forward drops its row groups where one group covers every sequence (decode)', async () => {
    const gpu = await nullMatrixGpu();
    try {
      const limits = { ...gpu.caps.limits, maxComputeWorkgroupStorageSize: 48 * 1024 };
      const caps = { ...gpu.caps, limits };
      const groupsAt = (longest?: number) => {
        const variant = flashForwardVariant(caps, 'subgroup-matrix', 128, 128, longest);
        if (variant.kind !== 'matrix') throw new Error('expected the tensor-core forward');
        return [variant.config.rowGroups ?? 1, flashForwardRows(variant)];
      };
      expect(groupsAt()).toEqual([2, 64]);
      expect(groupsAt(33)).toEqual([2, 64]);
      // A GQA group of 16 heads decoding one token each: one group of 32 rows holds them.
      expect(groupsAt(32)).toEqual([1, 32]);
      expect(groupsAt(16)).toEqual([1, 32]);
      expect(groupsAt(1)).toEqual([1, 32]);
    } finally {
      gpu.destroy();
    }
  });

  it("the dQ kernel drops its row groups where one group's rows cover every sequence", async () => {
    const gpu = await nullMatrixGpu();
    try {
      const limits = { ...gpu.caps.limits, maxComputeWorkgroupStorageSize: 48 * 1024 };
      const caps = { ...gpu.caps, limits };
      const backward = matrixBackwardConfig(caps, 128, 128)!;
      const dqRows = (longest?: number) => matrixBackwardKernels(caps, backward, longest).dq.rows;
      // Two groups of 32 query rows at d = 128: 64 rows per workgroup for sequences longer than 32.
      expect(dqRows()).toBe(64);
      expect(dqRows(33)).toBe(64);
      expect(dqRows(32)).toBe(32);
      expect(dqRows(1)).toBe(32);
      // The dK/dV kernel has no row groups: its rows do not depend on the queries.
      const dkDvRows = matrixBackwardKernels(caps, backward, 1).dkDv.rows;
      expect(matrixBackwardKernels(caps, backward).dkDv.rows).toBe(dkDvRows);
    } finally {
      gpu.destroy();
    }
  });

  it('the forward takes the shape with the most rows per SM, row groups only where they hold more subgroups', async () => {
    const gpu = await nullMatrixGpu();
    try {
      const limits = { ...gpu.caps.limits, maxComputeWorkgroupStorageSize: 48 * 1024 };
      const caps = { ...gpu.caps, limits };
      const perSm = (c: MatrixForwardConfig) =>
        workgroupsPerSm(matrixForwardSharedBytes(c)) * matrixForwardSubgroups(c);
      const rowsPerSm = (c: MatrixForwardConfig) =>
        workgroupsPerSm(matrixForwardSharedBytes(c)) * matrixForwardRows(c);
      const shapeOf = (c: MatrixForwardConfig) => [c.subgroups, c.tile, c.rowFragments, c.rowGroups ?? 1];
      // What each head dim runs on the H200 (flash.ts, FORWARD_SHAPES, gives the timings).
      const picks: [number, number, number[]][] = [
        [64, 64, [2, 32, 1, 3]],
        [96, 96, [2, 32, 2, 2]],
        [128, 128, [2, 32, 2, 2]],
        [192, 128, [2, 32, 1, 3]],
        [256, 256, [2, 32, 1, 4]],
        [288, 256, [2, 32, 1, 4]],
      ];
      for (const [d, dv, shape] of picks) {
        const c = matrixForwardConfig(caps, d, dv)!;
        expect(shapeOf(c), `d = ${d}`).toEqual(shape);
        // No other shape that holds Q and shares its tiles with two fragments of rows has more rows per SM.
        for (const [subgroups, tile, rowFragments, rowGroups = 1] of FORWARD_SHAPES) {
          const other = { ...c, subgroups, tile, rowFragments, rowGroups };
          if (matrixForwardUnsupported(other) || matrixForwardQueryInWorkgroup(other)) continue;
          if (matrixForwardRows(other) < 32) continue;
          expect(
            rowsPerSm(other),
            `d = ${d} [${subgroups}, ${tile}, ${rowFragments}, ${rowGroups}]`,
          ).toBeLessThanOrEqual(rowsPerSm(c));
        }
      }
      // d = 96: 21.3 KiB grouped, two workgroups of four subgroups, against three of two.
      const d96 = matrixForwardConfig(caps, 96, 96)!;
      const { rowGroups: _, ...ungrouped } = d96;
      expect([perSm(d96), perSm(ungrouped)]).toEqual([8, 6]);
      // d = 64: two groups of two fragments hold eight subgroups, as one group does: not taken,
      // though they count as many rows per SM as [2, 32, 2].
      const d64 = matrixForwardConfig(caps, 64, 64)!;
      const twoGroups = { ...d64, rowFragments: 2, rowGroups: 2 };
      expect(perSm(twoGroups)).toBe(perSm({ ...twoGroups, rowGroups: 1 }));
      // The MLA prefill's dims: two fragments would read Q from workgroup memory; four groups of one hold it.
      const mla = matrixForwardConfig(caps, 288, 256)!;
      expect(matrixForwardQueryInWorkgroup({ ...mla, rowFragments: 2 })).toBe(true);
      expect(matrixForwardSharedBytes(mla)).toBeLessThanOrEqual(limits.maxComputeWorkgroupStorageSize);
    } finally {
      gpu.destroy();
    }
  });

  /**
   * A kernel config with scalar and with vector arrays: each supported, compiling as a module and
   * declaring the bytes its function gives; their WGSL and bytes, for the caller's own checks.
   */
  async function scalarAndVectorKernels<C extends object>(
    c: C,
    unsupported: (v: C) => string | undefined,
    wgsl: (v: C) => string,
    sharedBytes: (v: C) => number,
  ): Promise<{ code: string; bytes: number }[]> {
    const kernels: { code: string; bytes: number }[] = [];
    for (const vectors of [false, true]) {
      const v = { ...c, vectorStaging: vectors, vectorScores: vectors };
      expect(unsupported(v), `vectors ${vectors}`).toBeUndefined();
      const code = wgsl(v);
      expect(await moduleErrors(gpu, code), `vectors ${vectors}`).toEqual([]);
      expect(declaredWorkgroupBytes(code)).toBe(sharedBytes(v));
      kernels.push({ code, bytes: sharedBytes(v) });
    }
    return kernels;
  }

  it('the forward with two row groups sharing each staged tile: 64 rows, four subgroups, under 24 KiB', async () => {
    const c = {
      d: 128,
      dv: 128,
      ...H200_MATRIX,
      subgroups: 2,
      tile: 32,
      rowFragments: 2,
      rowGroups: 2,
      wideLoads: true,
      prefetchValues: true,
    };
    expect(matrixForwardRows(c)).toBe(64);
    const kernels = await scalarAndVectorKernels(
      c,
      matrixForwardUnsupported,
      flashForwardMatrixWgsl,
      matrixForwardSharedBytes,
    );
    for (const { code, bytes } of kernels) {
      // The staging array holds one group's Q rows or one tile, as with one group.
      expect(bytes).toBeLessThanOrEqual(24576);
      expect(code).toContain('@workgroup_size(128)');
      // Each group's Q staged in its turn, its subgroups loading their fragments from it.
      expect(code.match(/^ {2}if \(rowBase == (0|32)u\) \{$/gm)?.length).toBe(2);
      expect(code.match(/^ {2}var qf\d+_\d+ = subgroup_matrix_left/gm)?.length).toBe(16);
      // Scores, probabilities and the accumulators' round trips at the group's rows.
      expect(code).toMatch(/subgroupMatrixStore<row_major>\(&Ss, rowBase \* \d+u \+ /);
      expect(code).toMatch(/subgroupMatrixLoad<[^>]+>, row_major>\(&Ps, rowBase \* \d+u \+ /);
    }
    // Q read from workgroup memory (MLA's prefill dims) has no row groups.
    expect(matrixForwardUnsupported({ ...c, d: 288, dv: 256, rowFragments: 2 })).toMatch(/held in registers/);
    expect(matrixForwardUnsupported({ ...c, rowGroups: 0 })).toMatch(/positive integer/);
  });

  it("the forward with three row groups at MLA's prefill dims (288/256): Q held, 48 rows per staged tile", async () => {
    // For scripts/diagnostics mla-prefill-shapes: one workgroup of six subgroups per H200 SM.
    const c = {
      d: 288,
      dv: 256,
      ...H200_MATRIX,
      subgroups: 2,
      tile: 32,
      rowFragments: 1,
      rowGroups: 3,
      wideLoads: true,
    };
    expect(matrixForwardQueryInWorkgroup(c)).toBe(false);
    expect(matrixForwardRows(c)).toBe(48);
    const kernels = await scalarAndVectorKernels(
      c,
      matrixForwardUnsupported,
      flashForwardMatrixWgsl,
      matrixForwardSharedBytes,
    );
    for (const { code, bytes } of kernels) {
      expect(bytes).toBe(30288);
      expect(code).toContain('@workgroup_size(192)');
    }
  });

  it('the role-split dK/dV kernel with its parts splitting d-steps: 16-key tiles over two parts, under 24 KiB', async () => {
    const c = {
      ...H200_ROLES_128,
      tile: 16,
      columnSplits: 2,
      splitSteps: true,
      wideLoads: true,
      prefetchTiles: true,
    };
    // Split by columns, a 16-key tile's parts would be narrower than a fragment.
    expect(matrixDkDvRolesUnsupported({ ...c, splitSteps: false })).toMatch(/does not split/);
    const kernels = await scalarAndVectorKernels(
      c,
      matrixDkDvRolesUnsupported,
      flashDkDvRolesMatrixWgsl,
      matrixDkDvRolesSharedBytes,
    );
    for (const { code, bytes } of kernels) {
      // Under the H200's second step (24 KiB): 22,144 bytes.
      expect(bytes).toBe(22144);
      // K and V rows staged in turn, each role loading its part's four d-steps.
      expect(code.match(/^ {2}var ownf\d+ = subgroup_matrix_left/gm)?.length).toBe(4);
      expect(code.match(/^ {2}if \(role == [01]u\) \{$/gm)?.length).toBe(2);
      // One score fragment over four steps; the parts' partial scores added where P and dS form.
      expect(code.match(/sf0 = subgroupMatrixMultiplyAccumulate/g)?.length).toBe(4);
      expect(code).toMatch(/\(SD\[\d+u \+ at\] \+ SD\[\d+u \+ at\]\)/);
      expect(code.match(/var acc\d+ = subgroup_matrix_result/g)?.length).toBe(4);
    }
  });

  it('the role-split dK/dV kernel with two row groups sharing each query tile: 64 key rows, eight subgroups, under 24 KiB', async () => {
    const c = {
      ...H200_ROLES_128,
      tile: 16,
      columnSplits: 1,
      rowGroups: 2,
      wideLoads: true,
      prefetchTiles: true,
    };
    expect(roleSplitRows(c)).toBe(64);
    expect(roleSplitSubgroups(c)).toBe(8);
    const kernels = await scalarAndVectorKernels(
      c,
      matrixDkDvRolesUnsupported,
      flashDkDvRolesMatrixWgsl,
      matrixDkDvRolesSharedBytes,
    );
    for (const { code, bytes } of kernels) {
      // A group's rows or a tile of q and dO staged (8,704 bytes), the statistics (128), and per
      // group S and dP (5,120) and P and dS at 8 bytes of padding (2,560): 24,192 bytes, under the
      // H200's second step, two workgroups of eight subgroups per SM.
      expect(bytes).toBe(24192);
      expect(code).toContain('@workgroup_size(256)');
      expect(code).toContain('const ROWS = 64u;');
      // Each group's K, then its V, staged in its turn, its role's subgroups loading all eight steps.
      for (const group of [0, 1]) {
        for (const role of [0, 1]) expect(code).toContain(`if (group == ${group}u && role == ${role}u) {`);
      }
      expect(code.match(/^ {2}var ownf\d+ = subgroup_matrix_left/gm)?.length).toBe(8);
      expect(code).toContain('let j = groupFirst + i32(half * 16u + row);');
      expect(code).toContain('let r = groupFirst + i32(half * 16u');
      expect(code).toMatch(/subgroupMatrixStore<row_major>\(&SD, group \* \d+u \+ role/);
      expect(code).toMatch(/subgroupMatrixLoad<[^>]+>, row_major>\(&PD, group \* \d+u \+ role/);
      expect(code.match(/var acc\d+ = subgroup_matrix_result/g)?.length).toBe(8);
    }
    // One group keeps the backward kernels' 16 bytes of padding and stages K and V side by side.
    expect(matrixDkDvRolesSharedBytes({ ...c, rowGroups: 1 })).toBe(25728);
    expect(matrixDkDvRolesUnsupported({ ...c, rowGroups: 0 })).toMatch(/positive integer/);
  });

  it('the role-split dQ kernel stages q and dO one after the other, within 16 KiB at d = 128', () => {
    // On the H200 a kernel's declared workgroup memory alone sets its speed in steps, one of them
    // at 16 KiB: staged side by side, q and dO took the kernel to 23.5 KiB.
    const c = { ...H200_ROLES_128, tile: 16, columnSplits: 1 };
    for (const vectors of [false, true]) {
      const v = { ...c, wideLoads: true, vectorStaging: vectors, vectorScores: vectors, prefetchTiles: true };
      const code = flashDqRolesMatrixWgsl(v);
      expect(matrixDqRolesSharedBytes(v)).toBe(declaredWorkgroupBytes(code));
      expect(declaredWorkgroupBytes(code)).toBeLessThanOrEqual(16 * 1024);
      // Each role's fragments loaded in its turn, from the same rows of X.
      expect(code.match(/if \(role == 0u\) \{/g)?.length).toBe(1);
      expect(code.match(/if \(role == 1u\) \{/g)?.length).toBe(1);
      expect(code.match(/^\s+hf\d+ = subgroupMatrixLoad/gm)?.length).toBe(2 * (128 / 16));
    }
  });

  it('the role-split dQ kernel with two row groups sharing each key tile: 64 rows, eight subgroups, under 24 KiB', async () => {
    const c = {
      ...H200_ROLES_128,
      tile: 16,
      columnSplits: 1,
      rowGroups: 2,
      wideLoads: true,
      prefetchTiles: true,
    };
    expect(roleSplitRows(c)).toBe(64);
    expect(roleSplitSubgroups(c)).toBe(8);
    const kernels = await scalarAndVectorKernels(
      c,
      matrixDqRolesUnsupported,
      flashDqRolesMatrixWgsl,
      matrixDqRolesSharedBytes,
    );
    for (const { code, bytes } of kernels) {
      // The staging array as with one group (a group's rows or a tile), scores per group: 22,016
      // bytes, two workgroups of eight subgroups per SM where one group holds three of four.
      expect(bytes).toBe(22016);
      expect(code).toContain('@workgroup_size(256)');
      expect(code).toContain('const ROWS = 64u;');
      // Each group's q, then its dO, staged in its turn, its role's subgroups loading from it.
      for (const group of [0, 1]) {
        for (const role of [0, 1]) expect(code).toContain(`if (group == ${group}u && role == ${role}u) {`);
      }
      expect(code).toContain('let r = groupFirst + i32(half * 16u');
      expect(code).toMatch(/subgroupMatrixStore<row_major>\(&SD, group \* \d+u \+ role/);
      expect(code).toMatch(/subgroupMatrixLoad<[^>]+>, row_major>\(&Ds, group \* \d+u \+ half/);
    }
    expect(matrixDqRolesUnsupported({ ...c, rowGroups: 0 })).toMatch(/positive integer/);
  });

  for (const kernel of roleSplitKernels) {
    it(`the role-split ${kernel.pass} kernel at the H200 shapes as a shader module, and where it refuses`, async () => {
      for (const [d, tile, columnSplits] of [
        [64, 16, 1],
        [128, 16, 1],
        [128, 32, 1],
        [128, 32, 2],
      ] as const) {
        const c = {
          d,
          dv: d,
          ...H200_MATRIX,
          subgroups: 2,
          tile,
          columnSplits,
        };
        const what = `d=${d} tile=${tile} columnSplits=${columnSplits}`;
        expect(kernel.unsupported(c), what).toBeUndefined();
        expect(kernel.sharedBytes(c), what).toBeLessThanOrEqual(48 * 1024);
        const code = kernel.wgsl(c);
        expect(code.match(kernel.held)?.length, what).toBe(d / 16);
        expect(code.match(/var acc\d+ = subgroup_matrix_result/g)?.length, what).toBe(
          kernel.accumulators(d, columnSplits),
        );
        expect(code).toContain(`@workgroup_size(${128 * columnSplits})`);
        // With 16-byte loads q, k, v and dO are bound as vec4<u32>, eight f16 per load.
        const wide = kernel.wgsl({ ...c, wideLoads: true });
        expect(wide.match(/: array<vec4<u32>>;/g)?.length, what).toBe(4);
        // Staged as vectors: each 16-byte load stored as two vec4<f16>, 8-byte ones as one.
        const vectors = { vectorStaging: true, vectorScores: true };
        expect(kernel.unsupported({ ...c, ...vectors }), what).toBeUndefined();
        const wideVectors = kernel.wgsl({ ...c, wideLoads: true, ...vectors });
        expect(wideVectors, what).toContain(`var<workgroup> ${kernel.staging}: array<vec4<f16>,`);
        expect(wideVectors, what).toContain(`${kernel.staging}[at + 1u] = bitcast<vec4<f16>>(`);
        // Scores and dP read, P or dS written, four columns per access.
        expect(wideVectors, what).toContain(`var<workgroup> ${kernel.scores}: array<vec4<f32>,`);
        expect(wideVectors, what).toMatch(kernel.vectorStore);
        expect(code, what).not.toMatch(kernel.vectorStore);
        const narrowVectors = kernel.wgsl({ ...c, ...vectors });
        expect(narrowVectors, what).toMatch(new RegExp(`${kernel.staging}\\[at\\] = e[a-z]x0;`));
        const stagedOnly = kernel.wgsl({ ...c, wideLoads: true, vectorStaging: true });
        expect(stagedOnly, what).toContain(`var<workgroup> ${kernel.scores}: array<f32,`);
        // The same workgroup memory whichever arrays hold vectors.
        for (const variant of [wideVectors, narrowVectors, stagedOnly]) {
          expect(declaredWorkgroupBytes(variant), what).toBe(declaredWorkgroupBytes(code));
        }
        expect(declaredWorkgroupBytes(code), what).toBe(kernel.sharedBytes(c));
        // Each tile loaded during the one before: its values declared once, out of the loop, the
        // first tile's loads before it, every later tile's inside it after the stores.
        const prefetched = kernel.wgsl({ ...c, wideLoads: true, ...vectors, prefetchTiles: true });
        expect(wideVectors, what).not.toMatch(kernel.prefetchOpening);
        expect(prefetched, what).toMatch(kernel.prefetchOpening);
        const loop = prefetched.indexOf('for (var ', prefetched.search(kernel.prefetchOpening));
        const declared = prefetched.search(/var e[a-z]x0: vec4<u32>;/);
        expect(declared, what).toBeGreaterThan(-1);
        expect(declared, what).toBeLessThan(loop);
        expect(prefetched.slice(loop), what).toContain('// The next');
        // Both sets of rows (q and dO, or K and V) loaded once in the loop: the next tile.
        expect(prefetched.slice(loop).match(/ e[a-z]x0 = [a-z]+\[/g)?.length, what).toBe(2);
        expect(declaredWorkgroupBytes(prefetched), what).toBe(declaredWorkgroupBytes(wideVectors));
        for (const variant of [code, wide, wideVectors, narrowVectors, stagedOnly, prefetched]) {
          expect(await moduleErrors(gpu, variant), what).toEqual([]);
        }
      }
      const base = {
        ...H200_MATRIX,
        tile: 16,
        columnSplits: 1,
      };
      expect(kernel.unsupported({ ...base, d: 192, dv: 128, subgroups: 2 })).toMatch(/differ/);
      expect(kernel.unsupported({ ...base, d: 128, dv: 128, subgroups: 1 })).toMatch(/built for 2/);
      // Two parts of a 16-row tile would be 8 columns wide, narrower than a fragment.
      expect(kernel.unsupported({ ...base, d: 128, dv: 128, subgroups: 2, columnSplits: 2 })).toMatch(
        /does not split into \d parts/,
      );
    });
  }

  it('the role-split kernels need less workgroup memory than the plain dK/dV kernel, and where dQ refuses', () => {
    const c = { ...H200_ROLES_128, tile: 16, columnSplits: 1 };
    // The own rows are staged through the tile's array, so the split kernels need less.
    expect(matrixDkDvRolesSharedBytes(c)).toBeLessThan(matrixDkDvSharedBytes(c));
    expect(matrixDqRolesUnsupported({ ...c, d: 48, dv: 48 })).toMatch(/2 parts/);
    expect(matrixDqRolesUnsupported({ ...c, d: 96, dv: 96, tile: 32, columnSplits: 2 })).toMatch(
      /4 parts of N/,
    );
    // 128-lane subgroups share a 16-row fragment's row over 8 lanes: an 8-key tile has too few per role.
    const wide = { d: 64, dv: 64, matrix: { M: 16, N: 8, K: 8 }, subgroupSize: 128 };
    expect(matrixDqRolesUnsupported({ ...c, ...wide, tile: 8 })).toMatch(/2 parts over 8 lanes/);
    expect(matrixDqRolesUnsupported({ ...c, ...wide, tile: 16 })).toBeUndefined();
    // There a lane has one key of a 16-key tile's half, too few for vector scores, and the plain
    // kernels' lane two; the dK/dV kernel's, two of a 32-query tile's quarter.
    expect(matrixDqRolesUnsupported({ ...c, ...wide, tile: 16, vectorScores: true })).toMatch(
      /need 4 keys per lane or more, not 1/,
    );
    expect(matrixBackwardUnsupported({ ...c, ...wide, tile: 16, vectorScores: true })).toMatch(
      /need 4 columns per lane or more, not 2/,
    );
    expect(
      matrixDkDvRolesUnsupported({ ...c, tile: 32, columnSplits: 2, vectorScores: true }),
    ).toBeUndefined();
    expect(
      matrixDkDvRolesUnsupported({ ...c, ...wide, tile: 32, columnSplits: 2, vectorScores: true }),
    ).toMatch(/need 4 queries per lane or more, not 2/);
  });

  it('the plain backward kernels at the H200 shape with vector arrays (d = dv, and d != dv where only they run)', async () => {
    // Over the null backend's 16 KiB of workgroup memory at d = 128: the modules must compile.
    const base = {
      ...H200_MATRIX,
      subgroups: 2,
      tile: 16,
      wideLoads: true,
    };
    for (const [d, dv] of [
      [64, 64],
      [128, 128],
      [192, 128],
    ] as const) {
      const what = `${d}/${dv}`;
      const c = { ...base, d, dv };
      const vectors = { ...c, vectorStaging: true, vectorScores: true };
      expect(matrixBackwardUnsupported(vectors), what).toBeUndefined();
      for (const [kernel, wgsl, sharedBytes, staging, stores] of [
        ['dq', flashDqMatrixWgsl, matrixDqSharedBytes, 'Xs', /Ps\[[^\]]+\] = vec4<f16>\(ds\);/],
        ['dkdv', flashDkDvMatrixWgsl, matrixDkDvSharedBytes, 'Kown', /Dt\[pat\] = vec4<f16>\(ds\);/],
      ] as const) {
        const code = wgsl(c);
        const vector = wgsl(vectors);
        expect(vector, `${kernel} ${what}`).toContain(`var<workgroup> ${staging}: array<vec4<f16>,`);
        expect(vector, `${kernel} ${what}`).toContain('var<workgroup> Ss: array<vec4<f32>,');
        expect(vector, `${kernel} ${what}`).toMatch(stores);
        expect(code, `${kernel} ${what}`).not.toMatch(stores);
        expect(declaredWorkgroupBytes(code), `${kernel} ${what}`).toBe(sharedBytes(c));
        expect(declaredWorkgroupBytes(vector), `${kernel} ${what}`).toBe(sharedBytes(c));
        for (const variant of [code, vector, wgsl({ ...c, vectorStaging: true })]) {
          expect(await moduleErrors(gpu, variant), `${kernel} ${what}`).toEqual([]);
        }
      }
    }
  });

  it('the backward kernels test the mask only on tiles that are not open, scalar and vector steps alike', () => {
    // Written as `open || test` the test ran for every score (6.1 of the dK/dV kernel's 69.5 ms at
    // 16,384 tokens on the H200): the elementwise step comes twice, the open copy without it.
    const c = { ...H200_MATRIX, d: 128, dv: 128, subgroups: 2, tile: 16, wideLoads: true };
    const dqRoles = { ...c, columnSplits: 1, rowGroups: 2, prefetchTiles: true };
    const dkDvRoles = { ...c, columnSplits: 2, splitSteps: true, prefetchTiles: true };
    const kernels: [string, (vectors: boolean) => string][] = [
      ['dq', (v) => flashDqMatrixWgsl({ ...c, vectorStaging: v, vectorScores: v })],
      ['dkdv', (v) => flashDkDvMatrixWgsl({ ...c, vectorStaging: v, vectorScores: v })],
      ['dq roles', (v) => flashDqRolesMatrixWgsl({ ...dqRoles, vectorScores: v })],
      ['dkdv roles', (v) => flashDkDvRolesMatrixWgsl({ ...dkDvRoles, vectorScores: v })],
    ];
    for (const [name, kernel] of kernels) {
      for (const vectors of [false, true]) {
        const what = `${name}${vectors ? ' vector' : ''}`;
        const [before, rest] = kernel(vectors).split(/\n\s*if \(open\) \{\n/);
        expect(rest, what).toBeDefined();
        const [openStep, maskedStep] = rest!.split(/\n\s*\} else \{\n/);
        expect(before, what).not.toMatch(/visible\(sp, \w+, \w+\)/);
        expect(openStep, what).toMatch(/exp\(/);
        expect(openStep, what).not.toMatch(/visible\(sp, \w+, \w+\)/);
        expect(maskedStep, what).toMatch(/ < range\.y && visible\(sp, \w+, \w+\)/);
      }
    }
  });

  it('the forward at the H200 shape, Q held in registers (d = 128) or read from workgroup memory (MLA 288/256)', async () => {
    // Over the null backend's 16 KiB of workgroup memory: the module must compile; the pipeline is
    // created on the GPU by `webattn verify flash` and MLA's prefill checks in `webattn verify mla`.
    const base = {
      ...H200_MATRIX,
      subgroups: 2,
      tile: 32,
      rowFragments: 2,
    };
    for (const [d, dv, inWorkgroup] of [
      [128, 128, false],
      [192, 128, false],
      [256, 256, true],
      [288, 256, true],
    ] as const) {
      const c = { ...base, d, dv };
      expect(matrixForwardQueryInWorkgroup(c), `${d}/${dv}`).toBe(inWorkgroup);
      expect(matrixForwardSharedBytes(c), `${d}/${dv}`).toBeLessThanOrEqual(48 * 1024);
      const code = flashForwardMatrixWgsl(c);
      expect(code.includes('var<workgroup> Qs'), `${d}/${dv}`).toBe(inWorkgroup);
      const wide = flashForwardMatrixWgsl({ ...c, wideLoads: true });
      expect(wide.match(/: array<vec4<u32>>;/g)?.length, `${d}/${dv}`).toBe(3);
      // Eight 16-byte value loads per invocation at dv = 128 (prefetched), sixteen at 256 (not).
      expect(matrixForwardValueLoads({ ...c, wideLoads: true }), `${d}/${dv}`).toBe(dv === 128 ? 8 : 16);
      // The values' loads issued before the softmax: declared once, out of the key loop.
      const prefetched = flashForwardMatrixWgsl({ ...c, wideLoads: true, prefetchValues: true });
      expect(prefetched.indexOf('var ex0: vec4<u32>;'), `${d}/${dv}`).toBeGreaterThan(-1);
      expect(prefetched.indexOf('var ex0: vec4<u32>;')).toBeLessThan(prefetched.indexOf('for (var k0'));
      // Staged as vectors: each 16-byte load stored as two vec4<f16>, 8-byte ones as one.
      const vectors = flashForwardMatrixWgsl({
        ...c,
        wideLoads: true,
        prefetchValues: true,
        vectorStaging: true,
      });
      expect(vectors, `${d}/${dv}`).toContain('var<workgroup> Xs: array<vec4<f16>,');
      expect(vectors, `${d}/${dv}`).toContain('= bitcast<vec4<f16>>(ex0.zw);');
      const narrowVectors = flashForwardMatrixWgsl({ ...c, vectorStaging: true });
      expect(narrowVectors, `${d}/${dv}`).toMatch(/Xs\[at\] = ex0;/);
      // Scores and probabilities as vectors too: a lane reads four scores and writes four
      // probabilities at once.
      const vectorScores = flashForwardMatrixWgsl({
        ...c,
        wideLoads: true,
        vectorStaging: true,
        vectorScores: true,
      });
      expect(vectorScores, `${d}/${dv}`).toContain('var<workgroup> Ss: array<vec4<f32>,');
      expect(vectorScores, `${d}/${dv}`).toContain('vec4<f16>(vec4<f32>(pr0, pr1, pr2, pr3))');
      for (const variant of [code, wide, prefetched, vectors, narrowVectors, vectorScores]) {
        expect(await moduleErrors(gpu, variant), `${d}/${dv}`).toEqual([]);
      }
    }
  });

  it('the staged delta pass within 16 KiB for every tile height, one element per load off the 16-byte vectors', async () => {
    for (const rows of [16, 32, 64, 128]) {
      for (const [dtype, dv] of [
        ['f16', 128],
        ['f32', 128],
        ['f32', 6],
      ] as const) {
        const code = flashDeltaWgsl({ dtype, dv, rows });
        expect(declaredWorkgroupBytes(code), `${rows} rows ${dtype} dv ${dv}`).toBeLessThanOrEqual(16384);
        expect(code).toContain(`@workgroup_size(${ROW_DOT_THREADS})`);
        expect(code).toContain(`array<${dv % 4 === 0 ? 'vec4<u32>' : dtype}>`);
        await expect(gpu.pipelines.get(code, `delta ${rows} ${dtype} ${dv}`)).resolves.toBeDefined();
      }
    }
    // Taller tiles would not fit their chunks of 8 f16 columns.
    expect(() => flashDeltaWgsl({ dtype: 'f16', dv: 128, rows: 256 })).toThrow(/exceed 16384 bytes/);
  });

  for (const tier of ['portable', 'subgroups', 'f16'] as const) {
    it(`${tier}: forward and backward kernels for d/dv ${dims.map(([a, b]) => `${a}/${b}`).join(', ')}`, async () => {
      for (const [d, dv] of dims) {
        const config = rowKernelConfig(gpu.caps, tier, d, dv);
        expect(config.tile).toBeGreaterThanOrEqual(1);
        for (const [name, code] of [
          ['forward', flashForwardWgsl(config)],
          ['delta', flashDeltaWgsl(config)],
          ['dq', flashDqWgsl(config)],
          ['dkdv', flashDkDvWgsl(config)],
        ] as const) {
          await expect(gpu.pipelines.get(code, `${name} ${tier} ${d}/${dv}`)).resolves.toBeDefined();
        }
      }
    });
  }
});

// The null backend compiles and dispatches without computing. Presented as a tensor-core adapter,
// it takes every host path of the tier (uniforms, bindings, dispatch sizes, the dK/dV kernel
// choice) that otherwise only `webattn verify flash` reaches on a GPU.
describe('flash attention: the tensor-core host paths run on the null backend', () => {
  let gpu: Gpu;
  beforeAll(async () => {
    gpu = await nullMatrixGpu();
  });
  afterAll(() => gpu.destroy());

  for (const [d, dv] of [
    [64, 64],
    [96, 64],
  ] as const) {
    it(`d=${d} dv=${dv}: forward (windowed, GQA, nk > n, varlen) and backward`, async () => {
      // Few value loads per invocation at these dims: the forward prefetches them, and stages vectors.
      expect(matrixForwardConfig(gpu.caps, d, dv)).toMatchObject({
        prefetchValues: true,
        vectorStaging: true,
        vectorScores: true,
      });
      // The backward's arrays hold vectors too (the role-split kernels at d = dv, the plain ones
      // at 96/64).
      expect(matrixBackwardConfig(gpu.caps, d, dv)).toMatchObject({
        vectorStaging: true,
        vectorScores: true,
      });
      const [n, nk, hq, hkv] = [37, 45, 4, 2];
      // The values never matter here: nothing runs.
      const f16 = (shape: number[], seed: number) => randomNormal(gpu, shape, seed, { dtype: 'f16' });
      using q = await f16([1, n, hq, d], 1);
      using k = await f16([1, nk, hkv, d], 2);
      using v = await f16([1, nk, hkv, dv], 3);
      using dO = await f16([1, n, hq, dv], 4);
      const before = gpu.memory().liveBuffers;
      for (const options of [
        { causal: true, window: [8, 0] as [number, number] },
        { causal: false, cuSeqlensQ: [0, 20, 37], cuSeqlensK: [0, 25, 45] },
      ]) {
        const packed = 'cuSeqlensQ' in options;
        using pq = packed ? await f16([n, hq, d], 5) : undefined;
        using pk = packed ? await f16([nk, hkv, d], 6) : undefined;
        using pv = packed ? await f16([nk, hkv, dv], 7) : undefined;
        using pdO = packed ? await f16([n, hq, dv], 8) : undefined;
        const result = await flashAttention(gpu, pq ?? q, pk ?? k, pv ?? v, {
          ...options,
          tier: 'subgroup-matrix',
        });
        const grads = await flashAttentionBackward(result.ctx, pdO ?? dO);
        expect(grads.dk.shape).toEqual((pk ?? k).shape);
        for (const t of [result.o, result.lse, grads.dq, grads.dk, grads.dv]) t.dispose();
      }
      expect(gpu.memory().liveBuffers).toBe(before);
    });
  }
});

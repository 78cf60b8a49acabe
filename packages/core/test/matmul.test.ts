import { compare, matmul as matmulReference, randn, TOLERANCES } from '@webattn/reference';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type Gpu,
  launchMatmul,
  matmul,
  matmulProblem,
  matmulVariantName,
  matmulVariants,
  matmulWgsl,
  Tensor,
  type Tier,
  WebAttnError,
} from '../src/index.js';
import { nullGpu, testGpu } from '../src/testing.js';

interface Case {
  batch: number;
  M: number;
  K: number;
  N: number;
  batchedB: boolean;
}

// Edges: 1x1x1, sizes below, at and just past the 64 tile and the 16 K-step, few rows (split-K),
// batches with shared and per-batch B.
const CASES: Case[] = [
  { batch: 1, M: 1, K: 1, N: 1, batchedB: false },
  { batch: 1, M: 3, K: 5, N: 7, batchedB: false },
  { batch: 1, M: 64, K: 16, N: 64, batchedB: false },
  { batch: 1, M: 65, K: 33, N: 130, batchedB: false },
  { batch: 1, M: 1, K: 300, N: 70, batchedB: false },
  { batch: 3, M: 8, K: 40, N: 9, batchedB: false },
  { batch: 2, M: 17, K: 19, N: 23, batchedB: true },
];

function expectedProduct(c: Case, a: Float32Array, b: Float32Array, transposeB: boolean): Float32Array {
  const out = new Float32Array(c.batch * c.M * c.N);
  for (let i = 0; i < c.batch; i++) {
    const ai = a.subarray(i * c.M * c.K, (i + 1) * c.M * c.K);
    const bi = c.batchedB ? b.subarray(i * c.K * c.N, (i + 1) * c.K * c.N) : b;
    out.set(matmulReference(ai, bi, c.M, c.K, c.N, { transposeB }), i * c.M * c.N);
  }
  return out;
}

describe('matmul on SwiftShader against the reference', () => {
  let gpu: Gpu;
  beforeAll(async () => {
    gpu = await testGpu();
  });
  afterAll(() => gpu.destroy());

  const tiers: Tier[] = ['portable', 'subgroups'];
  for (const tier of tiers) {
    for (const transposeB of [false, true]) {
      for (const c of CASES) {
        it(`${tier} ${transposeB ? 'B^T ' : ''}batch=${c.batch} ${c.M}x${c.K}x${c.N}${c.batchedB ? ' batched B' : ''}`, async () => {
          expect(gpu.caps.tiers).toContain(tier);
          const a = randn(c.batch * c.M * c.K, 1);
          const b = randn((c.batchedB ? c.batch : 1) * c.K * c.N, 2);
          const aShape = c.batch > 1 ? [c.batch, c.M, c.K] : [c.M, c.K];
          const bMatrix = transposeB ? [c.N, c.K] : [c.K, c.N];
          const bShape = c.batchedB ? [c.batch, ...bMatrix] : bMatrix;
          using ta = Tensor.from(gpu, a, aShape);
          using tb = Tensor.from(gpu, b, bShape);
          using out = await matmul(gpu, ta, tb, { tier, transposeB });
          expect(out.shape).toEqual(c.batch > 1 ? [c.batch, c.M, c.N] : [c.M, c.N]);
          const result = compare(expectedProduct(c, a, b, transposeB), await out.read(), TOLERANCES.f32);
          expect(result.ok, JSON.stringify(result)).toBe(true);
        });
      }
    }
  }

  it('launches both kernels of the subgroups tier, and the tiled f32 kernel, on the same problem', async () => {
    const c: Case = { batch: 1, M: 5, K: 37, N: 21, batchedB: false };
    const a = randn(c.M * c.K, 3);
    const b = randn(c.K * c.N, 4);
    const expected = expectedProduct(c, a, b, false);
    using ta = Tensor.from(gpu, a, [c.M, c.K]);
    using tb = Tensor.from(gpu, b, [c.K, c.N]);
    const runnable = matmulVariants(gpu.caps).filter((v) => v.tier === 'portable' || v.tier === 'subgroups');
    expect(runnable.map((v) => v.kind)).toEqual(expect.arrayContaining(['tiled', 'split-k']));
    for (const variant of runnable.filter((v) => !v.transposeB)) {
      using out = Tensor.empty(gpu, [c.M, c.N]);
      await launchMatmul(gpu, variant, ta, tb, out, matmulProblem(ta, tb, false));
      const result = compare(expected, await out.read(), TOLERANCES.f32);
      expect(result.ok, `${matmulVariantName(variant)}: ${JSON.stringify(result)}`).toBe(true);
    }
  });

  it('returns an empty tensor for an empty problem without dispatching', async () => {
    using ta = Tensor.from(gpu, new Float32Array(0), [0, 4]);
    using tb = Tensor.from(gpu, randn(12, 5), [4, 3]);
    using out = await matmul(gpu, ta, tb);
    expect(out.shape).toEqual([0, 3]);
    expect((await out.read()).length).toBe(0);
  });

  it('rejects bad input before dispatching, naming the argument', async () => {
    using a = Tensor.from(gpu, randn(6, 1), [2, 3]);
    using b = Tensor.from(gpu, randn(8, 1), [4, 2]);
    using b16 = Tensor.from(gpu, randn(6, 1), [3, 2], 'f16');
    using v = Tensor.from(gpu, randn(3, 1), [3]);
    await expect(matmul(gpu, a, b)).rejects.toThrow(
      /b: expected its first matrix dimension to be K = 3.*got 4/,
    );
    await expect(matmul(gpu, a, b16)).rejects.toThrow(/b: expected dtype f32 \(a's\), got f16/);
    await expect(matmul(gpu, v, b)).rejects.toThrow(/a: expected rank 2/);
    using square = Tensor.from(gpu, randn(9, 1), [3, 3]);
    if (!gpu.caps.tiers.includes('f16')) {
      await expect(matmul(gpu, a, square, { tier: 'f16' })).rejects.toMatchObject({
        code: 'missing-feature',
      });
    }
    await expect(matmul(gpu, a, square, { tier: 'portable' })).resolves.toBeDefined();
    await expect(matmul(gpu, a, square, { tier: 'fast' as Tier })).rejects.toThrow(/tier: expected one of/);
    const error = await matmul(gpu, a, b).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(WebAttnError);
    expect((error as WebAttnError).code).toBe('shape-mismatch');
  });

  it('releases every buffer it allocates', async () => {
    const before = gpu.memory().liveBuffers;
    for (let i = 0; i < 3; i++) {
      using a = Tensor.from(gpu, randn(32 * 32, i), [32, 32]);
      using out = await matmul(gpu, a, a);
      await out.read();
    }
    expect(gpu.memory().liveBuffers).toBe(before);
  });
});

describe('matmul: every variant compiles on the null backend', () => {
  let gpu: Gpu;
  beforeAll(async () => {
    gpu = await nullGpu();
  });
  afterAll(() => gpu.destroy());

  // NVIDIA and AMD list 16x16x16, Intel 8x16x16, Apple 8x8x8: compile the tensor-core kernel for each.
  for (const matrix of [
    { M: 16, N: 16, K: 16 },
    { M: 8, N: 16, K: 16 },
    { M: 8, N: 8, K: 8 },
  ]) {
    it(`all tiers, subgroup matrix ${matrix.M}x${matrix.N}x${matrix.K}`, async () => {
      const variants = matmulVariants(gpu.caps, matrix);
      expect(new Set(variants.map((v) => v.tier))).toEqual(
        new Set(['portable', 'subgroups', 'f16', 'subgroup-matrix']),
      );
      for (const variant of variants) {
        await expect(
          gpu.pipelines.get(matmulWgsl(variant), matmulVariantName(variant)),
        ).resolves.toBeDefined();
      }
    });
  }

  it('a broken kernel fails to compile with the compiler message', async () => {
    await expect(
      gpu.pipelines.get('@compute @workgroup_size(1) fn main() { let x: u32 = 1.5; }', 'broken'),
    ).rejects.toThrow(/kernel 'broken' failed to compile:[\s\S]*line 1/);
  });
});

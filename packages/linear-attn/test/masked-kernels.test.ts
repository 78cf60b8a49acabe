import { Gpu, Tensor, WebAttnError } from '@webattn/core';
import { moduleErrors, nullGpu, testGpu } from '@webattn/core/testing';
import { randn } from '@webattn/reference';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { maskedLinearAttention, maskedLinearAttentionBackward } from '../src/index.js';
import { allocate } from '../src/masked/allocate.js';
import { blockedDmWgsl, blockedProductWgsl } from '../src/masked/blocked.wgsl.js';
import { assertFinite } from '../src/masked/finite.js';
import { nonFiniteWgsl } from '../src/masked/finite.wgsl.js';
import { fusedForwardKernel, maskedDmMatrixConfig } from '../src/masked/fused.js';
import { fusedDmConfig, fusedDmWgsl } from '../src/masked/fused-dm.wgsl.js';
import { fusedMatrixConfig, fusedMatrixWgsl } from '../src/masked/fused-matrix.wgsl.js';
import {
  naiveDmWgsl,
  naiveDqWgsl,
  naiveKvGradWgsl,
  naiveOutputWgsl,
  naiveScoresWgsl,
} from '../src/masked/naive.wgsl.js';

const MATRIX = { M: 16, N: 16, K: 16 };

describe('every masked kernel compiles on the null backend', () => {
  let gpu: Gpu;
  beforeAll(async () => {
    gpu = await nullGpu();
  });
  afterAll(() => gpu.destroy());

  for (const dtype of ['f32', 'f16'] as const) {
    it(`naive, blocked, finite check: ${dtype}`, async () => {
      const kernels: [string, string][] = [];
      for (const [dk, dv] of [
        [16, 12],
        [128, 128],
        [64, 768],
      ] as const) {
        const c = { dtype, dk, dv };
        kernels.push(
          [`naive scores ${dk}/${dv}`, naiveScoresWgsl(c, false)],
          [`naive backward scores ${dk}/${dv}`, naiveScoresWgsl(c, true)],
          [`naive output ${dk}/${dv}`, naiveOutputWgsl(c)],
          [`naive dq ${dk}/${dv}`, naiveDqWgsl(c)],
          [`naive dk ${dk}/${dv}`, naiveKvGradWgsl(c, 'dk')],
          [`naive dv ${dk}/${dv}`, naiveKvGradWgsl(c, 'dv')],
          [`naive dm ${dk}/${dv}`, naiveDmWgsl(c)],
          [`blocked dm ${dk}/${dv}`, blockedDmWgsl(c)],
        );
        for (const kvOutput of [false, true]) {
          kernels.push([
            `blocked product ${dk}/${dv} kv ${kvOutput}`,
            blockedProductWgsl({ dtype, dx: dk, dz: dv, kvOutput }),
          ]);
        }
      }
      kernels.push([`finite ${dtype}`, nonFiniteWgsl(dtype)]);
      for (const [name, code] of kernels) {
        await expect(gpu.pipelines.get(code, name), name).resolves.toBeDefined();
      }
    });
  }

  it('the tensor-core products (forward, dq; dk, dv), for the head dims that fit the null backend, pinned and not', async () => {
    const limits = gpu.caps.limits.maxComputeWorkgroupStorageSize;
    const maxSize = gpu.caps.subgroupMaxSize;
    const compiled: string[] = [];
    for (const [dk, dv] of [
      [64, 64],
      [32, 64],
      [16, 128],
      [128, 128],
      [256, 128],
    ] as const) {
      for (const pin of [true, false]) {
        const c = fusedMatrixConfig(dk, dv, MATRIX, 32, pin, limits, maxSize);
        if (!c) continue;
        for (const kvOutput of [false, true]) {
          const code = fusedMatrixWgsl({ ...c, kvOutput });
          await expect(gpu.pipelines.get(code, `fused ${dk}/${dv} kv ${kvOutput}`)).resolves.toBeDefined();
        }
        compiled.push(`${dk}/${dv}`);
      }
      const dm = fusedDmConfig(dk, dv, MATRIX, 32, true, limits, maxSize);
      if (dm) {
        await expect(gpu.pipelines.get(fusedDmWgsl(dm), `fused dm ${dk}/${dv}`)).resolves.toBeDefined();
        compiled.push(`dm ${dk}/${dv}`);
      }
    }
    expect(compiled).toEqual(expect.arrayContaining(['64/64', '32/64', 'dm 64/64', 'dm 32/64']));
    expect(fusedMatrixConfig(64, 24, MATRIX, 32, true, 65536)).toBeUndefined();
    // The null backend allows 16 KiB of workgroup memory; an H100/H200 allows 48 KiB and gets the
    // widest shape, which `webattn verify linear-attn` compiles and checks there.
    expect(fusedMatrixConfig(128, 128, MATRIX, 32, true, 49152)).toMatchObject({
      subgroups: 4,
      tile: 64,
      rowFragments: 2,
    });
  });

  it('the shapes chosen with 48 KiB (an H100/H200) are valid WGSL, checked without the pipeline limits', async () => {
    for (const [dk, dv] of [
      [64, 64],
      [128, 128],
      [128, 64],
      [256, 128],
    ] as const) {
      const c = fusedMatrixConfig(dk, dv, MATRIX, 32, true, 49152);
      expect(c, `${dk}/${dv}`).toBeDefined();
      for (const kvOutput of [false, true]) {
        const errors = await moduleErrors(gpu, fusedMatrixWgsl({ ...c!, kvOutput }));
        expect(errors, `${dk}/${dv} kv ${kvOutput}`).toEqual([]);
      }
      const dm = fusedDmConfig(dk, dv, MATRIX, 32, true, 49152);
      expect(dm, `dm ${dk}/${dv}`).toBeDefined();
      expect(await moduleErrors(gpu, fusedDmWgsl(dm!)), `dm ${dk}/${dv}`).toEqual([]);
    }
  });

  it('f16 runs end to end on the null backend: bindings match, no device error', async () => {
    const [b, n, hq, hkv, d] = [1, 20, 2, 1, 16];
    using q = Tensor.from(gpu, randn(b * n * hq * d, 1), [b, n, hq, d], 'f16');
    using k = Tensor.from(gpu, randn(b * n * hkv * d, 2), [b, n, hkv, d], 'f16');
    using v = Tensor.from(gpu, randn(b * n * hkv * d, 3), [b, n, hkv, d], 'f16');
    using m = Tensor.from(gpu, randn(n * n, 4), [1, 1, n, n], 'f16');
    using dO = Tensor.from(gpu, randn(b * n * hq * d, 5), [b, n, hq, d], 'f16');
    for (const implementation of ['naive', 'blocked', 'fused'] as const) {
      const { o, ctx } = await maskedLinearAttention(gpu, q, k, v, m, {
        implementation,
        tier: 'f16',
        // The null backend executes nothing: its readback is not data.
        checkFinite: false,
      });
      const g = await maskedLinearAttentionBackward(ctx, dO);
      await gpu.sync();
      for (const t of [o, g.dq, g.dk, g.dv, g.dm]) t.dispose();
    }
  });

  it('the subgroup-matrix tier runs end to end on the null backend, forward and backward', async () => {
    // The null adapter lists no matrix shapes but compiles them: a Gpu on its device that claims 16x16x16.
    const caps = {
      ...gpu.caps,
      tiers: [...gpu.caps.tiers, 'subgroup-matrix' as const],
      subgroupMatrixConfigs: [{ componentType: 'f16', resultComponentType: 'f32', ...MATRIX }],
    };
    const matrixGpu = new Gpu(gpu.device, caps, false);
    try {
      expect(fusedForwardKernel(matrixGpu.caps, 'subgroup-matrix', 64, 64)).toBe('matrix');
      expect(maskedDmMatrixConfig(matrixGpu.caps, 64, 64)).toBeDefined();
      const [b, n, hq, hkv, d] = [1, 20, 4, 2, 64];
      const make = (shape: number[], seed: number) =>
        Tensor.from(
          matrixGpu,
          randn(
            shape.reduce((a, x) => a * x, 1),
            seed,
          ),
          shape,
          'f16',
        );
      const [q, k, v, m, dO] = [
        make([b, n, hq, d], 1),
        make([b, n, hkv, d], 2),
        make([b, n, hkv, d], 3),
        make([1, hq, n, n], 4),
        make([b, n, hq, d], 5),
      ];
      const { o, ctx } = await maskedLinearAttention(matrixGpu, q!, k!, v!, m!, {
        tier: 'subgroup-matrix',
        checkFinite: false,
      });
      const g = await maskedLinearAttentionBackward(ctx, dO!);
      await matrixGpu.sync();
      for (const t of [o, g.dq, g.dk, g.dv, g.dm, q, k, v, m, dO]) t!.dispose();
      expect(matrixGpu.memory().liveBuffers).toBe(0);
    } finally {
      matrixGpu.destroy();
    }
  });
});

describe('masked linear attention rejects bad input before dispatching', () => {
  let gpu: Gpu;
  beforeAll(async () => {
    gpu = await testGpu();
  });
  afterAll(() => gpu.destroy());

  const make = (g: Gpu, shape: number[], dtype: 'f32' | 'f16' = 'f32') =>
    Tensor.from(
      g,
      randn(
        shape.reduce((a, x) => a * x, 1),
        1,
      ),
      shape,
      dtype,
    );

  it('names the argument, the expected and the actual value', async () => {
    using q = make(gpu, [2, 8, 4, 16]);
    using k = make(gpu, [2, 8, 2, 16]);
    using v = make(gpu, [2, 8, 2, 12]);
    using m = make(gpu, [1, 4, 8, 8]);
    using k3 = make(gpu, [2, 8, 3, 16]);
    using kShort = make(gpu, [2, 7, 2, 16]);
    using vBad = make(gpu, [2, 8, 1, 12]);
    using mBadBatch = make(gpu, [3, 1, 8, 8]);
    using mBadHeads = make(gpu, [1, 2, 8, 8]);
    using mBadN = make(gpu, [1, 1, 8, 7]);
    using m3 = make(gpu, [8, 8]);
    using q3 = make(gpu, [8, 4, 16]);
    using mF16 = make(gpu, [1, 1, 8, 8], 'f16');
    using dBad = make(gpu, [2, 8, 4, 16]);
    const before = gpu.memory().liveBuffers;
    const rejects = async (promise: Promise<unknown>, code: string, message: RegExp) => {
      const error = await promise.then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(WebAttnError);
      expect((error as WebAttnError).code).toBe(code);
      expect((error as Error).message).toMatch(message);
    };
    const run = maskedLinearAttention;
    await rejects(run(gpu, q3, k, v, m), 'shape-mismatch', /q: expected rank 4 .*got \[8, 4, 16\]/);
    await rejects(
      run(gpu, q, k3, v, m),
      'heads-not-divisible',
      /q's heads \(4\) must be a multiple of k's heads \(3\)/,
    );
    await rejects(
      run(gpu, q, kShort, v, m),
      'shape-mismatch',
      /k: expected shape \[2, 8, 2, 16\], got \[2, 7, 2, 16\]/,
    );
    await rejects(
      run(gpu, q, k, vBad, m),
      'shape-mismatch',
      /v: expected shape \[2, 8, 2, 12\], got \[2, 8, 1, 12\]/,
    );
    await rejects(
      run(gpu, q, k, v, mBadBatch),
      'shape-mismatch',
      /mask: dim 0 must be 1 or batch \(2\), got 3/,
    );
    await rejects(run(gpu, q, k, v, mBadHeads), 'shape-mismatch', /mask: dim 1 must be 1 or hq \(4\), got 2/);
    await rejects(
      run(gpu, q, k, v, mBadN),
      'shape-mismatch',
      /mask: expected shape \[1, 1, 8, 8\], got \[1, 1, 8, 7\]/,
    );
    await rejects(run(gpu, q, k, v, m3), 'shape-mismatch', /mask: expected rank 4/);
    await rejects(run(gpu, q, k, v, mF16), 'dtype-mismatch', /mask: expected dtype f32 \(q's\), got f16/);
    await rejects(
      run(gpu, q, k, v, m, { scale: Number.NaN }),
      'invalid-argument',
      /scale: expected a finite number/,
    );
    await rejects(
      run(gpu, q, k, v, m, { implementation: 'flash' as never }),
      'invalid-argument',
      /implementation: expected one of naive, blocked, fused, got "flash"/,
    );
    await rejects(
      run(gpu, q, k, v, m, { tier: 'f16' }),
      gpu.caps.tiers.includes('f16') ? 'dtype-mismatch' : 'missing-feature',
      /tier 'f16'/,
    );
    const { o, ctx } = await run(gpu, q, k, v, m, { implementation: 'blocked' });
    await rejects(
      maskedLinearAttentionBackward(ctx, dBad),
      'shape-mismatch',
      /dO: expected shape \[2, 8, 4, 12\], got \[2, 8, 4, 16\]/,
    );
    o.dispose();
    expect(gpu.memory().liveBuffers).toBe(before);
  });

  it('allocates all or nothing: a buffer over the binding limit frees the ones before it', () => {
    const before = gpu.memory().liveBuffers;
    const huge = gpu.caps.limits.maxStorageBufferBindingSize / 4 + 1;
    let error: unknown;
    try {
      allocate(gpu, { small: [[4, 4], 'f32'], scores: [[1, 1, huge], 'f32'] });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(WebAttnError);
    expect((error as WebAttnError).code).toBe('limit-exceeded');
    expect(gpu.memory().liveBuffers).toBe(before);
  });

  it('an f16 result that overflowed is a WebAttnError, not a silent inf', async () => {
    // 1e5 is past f16's 65504: the host rounding stores inf, as an overflowing kernel's toF16 does.
    using bad = Tensor.from(gpu, Float32Array.from([1, 2, 1e5, 3, 4]), [5], 'f16');
    using good = Tensor.from(gpu, Float32Array.from([1, 2, 3, 65504, -65504]), [5], 'f16');
    using nan = Tensor.from(gpu, Float32Array.from([1, Number.NaN]), [2], 'f16');
    const before = gpu.memory().liveBuffers;
    let cleaned = 0;
    await expect(assertFinite(gpu, 'op', [['o', good]], () => cleaned++)).resolves.toBeUndefined();
    const error = await assertFinite(
      gpu,
      'op',
      [
        ['dq', good],
        ['dk', bad],
        ['dv', nan],
      ],
      () => cleaned++,
    ).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(WebAttnError);
    expect((error as WebAttnError).code).toBe('limit-exceeded');
    expect((error as Error).message).toMatch(
      /op: the f16 result \(dk, dv\) overflowed to inf\/NaN.*normalise q and k/,
    );
    expect(cleaned).toBe(1);
    expect(gpu.memory().liveBuffers).toBe(before);
  });
});

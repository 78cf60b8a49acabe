import { type Gpu, type MatmulVariant, matmulWgsl } from '@webattn/core';
import { testGpu } from '@webattn/core/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { coreChecks, runChecks } from '../src/index.js';

describe('verify against the reference', () => {
  let gpu: Gpu;
  beforeAll(async () => {
    gpu = await testGpu();
  });
  afterAll(() => gpu.destroy());

  it('fails a deliberately broken kernel and passes the real ones', async () => {
    // Halving the running sum on every step: compiles, runs, and is wrong.
    const broken = (v: MatmulVariant) =>
      v.kind === 'tiled'
        ? matmulWgsl(v).replace('fma(av[i], bv, acc[i][j])', 'fma(av[i], bv, 0.5 * acc[i][j])')
        : matmulWgsl(v);
    expect(broken({ kind: 'tiled', tier: 'portable', transposeB: false })).not.toBe(
      matmulWgsl({ kind: 'tiled', tier: 'portable', transposeB: false }),
    );
    const printed: string[] = [];
    const lines = await runChecks(gpu, coreChecks(gpu, broken), (l) => printed.push(l));
    const failed = lines.filter((l) => !l.ok);
    expect(failed.length).toBeGreaterThan(0);
    expect(failed.every((l) => l.check.name.includes('tiled'))).toBe(true);
    expect(printed.some((l) => /^FAIL {2}core +matmul tiled/.test(l))).toBe(true);
    const fine = await runChecks(gpu, coreChecks(gpu), () => undefined);
    expect(fine.every((l) => l.ok)).toBe(true);
  });

  it('reports a kernel that throws as a failure, not a crash', async () => {
    const lines = await runChecks(
      gpu,
      [{ suite: 'core', name: 'throws', tier: 'portable', run: () => Promise.reject(new Error('boom')) }],
      () => undefined,
    );
    expect(lines).toEqual([expect.objectContaining({ ok: false, error: 'boom' })]);
  });
});

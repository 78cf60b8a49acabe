import { type Gpu, Tensor } from '@webattn/core';
import { testGpu } from '@webattn/core/testing';
import { compare, mlaAbsorbedAttention, randn, toleranceFor } from '@webattn/reference';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mlaAttention } from '../src/index.js';

interface Case {
  lengths: number[];
  nq: number;
  nk: number;
  heads: number;
  r: number;
  dr: number;
  dv: number;
  splits?: number;
  nan?: boolean;
  kernel?: 'latent' | 'flash';
}

function size(shape: number[]) {
  return shape.reduce((a, b) => a * b, 1);
}

async function runCase(gpu: Gpu, c: Case, seed: number) {
  const b = c.lengths.length;
  const shapes = {
    qLatent: [b, c.nq, c.heads, c.r],
    qPe: [b, c.nq, c.heads, c.dr],
    cKv: [b, c.nk, c.r],
    kPe: [b, c.nk, c.dr],
    wUv: [c.heads, c.r, c.dv],
  };
  const host = Object.fromEntries(
    Object.entries(shapes).map(([k, s], i) => [k, randn(size(s), seed * 10 + i)]),
  ) as Record<keyof typeof shapes, Float32Array>;
  const scale = (c.r / 4 + c.dr) ** -0.5;
  for (const [bi, len] of c.lengths.entries()) {
    if (!c.nan) continue;
    for (let j = len; j < c.nk; j++) {
      host.cKv.fill(Number.NaN, (bi * c.nk + j) * c.r, (bi * c.nk + j + 1) * c.r);
      host.kPe.fill(Number.NaN, (bi * c.nk + j) * c.dr, (bi * c.nk + j + 1) * c.dr);
    }
  }
  const ref = mlaAbsorbedAttention(host.qLatent, host.qPe, host.cKv, host.kPe, host.wUv, c.lengths, {
    nq: c.nq,
    nk: c.nk,
    heads: c.heads,
    kvLoraRank: c.r,
    qkRopeHeadDim: c.dr,
    vHeadDim: c.dv,
    scale,
  });
  const t = Object.fromEntries(
    Object.entries(shapes).map(([k, s]) => [k, Tensor.from(gpu, host[k as keyof typeof shapes], s)]),
  ) as Record<keyof typeof shapes, Tensor>;
  try {
    const o = await mlaAttention(gpu, t.qLatent, t.qPe, t.cKv, t.kPe, t.wUv, c.lengths, {
      scale,
      ...(c.splits !== undefined && { splits: c.splits }),
      ...(c.kernel !== undefined && { kernel: c.kernel }),
    });
    const got = await o.read();
    o.dispose();
    return { ref, got };
  } finally {
    for (const x of Object.values(t)) x.dispose();
  }
}

describe('mlaAttention (dense) against the reference', () => {
  let gpu: Gpu;
  beforeAll(async () => {
    gpu = await testGpu();
  });
  afterAll(() => gpu.destroy());

  const small = { heads: 4, r: 32, dr: 8, dv: 16 };
  const cases: [string, Case][] = [
    ['prefill, one sequence', { ...small, lengths: [37], nq: 37, nk: 37 }],
    [
      'decode nq=1, mixed lengths with an empty sequence',
      { ...small, lengths: [1, 0, 300, 77], nq: 1, nk: 300, nan: true },
    ],
    ['decode nq=3, split-KV', { ...small, lengths: [3, 129, 2, 250], nq: 3, nk: 250, splits: 4, nan: true }],
    // 280 packed rows: more rows than invocations in a workgroup, and five row blocks.
    [
      'prefill past 256 packed rows',
      { ...small, lengths: [70, 0], nq: 70, nk: 70, kernel: 'latent', nan: true },
    ],
    ['chunked prefill onto a cache', { ...small, lengths: [45, 100], nq: 20, nk: 120, nan: true }],
    ['chunked prefill, split-KV', { ...small, lengths: [45, 100], nq: 20, nk: 120, splits: 3, nan: true }],
    [
      'MiniCPM3 dims, decode',
      { heads: 40, r: 256, dr: 32, dv: 64, lengths: [133, 1], nq: 1, nk: 140, nan: true },
    ],
    [
      'prefill, mixed lengths incl. empty, flash path',
      { ...small, lengths: [37, 0, 5, 19], nq: 19, nk: 40, nan: true, kernel: 'flash' },
    ],
    [
      'chunked prefill, flash path',
      { ...small, lengths: [45, 100], nq: 20, nk: 120, nan: true, kernel: 'flash' },
    ],
    ['decode, flash path', { ...small, lengths: [45, 1, 0], nq: 1, nk: 50, nan: true, kernel: 'flash' }],
    [
      'MiniCPM3 dims, prefill, flash path',
      { heads: 40, r: 256, dr: 32, dv: 64, lengths: [24, 9], nq: 24, nk: 24, kernel: 'flash' },
    ],
    [
      'MiniCPM3 dims, decode split',
      { heads: 40, r: 256, dr: 32, dv: 64, lengths: [133, 0], nq: 2, nk: 140, splits: 3, nan: true },
    ],
  ];
  for (const [name, c] of cases) {
    it(name, async () => {
      const { ref, got } = await runCase(gpu, c, 1);
      const result = compare(ref, got, toleranceFor('f32'));
      expect(result.ok, JSON.stringify(result)).toBe(true);
    });
  }
});

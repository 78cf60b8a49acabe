// What the MLA diagnostics share: MiniCPM3's dims (h=40, r=256, dr=32, dv=64), a paged f16 latent
// cache of `batch` sequences of `n` tokens with one query per sequence, and a prefill of one
// sequence, on random inputs.

import { type Gpu, type Measurement, measure, randomNormal } from '../../packages/core/src/index.js';
import { MlaCache, mlaAttention, mlaAttentionPaged } from '../../packages/mla/src/index.js';

export const MLA_DIMS = { heads: 40, r: 256, dr: 32, dv: 64 };

/** The softmax scale of MiniCPM3 (nope 64 + rope 32 dims per head). */
export const MLA_SCALE = (64 + MLA_DIMS.dr) ** -0.5;

/** The cache, its sequences, the queries and W_UV; `dispose` frees them all. */
export async function mlaDecodeProblem(gpu: Gpu, batch: number, n: number) {
  const { heads, r, dr, dv } = MLA_DIMS;
  const cache = new MlaCache(gpu, {
    kvLoraRank: r,
    qkRopeHeadDim: dr,
    pages: batch * Math.ceil(n / 64),
    dtype: 'f16',
  });
  const ids = Array.from({ length: batch }, () => cache.create());
  {
    using c = await randomNormal(gpu, [batch, n, r], 1, { dtype: 'f16' });
    using k = await randomNormal(gpu, [batch, n, dr], 2, { dtype: 'f16' });
    await cache.append(ids, c, k);
  }
  const q = await randomNormal(gpu, [batch, 1, heads, r], 3, { dtype: 'f16' });
  const qp = await randomNormal(gpu, [batch, 1, heads, dr], 4, { dtype: 'f16' });
  const w = await randomNormal(gpu, [heads, r, dv], 5, { dtype: 'f16' });
  /** Queues one decode step on the tensor-core tier (its output released); `splits` forces the split count. */
  const step = async (splits?: number) => {
    const o = await mlaAttentionPaged(gpu, q, qp, cache, ids, w, {
      scale: MLA_SCALE,
      tier: 'subgroup-matrix',
      ...(splits !== undefined && { splits }),
    });
    o.dispose();
  };
  return {
    step,
    /** One decode step, timed. */
    time: (splits?: number) => measure(gpu, () => step(splits), { warmup: 1, iters: 5 }),
    /** One decode step's output on the tensor-core tier, read back. */
    async output(): Promise<Float32Array> {
      const o = await mlaAttentionPaged(gpu, q, qp, cache, ids, w, {
        scale: MLA_SCALE,
        tier: 'subgroup-matrix',
      });
      try {
        return await o.read();
      } finally {
        o.dispose();
      }
    },
    cache,
    ids,
    q,
    qp,
    w,
    /** Latent-cache bytes one decode step reads. */
    bytes: batch * n * (r + dr) * 2,
    dispose() {
      for (const t of [q, qp, w]) t.dispose();
      cache.dispose();
    },
  };
}

/**
 * One sequence of `n` tokens prefilled over a dense latent cache at MiniCPM3's dims (the bench's
 * prefill table), on the tensor-core tier: one run, a timer of it, and its output read back.
 */
export async function mlaPrefillProblem(gpu: Gpu, n: number) {
  const { heads, r, dr, dv } = MLA_DIMS;
  const f16 = (shape: number[], seed: number) => randomNormal(gpu, shape, seed, { dtype: 'f16' });
  const x = [
    await f16([1, n, heads, r], 1),
    await f16([1, n, heads, dr], 2),
    await f16([1, n, r], 3),
    await f16([1, n, dr], 4),
    await f16([heads, r, dv], 5),
  ] as const;
  const prefill = () => mlaAttention(gpu, ...x, [n], { scale: MLA_SCALE, tier: 'subgroup-matrix' });
  const run = async () => {
    (await prefill()).dispose();
  };
  return {
    run,
    time: () => measure(gpu, run, { warmup: 1, iters: 3 }),
    async output(): Promise<Float32Array> {
      const o = await prefill();
      try {
        return await o.read();
      } finally {
        o.dispose();
      }
    },
  };
}

/** One timed run's kernels, `label us` joined by `; `, labels cut at their tier tag. */
export function kernelMicroseconds(m: Measurement): string {
  return Object.entries(m.kernels?.[1] ?? {})
    .map(([label, ms]) => `${label.split(' [')[0]} ${(ms * 1000).toFixed(0)} us`)
    .join('; ');
}

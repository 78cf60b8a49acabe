/**
 * `webattn verify mla`: the absorbed MLA attention on every tier the adapter has, against the
 * reference's `mlaAbsorbedAttention`: decode (nq = 1 and 3, split-KV), chunked prefill onto a cache
 * and prefill (row kernel and flash path), over dense caches whose slots past each length hold NaN
 * and over a paged cache, at MiniCPM3's dims and a small config. The reference runs on what the GPU
 * holds (f16 inputs rounded), so f16 checks measure the kernels.
 */
import { type Gpu, roundToF16, Tensor, type Tier, tierDtype } from '@webattn/core';
import { MlaCache, type MlaKernelChoice, mlaAttention, mlaAttentionPaged } from '@webattn/mla';
import { compare, magnitudeOf, mlaAbsorbedAttention, randn, toleranceFor } from '@webattn/reference';
import { isCpuAdapter } from '../adapter.js';
import type { Check } from './check.js';

interface Shape {
  name: string;
  heads: number;
  r: number;
  dr: number;
  dv: number;
  nq: number;
  lengths: number[];
  splits?: number;
  kernel?: MlaKernelChoice;
  paged?: boolean;
  /**
   * Key j's latent and rope parts scaled by 1 + growth · j, so that the scores' max climbs tile
   * after tile: every tile then moves the tensor-core kernel's lazy max and rescales its
   * accumulators, a path random keys of one scale rarely take.
   */
  growth?: number;
}

const MINICPM3 = { heads: 40, r: 256, dr: 32, dv: 64 };
const SMALL = { heads: 4, r: 32, dr: 16, dv: 16 };

const SHAPES: Shape[] = [
  { name: 'decode', ...MINICPM3, nq: 1, lengths: [300, 1, 0, 129] },
  { name: 'decode split-KV', ...MINICPM3, nq: 1, lengths: [1000, 77], splits: 5 },
  { name: 'decode nq=3 (speculative)', ...MINICPM3, nq: 3, lengths: [2, 140, 257] },
  { name: 'chunked prefill', ...SMALL, nq: 24, lengths: [100, 30, 7] },
  { name: 'prefill, flash path', ...MINICPM3, nq: 70, lengths: [70, 33], kernel: 'flash' },
  { name: 'prefill, latent kernel', ...SMALL, nq: 70, lengths: [70, 0], kernel: 'latent' },
  { name: 'paged decode', ...MINICPM3, nq: 1, lengths: [130, 64, 1], paged: true },
  { name: 'decode, scores climbing (rescales)', ...MINICPM3, nq: 1, lengths: [300, 45], growth: 0.1 },
  {
    name: 'paged chunked prefill, flash path',
    ...SMALL,
    nq: 20,
    lengths: [90, 20],
    paged: true,
    kernel: 'flash',
  },
];

function runShape(s: Shape, tier: Tier) {
  return async (gpu: Gpu) => {
    const dtype = tierDtype(tier);
    const round = (x: Float32Array) => (dtype === 'f16' ? roundToF16(x) : x);
    const b = s.lengths.length;
    const nk = Math.max(1, ...s.lengths);
    const ql = round(randn(b * s.nq * s.heads * s.r, 61));
    const qp = round(randn(b * s.nq * s.heads * s.dr, 62));
    // Key j's row of `width` scaled by 1 + growth · j (by 1 where the shape has no growth).
    const growth = s.growth ?? 0;
    const grow = (x: Float32Array, width: number) =>
      x.map((v, e) => v * (1 + growth * (Math.floor(e / width) % nk)));
    const c = round(grow(randn(b * nk * s.r, 63), s.r));
    const k = round(grow(randn(b * nk * s.dr, 64), s.dr));
    const w = round(randn(s.heads * s.r * s.dv, 65, 1 / Math.sqrt(s.r)));
    for (const [i, len] of s.lengths.entries()) {
      c.fill(Number.NaN, (i * nk + len) * s.r, (i + 1) * nk * s.r);
      k.fill(Number.NaN, (i * nk + len) * s.dr, (i + 1) * nk * s.dr);
    }
    const scale = (s.r / 4 + s.dr) ** -0.5;
    const ref = mlaAbsorbedAttention(ql, qp, c, k, w, s.lengths, {
      nq: s.nq,
      nk,
      heads: s.heads,
      kvLoraRank: s.r,
      qkRopeHeadDim: s.dr,
      vHeadDim: s.dv,
      scale,
    });
    using tql = Tensor.from(gpu, ql, [b, s.nq, s.heads, s.r], dtype);
    using tqp = Tensor.from(gpu, qp, [b, s.nq, s.heads, s.dr], dtype);
    using tw = Tensor.from(gpu, w, [s.heads, s.r, s.dv], dtype);
    const options = {
      scale,
      tier,
      ...(s.splits !== undefined && { splits: s.splits }),
      ...(s.kernel !== undefined && { kernel: s.kernel }),
    };
    let o: Tensor;
    if (s.paged) {
      using cache = new MlaCache(gpu, {
        kvLoraRank: s.r,
        qkRopeHeadDim: s.dr,
        pages: b * Math.ceil(nk / 16) + 1,
        pageSize: 16,
        dtype,
      });
      gpu.write(cache.pages.buffer, new Float32Array(cache.pages.byteLength / 4).fill(Number.NaN));
      const ids = s.lengths.map(() => cache.create());
      using tc = Tensor.from(
        gpu,
        c.map((x) => (Number.isNaN(x) ? 0 : x)),
        [b, nk, s.r],
        dtype,
      );
      using tk = Tensor.from(
        gpu,
        k.map((x) => (Number.isNaN(x) ? 0 : x)),
        [b, nk, s.dr],
        dtype,
      );
      await cache.append(ids, tc, tk, s.lengths);
      o = await mlaAttentionPaged(gpu, tql, tqp, cache, ids, tw, options);
    } else {
      using tc = Tensor.from(gpu, c, [b, nk, s.r], dtype);
      using tk = Tensor.from(gpu, k, [b, nk, s.dr], dtype);
      o = await mlaAttention(gpu, tql, tqp, tc, tk, tw, s.lengths, options);
    }
    using _o = o;
    // The max-abs bound scaled by the outputs' size (values near 30 where the keys grow).
    return [{ output: 'o', comparison: compare(ref, await o.read(), toleranceFor(dtype, magnitudeOf(ref))) }];
  };
}

/** On a CPU adapter: at most 4 heads, rank 64, 24 queries and 200 keys, so a CI run stays short. */
function cpuShape(s: Shape): Shape {
  const nq = Math.min(s.nq, 24);
  return {
    ...s,
    heads: Math.min(s.heads, 4),
    r: Math.min(s.r, 64),
    nq,
    lengths: s.lengths.map((l) => (l === s.nq ? nq : Math.min(l, 200))),
  };
}

/** The MLA checks for every tier `gpu` can run. */
export function mlaChecks(gpu: Gpu): Check[] {
  const cpu = isCpuAdapter(gpu.caps);
  const shapes = cpu ? SHAPES.map(cpuShape) : SHAPES;
  // The subgroups tier runs the portable tier's kernels: on a CPU adapter two shapes show it works.
  const forTier = (tier: Tier) =>
    cpu && tier === 'subgroups'
      ? shapes.filter((s) => s.name === 'decode' || s.name === 'paged decode')
      : shapes;
  return gpu.caps.tiers.flatMap((tier) =>
    forTier(tier).map((s) => ({
      suite: 'mla' as const,
      name: `mla ${s.name} [${tier}] h=${s.heads} r=${s.r} dr=${s.dr} dv=${s.dv} nq=${s.nq} lengths=${s.lengths.join('/')}${s.splits ? ` splits=${s.splits}` : ''}`,
      tier,
      run: runShape(s, tier),
    })),
  );
}

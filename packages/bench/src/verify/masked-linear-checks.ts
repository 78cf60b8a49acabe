/**
 * `webattn verify linear`, masked form: naive, blocked and fused (tensor cores on `subgroup-matrix`)
 * forward and backward (dq, dk, dv, dm) on every tier the adapter has, against the reference; and,
 * on the f16 tiers, that an overflowing f16 result is refused with a WebAttnError.
 */
import { type Gpu, Tensor, type Tier, tierDtype, WebAttnError } from '@webattn/core';
import {
  type MaskedImplementation,
  maskedLinearAttention,
  maskedLinearAttentionBackward,
} from '@webattn/linear-attn';
import {
  compare,
  magnitudeOf,
  randn,
  maskedLinearAttentionBackward as referenceBackward,
  maskedLinearAttention as referenceForward,
  seededUniform,
  toleranceFor,
} from '@webattn/reference';
import { isCpuAdapter } from '../adapter.js';
import type { Check } from './check.js';

interface Shape {
  batch: number;
  n: number;
  hq: number;
  hkv: number;
  d: number;
  maskBatch: number;
  maskHeads: number;
  mask: 'random01' | 'lower';
}

/**
 * n off every tile, MQA with a broadcast random 0/1 mask, and GQA with a per-sequence, per-head
 * causal mask at d = 128 (the tensor-core shapes of a GPU); smaller on a CPU adapter, where the
 * package tests already cover the shapes.
 */
function shapes(cpu: boolean): Shape[] {
  return [
    {
      batch: 1,
      n: cpu ? 37 : 77,
      hq: 4,
      hkv: 1,
      d: cpu ? 32 : 64,
      maskBatch: 1,
      maskHeads: 1,
      mask: 'random01',
    },
    {
      batch: 2,
      n: cpu ? 40 : 130,
      hq: 4,
      hkv: 2,
      d: cpu ? 32 : 128,
      maskBatch: 2,
      maskHeads: 4,
      mask: 'lower',
    },
  ];
}

const IMPLEMENTATIONS: MaskedImplementation[] = ['naive', 'blocked', 'fused'];

function maskValues(s: Shape): Float32Array {
  const rand = seededUniform(51);
  const m = new Float32Array(s.maskBatch * s.maskHeads * s.n * s.n);
  for (let at = 0; at < m.length; at++) {
    const i = Math.floor(at / s.n) % s.n;
    const j = at % s.n;
    m[at] = s.mask === 'lower' ? Number(j <= i) : rand() < 0.5 ? 0 : 1;
  }
  return m;
}

function runShape(s: Shape, tier: Tier, implementation: MaskedImplementation) {
  return async (gpu: Gpu) => {
    const dtype = tierDtype(tier);
    const { batch, n, hq, hkv, d } = s;
    // Scaled so that sums of n products stay O(1): f16 storage keeps its relative precision.
    const scale = 1 / Math.sqrt(d * n);
    using q = Tensor.from(gpu, randn(batch * n * hq * d, 61, scale), [batch, n, hq, d], dtype);
    using k = Tensor.from(gpu, randn(batch * n * hkv * d, 62), [batch, n, hkv, d], dtype);
    using v = Tensor.from(gpu, randn(batch * n * hkv * d, 63), [batch, n, hkv, d], dtype);
    using m = Tensor.from(gpu, maskValues(s), [s.maskBatch, s.maskHeads, n, n], dtype);
    using dO = Tensor.from(gpu, randn(batch * n * hq * d, 64, scale), [batch, n, hq, d], dtype);
    const { o, ctx } = await maskedLinearAttention(gpu, q, k, v, m, { implementation, tier });
    using _o = o;
    const grads = await maskedLinearAttentionBackward(ctx, dO);
    try {
      // The reference runs on what the GPU holds, so f16 checks measure the kernels, not the input rounding.
      const [hq_, hk, hv, hm, hdo] = await Promise.all([q, k, v, m, dO].map((t) => t.read()));
      const options = { batch, n, hq, hkv, dk: d, dv: d, maskBatch: s.maskBatch, maskHeads: s.maskHeads };
      const refO = referenceForward(hq_!, hk!, hv!, hm!, options);
      const refG = referenceBackward(hq_!, hk!, hv!, hm!, hdo!, options);
      const pairs: [string, Float32Array, Tensor][] = [
        ['o', refO, o],
        ['dq', refG.dq, grads.dq],
        ['dk', refG.dk, grads.dk],
        ['dv', refG.dv, grads.dv],
        ['dm', refG.dm, grads.dm],
      ];
      const out: { output: string; comparison: ReturnType<typeof compare> }[] = [];
      for (const [output, expected, t] of pairs) {
        out.push({
          output,
          comparison: compare(expected, await t.read(), toleranceFor(dtype, magnitudeOf(expected))),
        });
      }
      return out;
    } finally {
      for (const t of Object.values(grads)) t.dispose();
    }
  };
}

/** On an f16 tier: inputs whose result exceeds f16 must give a `limit-exceeded` WebAttnError. */
function overflowCheck(tier: Tier, implementation: MaskedImplementation): Check {
  return {
    suite: 'linear',
    name: `masked linear ${implementation} [${tier}] f16 overflow is a WebAttnError (n=256, d=64, |q|=|k|=|v|=16)`,
    tier,
    async run(gpu) {
      const [n, h, d] = [256, 2, 64];
      const big = (count: number) => new Float32Array(count).fill(16);
      using q = Tensor.from(gpu, big(n * h * d), [1, n, h, d], 'f16');
      using k = Tensor.from(gpu, big(n * h * d), [1, n, h, d], 'f16');
      using v = Tensor.from(gpu, big(n * h * d), [1, n, h, d], 'f16');
      using m = Tensor.from(gpu, new Float32Array(n * n).fill(1), [1, 1, n, n], 'f16');
      const refused = await maskedLinearAttention(gpu, q, k, v, m, { implementation, tier }).then(
        (r) => {
          r.o.dispose();
          return false;
        },
        (e: unknown) => e instanceof WebAttnError && e.code === 'limit-exceeded',
      );
      return [{ output: 'refused', comparison: compare([1], [refused ? 1 : 0], toleranceFor('f32')) }];
    },
  };
}

/** The masked linear attention checks for every tier `gpu` can run. */
export function maskedLinearChecks(gpu: Gpu): Check[] {
  const cpu = isCpuAdapter(gpu.caps);
  return gpu.caps.tiers.flatMap((tier) => [
    ...shapes(cpu).flatMap((s) =>
      IMPLEMENTATIONS.map((implementation) => ({
        suite: 'linear' as const,
        name: `masked linear ${implementation} forward+backward [${tier}] b=${s.batch} n=${s.n} hq=${s.hq} hkv=${s.hkv} d=${s.d} mask [${s.maskBatch},${s.maskHeads},n,n] ${s.mask}`,
        tier,
        run: runShape(s, tier, implementation),
      })),
    ),
    ...(tierDtype(tier) === 'f16' ? IMPLEMENTATIONS.map((i) => overflowCheck(tier, i)) : []),
  ]);
}

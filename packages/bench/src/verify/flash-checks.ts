/** `webattn verify flash`: the dense flash attention, forward and backward, on every tier the adapter has. */
import {
  flashAttention,
  flashAttentionBackward,
  flashForwardVariant,
  type Gpu,
  Tensor,
  tierDtype,
} from '@webattn/core';
import { attentionBackward, attentionForward, compare, randn, toleranceFor } from '@webattn/reference';
import type { Check } from './check.js';

interface Shape {
  b: number;
  n: number;
  nk: number;
  hq: number;
  hkv: number;
  d: number;
  dv: number;
  causal: boolean;
  window?: [number, number];
}

/**
 * Small shapes with ragged lengths, GQA, d != dv, bottom-right alignment and a window; then three
 * with few queries over many keys, which the forward splits over its keys (split-kv.ts): a GQA
 * decode batch (run grouped, decode-groups.ts), a decode batch without GQA, and a chunk of 3
 * queries at MLA's unabsorbed head dims.
 */
const SHAPES: Shape[] = [
  { b: 1, n: 37, nk: 37, hq: 4, hkv: 2, d: 64, dv: 64, causal: true },
  { b: 2, n: 20, nk: 45, hq: 4, hkv: 1, d: 128, dv: 64, causal: true, window: [8, 0] },
  { b: 4, n: 1, nk: 3000, hq: 8, hkv: 2, d: 128, dv: 128, causal: true },
  { b: 3, n: 1, nk: 2000, hq: 4, hkv: 4, d: 64, dv: 64, causal: true },
  { b: 2, n: 3, nk: 1500, hq: 4, hkv: 4, d: 96, dv: 64, causal: true },
];

/** The flash checks for every tier `gpu` can run. */
export function flashChecks(gpu: Gpu): Check[] {
  const checks: Check[] = [];
  for (const tier of gpu.caps.tiers) {
    for (const s of SHAPES) {
      const label = `b=${s.b} n=${s.n} nk=${s.nk} hq=${s.hq} hkv=${s.hkv} d=${s.d} dv=${s.dv}${s.causal ? ' causal' : ''}${s.window ? ` window=[${s.window}]` : ''}`;
      checks.push({
        suite: 'flash',
        name: `flash attention ${flashForwardVariant(gpu.caps, tier, s.d, s.dv).kind} [${tier}] ${label}`,
        tier,
        async run(device) {
          const dtype = tierDtype(tier);
          using q = Tensor.from(device, randn(s.b * s.n * s.hq * s.d, 21), [s.b, s.n, s.hq, s.d], dtype);
          using k = Tensor.from(device, randn(s.b * s.nk * s.hkv * s.d, 22), [s.b, s.nk, s.hkv, s.d], dtype);
          using v = Tensor.from(
            device,
            randn(s.b * s.nk * s.hkv * s.dv, 23),
            [s.b, s.nk, s.hkv, s.dv],
            dtype,
          );
          using dO = Tensor.from(device, randn(s.b * s.n * s.hq * s.dv, 24), [s.b, s.n, s.hq, s.dv], dtype);
          const options = { causal: s.causal, ...(s.window && { window: s.window }) };
          const { o, lse, ctx } = await flashAttention(device, q, k, v, { ...options, tier });
          const grads = await flashAttentionBackward(ctx, dO);
          // The reference runs on what the GPU holds, so f16 checks measure the kernel, not the rounding of inputs.
          const [hq, hk, hv, hdo] = await Promise.all([q.read(), k.read(), v.read(), dO.read()]);
          const shape = { batch: s.b, n: s.n, nk: s.nk, hq: s.hq, hkv: s.hkv, d: s.d, dv: s.dv, ...options };
          const ref = attentionForward(hq, hk, hv, shape);
          const refGrads = attentionBackward(hq, hk, hv, ref.o, ref.lse, hdo, shape);
          const outputs: [string, Float32Array, Tensor, number][] = [
            ['o', ref.o, o, 1],
            ['lse', ref.lse, lse, 1],
            ['dq', refGrads.dq, grads.dq, 4],
            ['dk', refGrads.dk, grads.dk, 4],
            ['dv', refGrads.dv, grads.dv, 4],
          ];
          const results = [];
          for (const [name, expected, tensor, magnitude] of outputs) {
            results.push({
              output: name,
              comparison: compare(expected, await tensor.read(), toleranceFor(dtype, magnitude)),
            });
            tensor.dispose();
          }
          return results;
        },
      });
    }
  }
  return checks;
}

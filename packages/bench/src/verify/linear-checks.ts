/**
 * `webattn verify linear`, decayed form: lightning attention chunkwise, forward (o, final state) and
 * backward (dq, dk, dv, dInitialState) with initial state, GQA and packed sequences, and the decode
 * step continuing a prefix (its o must be the last row of the forward), on every tier the adapter
 * has, against the reference; and on the f16 tiers, that an f16 output past f16's range is refused
 * with a WebAttnError while `normalizeQk` keeps it in range.
 */
import { type Gpu, Tensor, type Tier, tierDtype, WebAttnError } from '@webattn/core';
import {
  disposeLightningContext,
  lightningAttention,
  lightningAttentionBackward,
  lightningDecode,
} from '@webattn/linear-attn';
import {
  type Comparison,
  compare,
  magnitudeOf,
  randn,
  lightningAttentionBackward as referenceBackward,
  lightningAttentionDecode as referenceDecode,
  lightningAttention as referenceForward,
  toleranceFor,
} from '@webattn/reference';
import { isCpuAdapter } from '../adapter.js';
import type { Check } from './check.js';

interface Shape {
  batch: number;
  n: number;
  hq: number;
  hkv: number;
  dk: number;
  dv: number;
  decays: number[];
  cuSeqlens?: number[];
  chunkSize?: number;
  /** Chunks of states per binding (`stateBindingBytes`), to split the states over two bindings. */
  stateBindingChunks?: number;
}

/**
 * Several chunks with a ragged tail and GQA at d = 128; packed sequences of 1, 29 and 70 tokens;
 * n < one chunk; states split over two bindings inside a sequence (what 65,536 tokens of 32 heads
 * need on a device with 2 GiB bindings).
 */
const SHAPES: Shape[] = [
  { batch: 2, n: 200, hq: 4, hkv: 2, dk: 128, dv: 128, decays: [0.999, 0.99, 0.9, 0.5] },
  {
    batch: 1,
    n: 100,
    hq: 2,
    hkv: 1,
    dk: 64,
    dv: 32,
    decays: [1, 0.95],
    cuSeqlens: [0, 1, 30, 100],
    chunkSize: 32,
  },
  { batch: 3, n: 17, hq: 2, hkv: 2, dk: 48, dv: 80, decays: [0, 0.8] },
  {
    batch: 1,
    n: 300,
    hq: 2,
    hkv: 1,
    dk: 128,
    dv: 128,
    decays: [0.99, 0.9],
    cuSeqlens: [0, 100, 300],
    stateBindingChunks: 3,
  },
];

/**
 * The same cases at sizes a CPU adapter gets through quickly (SwiftShader compiles each kernel
 * variant in seconds): one chunk size, smaller heads.
 */
const CPU_SHAPES: Shape[] = [
  { batch: 2, n: 90, hq: 4, hkv: 2, dk: 32, dv: 32, decays: [0.999, 0.99, 0.9, 0.5] },
  { batch: 1, n: 100, hq: 2, hkv: 1, dk: 16, dv: 24, decays: [1, 0.95], cuSeqlens: [0, 1, 30, 100] },
  { batch: 3, n: 17, hq: 2, hkv: 2, dk: 20, dv: 36, decays: [0, 0.8] },
  {
    batch: 1,
    n: 200,
    hq: 2,
    hkv: 1,
    dk: 16,
    dv: 16,
    decays: [0.99, 0.9],
    cuSeqlens: [0, 100, 200],
    stateBindingChunks: 3,
  },
];

function describe(s: Shape): string {
  return `b=${s.batch} n=${s.n} hq=${s.hq} hkv=${s.hkv} dk=${s.dk} dv=${s.dv}${s.cuSeqlens ? ` cuSeqlens=[${s.cuSeqlens.join(',')}]` : ''}${s.chunkSize ? ` chunk=${s.chunkSize}` : ''}${s.stateBindingChunks ? ` states split after ${s.stateBindingChunks} chunks` : ''}`;
}

function forwardBackward(s: Shape, tier: Tier) {
  return async (gpu: Gpu) => {
    const dtype = tierDtype(tier);
    const sequences = s.cuSeqlens ? s.cuSeqlens.length - 1 : s.batch;
    const stateShape = [sequences, s.hq, s.dk, s.dv];
    const stateSize = sequences * s.hq * s.dk * s.dv;
    using q = Tensor.from(gpu, randn(s.batch * s.n * s.hq * s.dk, 71), [s.batch, s.n, s.hq, s.dk], dtype);
    using k = Tensor.from(gpu, randn(s.batch * s.n * s.hkv * s.dk, 72), [s.batch, s.n, s.hkv, s.dk], dtype);
    using v = Tensor.from(gpu, randn(s.batch * s.n * s.hkv * s.dv, 73), [s.batch, s.n, s.hkv, s.dv], dtype);
    using dO = Tensor.from(gpu, randn(s.batch * s.n * s.hq * s.dv, 74), [s.batch, s.n, s.hq, s.dv], dtype);
    using init = Tensor.from(gpu, randn(stateSize, 75, 0.5), stateShape);
    using dFinal = Tensor.from(gpu, randn(stateSize, 76, 0.5), stateShape);
    const result = await lightningAttention(gpu, q, k, v, {
      decays: s.decays,
      tier,
      initialState: init,
      ...(s.cuSeqlens && { cuSeqlens: s.cuSeqlens }),
      ...(s.chunkSize && { chunkSize: s.chunkSize }),
      ...(s.stateBindingChunks && { stateBindingBytes: s.stateBindingChunks * s.hq * s.dk * s.dv * 4 }),
    });
    const grads = await lightningAttentionBackward(result.ctx, dO, dFinal);
    try {
      // The reference runs on what the GPU holds, so f16 checks measure the kernels, not the input rounding.
      const [hq, hk, hv, hdo, hinit, hfinal] = await Promise.all(
        [q, k, v, dO, init, dFinal].map((t) => t.read()),
      );
      const options = {
        batch: s.batch,
        n: s.n,
        hq: s.hq,
        hkv: s.hkv,
        dk: s.dk,
        dv: s.dv,
        ...(s.cuSeqlens && { cuSeqlens: s.cuSeqlens }),
      };
      const inputs = { q: hq!, k: hk!, v: hv!, decays: s.decays, initialState: hinit! };
      const ref = referenceForward(inputs, options);
      const refG = referenceBackward(inputs, { dO: hdo!, dFinalState: hfinal! }, options);
      const pairs: [string, Float32Array, Tensor | undefined, 'f32' | 'f16'][] = [
        ['o', ref.o, result.o, dtype],
        ['finalState', ref.finalState, result.finalState, 'f32'],
        ['dq', refG.dq, grads.dq, dtype],
        ['dk', refG.dk, grads.dk, dtype],
        ['dv', refG.dv, grads.dv, dtype],
        ['dInitialState', refG.dInitialState, grads.dInitialState, 'f32'],
      ];
      const out: { output: string; comparison: Comparison }[] = [];
      for (const [output, expected, t, precision] of pairs) {
        // States accumulate in f32 over f16 inputs: held to the inputs' precision.
        const tol = toleranceFor(dtype === 'f16' ? 'f16' : precision, magnitudeOf(expected));
        const actual = t ? await t.read() : new Float32Array(expected.length).fill(Number.NaN);
        out.push({ output, comparison: compare(expected, actual, tol) });
      }
      return out;
    } finally {
      for (const t of [result.o, result.finalState, grads.dq, grads.dk, grads.dv, grads.dInitialState])
        t?.dispose();
      disposeLightningContext(result.ctx);
    }
  };
}

/** A prefix through the chunkwise forward, then one decode step: o must be the forward's last row. */
function decodeCheck(tier: Tier, cpu: boolean): Check {
  const [batch, n, hq, hkv, d] = [4, 70, 4, 2, cpu ? 32 : 128];
  const decays = [0.999, 0.99, 0.9, 0.5];
  return {
    suite: 'linear',
    name: `lightning decode after a chunkwise prefix [${tier}] batch=${batch} n=${n} hq=${hq} hkv=${hkv} d=${d}`,
    tier,
    async run(gpu) {
      const dtype = tierDtype(tier);
      using q = Tensor.from(gpu, randn(batch * n * hq * d, 81), [batch, n, hq, d], dtype);
      using k = Tensor.from(gpu, randn(batch * n * hkv * d, 82), [batch, n, hkv, d], dtype);
      using v = Tensor.from(gpu, randn(batch * n * hkv * d, 83), [batch, n, hkv, d], dtype);
      using qt = Tensor.from(gpu, randn(batch * hq * d, 84), [batch, hq, d], dtype);
      using kt = Tensor.from(gpu, randn(batch * hkv * d, 85), [batch, hkv, d], dtype);
      using vt = Tensor.from(gpu, randn(batch * hkv * d, 86), [batch, hkv, d], dtype);
      const prefix = await lightningAttention(gpu, q, k, v, { decays, tier });
      prefix.o.dispose();
      disposeLightningContext(prefix.ctx);
      using state = prefix.finalState;
      const [hs, hqt, hkt, hvt] = await Promise.all([state, qt, kt, vt].map((t) => t.read()));
      const step = await lightningDecode(gpu, qt, kt, vt, state, { decays, tier });
      try {
        const ref = referenceDecode(
          { q: hqt!, k: hkt!, v: hvt!, decays, state: hs! },
          { batch, hq, hkv, dk: d, dv: d },
        );
        return [
          {
            output: 'o',
            comparison: compare(ref.o, await step.o.read(), toleranceFor(dtype, magnitudeOf(ref.o))),
          },
          {
            output: 'state',
            comparison: compare(
              ref.state,
              await step.state.read(),
              toleranceFor(dtype, magnitudeOf(ref.state)),
            ),
          },
        ];
      } finally {
        step.o.dispose();
        step.state.dispose();
      }
    },
  };
}

/** On an f16 tier: inputs whose output passes 65504 are refused with a WebAttnError; normalised, they run. */
function overflowCheck(tier: Tier): Check {
  return {
    suite: 'linear',
    name: `lightning [${tier}] f16 overflow is a WebAttnError, normalizeQk avoids it (n=256, d=64, |q|=|k|=|v|=16, scale 1)`,
    tier,
    async run(gpu) {
      const [n, h, d] = [256, 2, 64];
      const big = (count: number) => new Float32Array(count).fill(16);
      using q = Tensor.from(gpu, big(n * h * d), [1, n, h, d], 'f16');
      using k = Tensor.from(gpu, big(n * h * d), [1, n, h, d], 'f16');
      using v = Tensor.from(gpu, big(n * h * d), [1, n, h, d], 'f16');
      const options = { decays: [0.999, 0.99], scale: 1, tier };
      const refused = await lightningAttention(gpu, q, k, v, options).then(
        (r) => {
          r.o.dispose();
          r.finalState.dispose();
          disposeLightningContext(r.ctx);
          return false;
        },
        (e: unknown) => e instanceof WebAttnError && e.code === 'limit-exceeded',
      );
      const normalised = await lightningAttention(gpu, q, k, v, { ...options, normalizeQk: true });
      const o = await normalised.o.read();
      normalised.o.dispose();
      normalised.finalState.dispose();
      disposeLightningContext(normalised.ctx);
      const finite = o.every((x) => Number.isFinite(x));
      return [
        { output: 'refused', comparison: compare([1], [refused ? 1 : 0], toleranceFor('f32')) },
        { output: 'normalised finite', comparison: compare([1], [finite ? 1 : 0], toleranceFor('f32')) },
      ];
    },
  };
}

/** The lightning attention checks for every tier `gpu` can run (smaller shapes on a CPU adapter). */
export function lightningChecks(gpu: Gpu): Check[] {
  const cpu = isCpuAdapter(gpu.caps);
  return gpu.caps.tiers.flatMap((tier) => [
    ...(cpu ? CPU_SHAPES : SHAPES).map((s) => ({
      suite: 'linear' as const,
      name: `lightning chunkwise forward+backward with initial state [${tier}] ${describe(s)}`,
      tier,
      run: forwardBackward(s, tier),
    })),
    decodeCheck(tier, cpu),
    ...(tierDtype(tier) === 'f16' ? [overflowCheck(tier)] : []),
  ]);
}

import { type Gpu, Tensor, type Tier, WebAttnError } from '@webattn/core';
import { testGpu } from '@webattn/core/testing';
import {
  compare,
  l2Normalize,
  l2NormalizeBackward,
  randn,
  randu,
  lightningAttentionBackward as refBackward,
  lightningAttention as refForward,
  lightningAttentionRecurrent as refRecurrent,
  toleranceFor,
} from '@webattn/reference';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { disposeLightningContext, lightningAttention, lightningAttentionBackward } from '../src/index.js';

interface Case {
  name: string;
  batch: number;
  n: number;
  hq: number;
  hkv: number;
  dk: number;
  dv: number;
  decays: number[];
  chunkSize?: number;
  initialState?: boolean;
  dFinalState?: boolean;
  cuSeqlens?: number[];
  scale?: number;
  forwardOnly?: boolean;
  stateBindingBytes?: number;
}

function expectClose(label: string, expected: ArrayLike<number>, actual: ArrayLike<number>, magnitude = 1) {
  const result = compare(expected, actual, toleranceFor('f32', magnitude));
  expect(result.ok, `${label}: ${JSON.stringify(result)}`).toBe(true);
}

function inputs(c: Case, seed: number) {
  const sequences = c.cuSeqlens ? c.cuSeqlens.length - 1 : c.batch;
  const stateSize = sequences * c.hq * c.dk * c.dv;
  return {
    q: randn(c.batch * c.n * c.hq * c.dk, seed),
    k: randn(c.batch * c.n * c.hkv * c.dk, seed + 1),
    v: randn(c.batch * c.n * c.hkv * c.dv, seed + 2),
    dO: randn(c.batch * c.n * c.hq * c.dv, seed + 3),
    initialState: c.initialState ? randn(stateSize, seed + 4, 0.5) : undefined,
    dFinalState: c.dFinalState ? randn(stateSize, seed + 5, 0.5) : undefined,
    stateShape: [sequences, c.hq, c.dk, c.dv],
  };
}

const CASES: Case[] = [
  { name: 'n = 1', batch: 2, n: 1, hq: 2, hkv: 2, dk: 8, dv: 8, decays: [0.9, 0.5] },
  { name: 'n < chunk', batch: 1, n: 13, hq: 2, hkv: 1, dk: 16, dv: 8, decays: [0.95, 0.7] },
  {
    name: 'n not a multiple of the chunk, several chunks, GQA',
    batch: 2,
    n: 75,
    hq: 4,
    hkv: 2,
    dk: 16,
    dv: 24,
    decays: [0.99, 0.9, 0.6, 0.3],
    chunkSize: 32,
  },
  {
    name: 'decays near 0 and near 1, dims not multiples of 16',
    batch: 1,
    n: 70,
    hq: 3,
    hkv: 3,
    dk: 20,
    dv: 36,
    decays: [1e-6, Math.exp(-1e-5), 0],
    chunkSize: 32,
  },
  {
    name: 'initial state and dFinalState, MQA, scale 1',
    batch: 2,
    n: 40,
    hq: 2,
    hkv: 1,
    dk: 8,
    dv: 16,
    decays: [0.97, 0.8],
    initialState: true,
    dFinalState: true,
    scale: 1,
  },
  {
    name: 'varlen 1, 29, 70 (and an empty one), initial state',
    batch: 1,
    n: 100,
    hq: 2,
    hkv: 1,
    dk: 16,
    dv: 16,
    decays: [0.9, 0.99],
    cuSeqlens: [0, 1, 30, 30, 100],
    initialState: true,
    dFinalState: true,
  },
  {
    // dk · dv = 35 is no multiple of 4: the scan moves one entry per invocation instead of a vec4.
    name: 'odd head dims, nine chunks (scan steps of four chunks and a ragged rest)',
    batch: 1,
    n: 270,
    hq: 2,
    hkv: 1,
    dk: 5,
    dv: 7,
    decays: [0.97, 0.6],
    chunkSize: 32,
    initialState: true,
    dFinalState: true,
  },
  {
    // 2 + 3 chunks of 32; a binding of 3 chunks' states (2 heads x 8 x 16 x 4 bytes each) splits the
    // states inside the second sequence, so the scans cross from one binding into the other.
    name: 'states split over two bindings, varlen, initial state',
    batch: 1,
    n: 130,
    hq: 2,
    hkv: 1,
    dk: 8,
    dv: 16,
    decays: [0.95, 0.8],
    chunkSize: 32,
    cuSeqlens: [0, 50, 130],
    initialState: true,
    dFinalState: true,
    stateBindingBytes: 3 * 2 * 8 * 16 * 4,
  },
  // Forward only: SwiftShader takes tens of seconds to compile each chunk-128 kernel; the backward's
  // dependence on the chunk size is the same code, exercised at 32 and 64.
  {
    name: 'chunk 128, two chunks, forward',
    forwardOnly: true,
    batch: 1,
    n: 150,
    hq: 1,
    hkv: 1,
    dk: 32,
    dv: 32,
    decays: [0.98],
    chunkSize: 128,
  },
];

describe('lightningAttention (chunkwise) against the reference', () => {
  let gpu: Gpu;
  beforeAll(async () => {
    gpu = await testGpu();
  });
  afterAll(() => gpu.destroy());

  for (const tier of ['portable', 'subgroups'] as const satisfies readonly Tier[]) {
    for (const [i, c] of CASES.entries()) {
      it(`${tier}: ${c.name}`, async () => {
        if (!gpu.caps.tiers.includes(tier)) return;
        const x = inputs(c, 100 * i + 1);
        const shape = { batch: c.batch, n: c.n, hq: c.hq, hkv: c.hkv, dk: c.dk, dv: c.dv };
        const refOpts = {
          ...shape,
          ...(c.cuSeqlens && { cuSeqlens: c.cuSeqlens }),
          ...(c.scale !== undefined && { scale: c.scale }),
        };
        const refIn = {
          q: x.q,
          k: x.k,
          v: x.v,
          decays: c.decays,
          ...(x.initialState && { initialState: x.initialState }),
        };
        const ref = refForward(refIn, refOpts);
        const rec = refRecurrent(refIn, refOpts);
        expectClose('recurrent == quadratic (reference)', ref.o, rec.o);
        using q = Tensor.from(gpu, x.q, [c.batch, c.n, c.hq, c.dk]);
        using k = Tensor.from(gpu, x.k, [c.batch, c.n, c.hkv, c.dk]);
        using v = Tensor.from(gpu, x.v, [c.batch, c.n, c.hkv, c.dv]);
        using dO = Tensor.from(gpu, x.dO, [c.batch, c.n, c.hq, c.dv]);
        using init = x.initialState ? Tensor.from(gpu, x.initialState, x.stateShape) : undefined;
        using dFinal = x.dFinalState ? Tensor.from(gpu, x.dFinalState, x.stateShape) : undefined;
        const before = gpu.memory().liveBuffers;
        const result = await lightningAttention(gpu, q, k, v, {
          decays: c.decays,
          tier,
          ...(c.chunkSize && { chunkSize: c.chunkSize }),
          ...(c.scale !== undefined && { scale: c.scale }),
          ...(init && { initialState: init }),
          ...(c.cuSeqlens && { cuSeqlens: c.cuSeqlens }),
          ...(c.stateBindingBytes && { stateBindingBytes: c.stateBindingBytes }),
        });
        expectClose('o', ref.o, await result.o.read(), 4);
        expectClose('o vs recurrent', rec.o, await result.o.read(), 4);
        expectClose('finalState', ref.finalState, await result.finalState.read(), 8);
        if (c.forwardOnly) {
          result.o.dispose();
          result.finalState.dispose();
          disposeLightningContext(result.ctx);
          expect(gpu.memory().liveBuffers).toBe(before);
          return;
        }
        const grads = await lightningAttentionBackward(result.ctx, dO, dFinal);
        const refGrads = refBackward(
          refIn,
          { dO: x.dO, ...(x.dFinalState && { dFinalState: x.dFinalState }) },
          refOpts,
        );
        expectClose('dq', refGrads.dq, await grads.dq.read(), 8);
        expectClose('dk', refGrads.dk, await grads.dk.read(), 8);
        expectClose('dv', refGrads.dv, await grads.dv.read(), 8);
        if (c.initialState || c.dFinalState) {
          expect(grads.dInitialState).toBeDefined();
          expectClose('dInitialState', refGrads.dInitialState, await grads.dInitialState!.read(), 8);
        } else {
          expect(grads.dInitialState).toBeUndefined();
        }
        for (const t of Object.values(grads)) t?.dispose();
        result.o.dispose();
        result.finalState.dispose();
        disposeLightningContext(result.ctx);
        expect(gpu.memory().liveBuffers).toBe(before);
      });
    }
  }

  it('normalizeQk equals the reference on l2-normalised q and k, backward through the normalisation', async () => {
    const c = { batch: 1, n: 50, hq: 2, hkv: 2, dk: 16, dv: 8 };
    const q0 = randn(c.n * c.hq * c.dk, 7, 3);
    const k0 = randn(c.n * c.hkv * c.dk, 8, 3);
    const v0 = randn(c.n * c.hkv * c.dv, 9);
    const dO0 = randn(c.n * c.hq * c.dv, 10);
    const decays = [0.9, 0.99];
    const qn = l2Normalize(q0, c.dk);
    const kn = l2Normalize(k0, c.dk);
    const ref = refForward({ q: qn, k: kn, v: v0, decays }, c);
    const refGrads = refBackward({ q: qn, k: kn, v: v0, decays }, { dO: dO0 }, c);
    using q = Tensor.from(gpu, q0, [1, c.n, c.hq, c.dk]);
    using k = Tensor.from(gpu, k0, [1, c.n, c.hkv, c.dk]);
    using v = Tensor.from(gpu, v0, [1, c.n, c.hkv, c.dv]);
    using dO = Tensor.from(gpu, dO0, [1, c.n, c.hq, c.dv]);
    const result = await lightningAttention(gpu, q, k, v, { decays, normalizeQk: true });
    expectClose('o', ref.o, await result.o.read(), 4);
    const grads = await lightningAttentionBackward(result.ctx, dO);
    expectClose('dq', l2NormalizeBackward(q0, refGrads.dq, c.dk), await grads.dq.read(), 8);
    expectClose('dk', l2NormalizeBackward(k0, refGrads.dk, c.dk), await grads.dk.read(), 8);
    expectClose('dv', refGrads.dv, await grads.dv.read(), 8);
    for (const t of Object.values(grads)) t?.dispose();
    result.o.dispose();
    result.finalState.dispose();
    disposeLightningContext(result.ctx);
  });

  it('is deterministic: two runs give the same bits', async () => {
    const c = { n: 90, hq: 4, hkv: 1, dk: 16, dv: 16 };
    using q = Tensor.from(gpu, randu(c.n * c.hq * c.dk, 1), [1, c.n, c.hq, c.dk]);
    using k = Tensor.from(gpu, randu(c.n * c.hkv * c.dk, 2), [1, c.n, c.hkv, c.dk]);
    using v = Tensor.from(gpu, randu(c.n * c.hkv * c.dv, 3), [1, c.n, c.hkv, c.dv]);
    using dO = Tensor.from(gpu, randu(c.n * c.hq * c.dv, 4), [1, c.n, c.hq, c.dv]);
    const bits: string[] = [];
    for (let run = 0; run < 2; run++) {
      const result = await lightningAttention(gpu, q, k, v, { slopes: [0.1, 0.2, 0.3, 0.4] });
      const grads = await lightningAttentionBackward(result.ctx, dO);
      const outs = await Promise.all([result.o, grads.dq, grads.dk, grads.dv].map((t) => t.read()));
      bits.push(outs.map((o) => Buffer.from(o.buffer).toString('base64')).join());
      for (const t of [result.o, result.finalState, grads.dq, grads.dk, grads.dv]) t.dispose();
      disposeLightningContext(result.ctx);
    }
    expect(bits[0]).toBe(bits[1]);
  });

  it('accepts slopes as exp(-slope) decays', async () => {
    const c = { batch: 1, n: 20, hq: 2, hkv: 2, dk: 8, dv: 8 };
    const slopes = [0.5, 0.01];
    const x = { q: randn(320, 1), k: randn(320, 2), v: randn(320, 3) };
    const ref = refForward({ ...x, decays: slopes.map((s) => Math.exp(-s)) }, c);
    using q = Tensor.from(gpu, x.q, [1, 20, 2, 8]);
    using k = Tensor.from(gpu, x.k, [1, 20, 2, 8]);
    using v = Tensor.from(gpu, x.v, [1, 20, 2, 8]);
    const result = await lightningAttention(gpu, q, k, v, { slopes });
    expectClose('o', ref.o, await result.o.read(), 4);
    result.o.dispose();
    result.finalState.dispose();
    disposeLightningContext(result.ctx);
    expect(WebAttnError).toBeDefined();
  });
});

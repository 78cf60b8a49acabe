import { type Gpu, Tensor, WebAttnError } from '@webattn/core';
import { testGpu } from '@webattn/core/testing';
import {
  compare,
  randn,
  lightningAttentionDecode as refDecode,
  lightningAttention as refForward,
  toleranceFor,
} from '@webattn/reference';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { disposeLightningContext, lightningAttention, lightningDecode } from '../src/index.js';

function expectClose(label: string, expected: ArrayLike<number>, actual: ArrayLike<number>, magnitude = 1) {
  const result = compare(expected, actual, toleranceFor('f32', magnitude));
  expect(result.ok, `${label}: ${JSON.stringify(result)}`).toBe(true);
}

/** Token t of a `[batch, n, heads, dim]` array, as `[batch, heads, dim]`. */
function tokenOf(x: Float32Array, batch: number, n: number, heads: number, dim: number, t: number) {
  const out = new Float32Array(batch * heads * dim);
  for (let b = 0; b < batch; b++)
    out.set(x.subarray((b * n + t) * heads * dim, (b * n + t + 1) * heads * dim), b * heads * dim);
  return out;
}

describe('lightningDecode', () => {
  let gpu: Gpu;
  beforeAll(async () => {
    gpu = await testGpu();
  });
  afterAll(() => gpu.destroy());

  it('matches the reference step, and continuing a prefix gives the last row of the chunkwise forward', async () => {
    const [batch, n, hq, hkv, dk, dv] = [3, 37, 4, 2, 16, 24];
    const decays = [0.99, 0.9, 0.5, 0];
    const q0 = randn(batch * n * hq * dk, 1);
    const k0 = randn(batch * n * hkv * dk, 2);
    const v0 = randn(batch * n * hkv * dv, 3);
    const full = refForward({ q: q0, k: k0, v: v0, decays }, { batch, n, hq, hkv, dk, dv });
    // The prefix of n - 1 tokens, chunkwise on the GPU, then one decode step.
    const prefix = (x: Float32Array, heads: number, dim: number) => {
      const out = new Float32Array(batch * (n - 1) * heads * dim);
      for (let b = 0; b < batch; b++)
        out.set(x.subarray(b * n * heads * dim, (b * n + n - 1) * heads * dim), b * (n - 1) * heads * dim);
      return out;
    };
    using qp = Tensor.from(gpu, prefix(q0, hq, dk), [batch, n - 1, hq, dk]);
    using kp = Tensor.from(gpu, prefix(k0, hkv, dk), [batch, n - 1, hkv, dk]);
    using vp = Tensor.from(gpu, prefix(v0, hkv, dv), [batch, n - 1, hkv, dv]);
    const pre = await lightningAttention(gpu, qp, kp, vp, { decays });
    disposeLightningContext(pre.ctx);
    pre.o.dispose();
    const [qt, kt, vt] = [
      tokenOf(q0, batch, n, hq, dk, n - 1),
      tokenOf(k0, batch, n, hkv, dk, n - 1),
      tokenOf(v0, batch, n, hkv, dv, n - 1),
    ];
    using qT = Tensor.from(gpu, qt, [batch, hq, dk]);
    using kT = Tensor.from(gpu, kt, [batch, hkv, dk]);
    using vT = Tensor.from(gpu, vt, [batch, hkv, dv]);
    const before = gpu.memory().liveBuffers;
    const step = await lightningDecode(gpu, qT, kT, vT, pre.finalState, { decays });
    const lastRow = new Float32Array(batch * hq * dv);
    for (let b = 0; b < batch; b++)
      lastRow.set(full.o.subarray((b * n + n - 1) * hq * dv, (b * n + n) * hq * dv), b * hq * dv);
    expectClose('o == last row of the forward', lastRow, await step.o.read(), 4);
    expectClose('state == final state of the forward', full.finalState, await step.state.read(), 8);
    const ref = refDecode(
      { q: qt, k: kt, v: vt, decays, state: await pre.finalState.read() },
      { batch, hq, hkv, dk, dv },
    );
    expectClose('o == reference decode', ref.o, await step.o.read());
    // In place: the same numbers, written over the given state.
    const inPlace = await lightningDecode(gpu, qT, kT, vT, pre.finalState, { decays, inPlace: true });
    expect(inPlace.state).toBe(pre.finalState);
    expectClose('in place o', ref.o, await inPlace.o.read());
    expectClose('in place state', ref.state, await pre.finalState.read());
    for (const t of [step.o, step.state, inPlace.o]) t.dispose();
    expect(gpu.memory().liveBuffers).toBe(before);
    pre.finalState.dispose();
  });

  it('steps from zeros with slopes and scale 1, and rejects bad input', async () => {
    const [batch, hq, dk, dv] = [2, 2, 8, 8];
    const slopes = [0.25, 0.0625];
    const x = { q: randn(batch * hq * dk, 4), k: randn(batch * hq * dk, 5), v: randn(batch * hq * dv, 6) };
    using q = Tensor.from(gpu, x.q, [batch, hq, dk]);
    using k = Tensor.from(gpu, x.k, [batch, hq, dk]);
    using v = Tensor.from(gpu, x.v, [batch, hq, dv]);
    using state = Tensor.zeros(gpu, [batch, hq, dk, dv]);
    const step = await lightningDecode(gpu, q, k, v, state, { slopes, scale: 1 });
    const ref = refDecode(
      { ...x, decays: slopes.map((s) => Math.exp(-s)), state: new Float32Array(batch * hq * dk * dv) },
      { batch, hq, hkv: hq, dk, dv, scale: 1 },
    );
    expectClose('o', ref.o, await step.o.read());
    step.o.dispose();
    step.state.dispose();
    using wrong = Tensor.zeros(gpu, [batch, hq, dk, dv + 1]);
    const cases: [() => Promise<unknown>, RegExp][] = [
      [() => lightningDecode(gpu, q, k, v, wrong, { slopes }), /state: expected shape \[2, 2, 8, 8\]/],
      [() => lightningDecode(gpu, q, k, v, state, {}), /exactly one of decays and slopes/],
      [
        () => lightningDecode(gpu, q, k, v, state, { decays: [2, 0.5] }),
        /decays\[0\]: expected a value in \[0, 1\]/,
      ],
      [
        () => lightningDecode(gpu, q, q, v, state, { slopes, scale: Number.NaN }),
        /scale: expected a finite number/,
      ],
      [() => lightningDecode(gpu, state, k, v, state, { slopes }), /rank 3/],
    ];
    for (const [call, message] of cases) {
      const error = await call().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(WebAttnError);
      expect((error as Error).message).toMatch(message);
    }
  });
});

import { type Gpu, Tensor } from '@webattn/core';
import { testGpu } from '@webattn/core/testing';
import {
  compare,
  randn,
  nsaBackward as referenceBackward,
  nsaForward as referenceForward,
  toleranceFor,
} from '@webattn/reference';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { disposeNsaAttentionGradients, NsaAttention, readSelection, resolveNsaConfig } from '../src/index.js';

const [batch, n, hq, hkv, d, dv] = [2, 21, 4, 2, 16, 8];
const SMALL = {
  kernelSize: 4,
  stride: 2,
  selectSize: 8,
  topN: 3,
  windowSize: 6,
  initBlocks: 1,
  localBlocks: 1,
};

function expectClose(label: string, expected: ArrayLike<number>, actual: ArrayLike<number>) {
  const result = compare(expected, actual, toleranceFor('f32', 4));
  expect(result.ok, `${label}: ${JSON.stringify(result)}`).toBe(true);
}

describe('NsaAttention on SwiftShader against the reference', () => {
  let gpu: Gpu;
  beforeAll(async () => {
    gpu = await testGpu();
  });
  afterAll(() => gpu.destroy());

  it("computes the gate logits from q, and returns dq with the gate share, dW and db of the gate, and the compressors' gradients", async () => {
    const config = resolveNsaConfig({
      heads: hq,
      kvHeads: hkv,
      headDim: d,
      vHeadDim: dv,
      kernelSize: 4,
      stride: 2,
      blockSize: 8,
      topN: 3,
      windowSize: 6,
      numInitBlocks: 1,
      numLocalBlocks: 1,
    });
    const rows = batch * n * hq;
    const x = {
      q: randn(rows * d, 1),
      k: randn(batch * n * hkv * d, 2),
      v: randn(batch * n * hkv * dv, 3),
      w: randn(3 * d, 4).map((t) => 0.3 * t),
      b: randn(3, 5),
      dO: randn(rows * dv, 6),
      kWeight: randn(4, 7).map((t) => 1 + 0.3 * t),
      kPe: randn(4 * d, 8).map((t) => 0.2 * t),
    };
    const before = gpu.memory().liveBuffers;
    const t = {
      q: Tensor.from(gpu, x.q, [batch, n, hq, d]),
      k: Tensor.from(gpu, x.k, [batch, n, hkv, d]),
      v: Tensor.from(gpu, x.v, [batch, n, hkv, dv]),
      w: Tensor.from(gpu, x.w, [3, d]),
      b: Tensor.from(gpu, x.b, [3]),
      dO: Tensor.from(gpu, x.dO, [batch, n, hq, dv]),
      kWeight: Tensor.from(gpu, x.kWeight, [4]),
      kPe: Tensor.from(gpu, x.kPe, [4, d]),
    };
    const module = new NsaAttention(gpu, config, {
      gateWeight: t.w,
      gateBias: t.b,
      compressors: { k: { weight: t.kWeight, pe: t.kPe } },
    });
    const out = await module.forward(t.q, t.k, t.v);
    const grads = await module.backward(out, t.dO);
    // The reference with the gate logits computed here, on the GPU's selection.
    const gates = new Float32Array(rows * 3);
    for (let r = 0; r < rows; r++)
      for (let o = 0; o < 3; o++) {
        let s = x.b[o]!;
        for (let e = 0; e < d; e++) s += x.q[r * d + e]! * x.w[o * d + e]!;
        gates[r * 3 + o] = s;
      }
    const selection = await readSelection(out.forward.selection);
    const inputs = {
      q: x.q,
      k: x.k,
      v: x.v,
      gates,
      selection,
      kCompressor: { method: 'weighted' as const, weight: x.kWeight, pe: x.kPe },
    };
    const options = { batch, n, hq, hkv, dqk: d, dv, ...SMALL };
    const ref = referenceForward(inputs, options);
    const refGrads = referenceBackward(inputs, x.dO, options);
    expectClose('o', ref.o, await out.o.read());
    const dq = Float32Array.from(refGrads.dq);
    const dw = new Float32Array(3 * d);
    const db = new Float32Array(3);
    for (let r = 0; r < rows; r++)
      for (let o = 0; o < 3; o++) {
        const dg = refGrads.dGates[r * 3 + o]!;
        db[o]! += dg;
        for (let e = 0; e < d; e++) {
          dq[r * d + e]! += dg * x.w[o * d + e]!;
          dw[o * d + e]! += dg * x.q[r * d + e]!;
        }
      }
    expectClose('dq', dq, await grads.dq.read());
    expectClose('dk', refGrads.dk, await grads.dk.read());
    expectClose('dv', refGrads.dv, await grads.dv.read());
    expectClose('d gate weight', dw, await grads.dGateWeight.read());
    expectClose('d gate bias', db, await grads.dGateBias.read());
    expectClose(
      'd k compressor weight',
      refGrads.kCompressor.weight!,
      await grads.kCompressor!.weight.read(),
    );
    expect(grads.vCompressor).toBeUndefined();
    disposeNsaAttentionGradients(grads);
    out.dispose();
    for (const tensor of Object.values(t)) tensor.dispose();
    expect(gpu.memory().liveBuffers).toBe(before);
  });

  it('rejects parameters of the wrong shape', () => {
    const config = resolveNsaConfig({ heads: hq, kvHeads: hkv, headDim: d });
    using w = Tensor.from(gpu, randn(3 * 8, 1), [3, 8]);
    using b = Tensor.from(gpu, randn(3, 2), [3]);
    expect(() => new NsaAttention(gpu, config, { gateWeight: w, gateBias: b })).toThrow(
      /parameters.gateWeight: expected shape \[3, 16\], got \[3, 8\]/,
    );
  });
});

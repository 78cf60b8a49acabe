import { type Gpu, Tensor } from '@webattn/core';
import { testGpu } from '@webattn/core/testing';
import {
  compare,
  nsaVarlenBackward,
  nsaVarlenForward,
  type NsaConfig as ReferenceConfig,
  randn,
  nsaBackward as referenceBackward,
  nsaForward as referenceForward,
  toleranceFor,
} from '@webattn/reference';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  disposeNsaGradients as disposeGradients,
  disposeNsaForward,
  type NsaForwardResult,
  nsaBackward,
  nsaForward,
  readSelection,
  resolveNsaConfig,
  resolveNsaConfigFromReference,
} from '../src/index.js';

interface Case {
  name: string;
  batch: number;
  n: number;
  /** Packed sequence lengths instead of `batch` x `n`. */
  lengths?: number[];
  hq: number;
  hkv: number;
  dqk: number;
  dv: number;
  config: ReferenceConfig;
  /** All-zero queries: every compressed probability of a row is equal, so block scores tie exactly. */
  zeroQ?: boolean;
  /** A compressor with random parameters for keys and values instead of the mean. */
  compressor?: 'weighted' | 'linear' | 'swiglu' | 'sigmoid-mul';
}

// Small hyper-parameters so that every rule shows up in a few dozen tokens.
const SMALL: ReferenceConfig = {
  kernelSize: 4,
  stride: 2,
  selectSize: 8,
  topN: 3,
  windowSize: 6,
  initBlocks: 1,
  localBlocks: 2,
};

const CASES: Case[] = [
  { name: 'GQA 2, n off every block size', batch: 2, n: 37, hq: 4, hkv: 2, dqk: 16, dv: 16, config: SMALL },
  {
    name: 'n < kernelSize: no compressed block',
    batch: 1,
    n: 3,
    hq: 2,
    hkv: 1,
    dqk: 16,
    dv: 16,
    config: SMALL,
  },
  { name: 'n just above topN * selectSize', batch: 1, n: 25, hq: 2, hkv: 2, dqk: 16, dv: 16, config: SMALL },
  { name: 'GQA 16, dqk 32 != dv 16', batch: 1, n: 30, hq: 16, hkv: 1, dqk: 32, dv: 16, config: SMALL },
  // The model head dims: dqk 128 and 192 (a rope part on top of 128) with dv 128.
  { name: 'dqk 128, dv 128, GQA 2', batch: 1, n: 41, hq: 2, hkv: 1, dqk: 128, dv: 128, config: SMALL },
  { name: 'dqk 192 != dv 128, GQA 2', batch: 1, n: 41, hq: 2, hkv: 1, dqk: 192, dv: 128, config: SMALL },
  // A head dim off multiples of 4: selection reads q and the keys one element at a time.
  { name: 'GQA 3, dqk 6 (scalar loads)', batch: 1, n: 33, hq: 3, hkv: 1, dqk: 6, dv: 8, config: SMALL },
  // 128 heads' scores overflow 32 KiB of workgroup memory: the selected branch's row kernel runs.
  {
    name: 'GQA 128 (the row kernel for the selected branch)',
    batch: 1,
    n: 20,
    hq: 128,
    hkv: 1,
    dqk: 16,
    dv: 16,
    config: SMALL,
  },
  {
    name: 'the Qwen variant (initBlocks 0, localBlocks 1), overlapping kernel 8 stride 2',
    batch: 1,
    n: 41,
    hq: 2,
    hkv: 1,
    dqk: 16,
    dv: 16,
    config: { ...SMALL, kernelSize: 8, stride: 2, initBlocks: 0, localBlocks: 1 },
  },
  {
    name: 'packed sequences of 1, 29 and 17 tokens',
    batch: 1,
    n: 47,
    lengths: [1, 29, 17],
    hq: 4,
    hkv: 2,
    dqk: 16,
    dv: 16,
    config: SMALL,
  },
  {
    name: 'exact ties (q = 0): the lowest index wins',
    batch: 1,
    n: 64,
    hq: 2,
    hkv: 1,
    dqk: 16,
    dv: 16,
    // Three of the five slots picked by score (one init block, the own block forced).
    config: { ...SMALL, topN: 5, localBlocks: 1 },
    zeroQ: true,
  },
  {
    name: "weighted pooling of keys and values (the Qwen variant), with its parameters' gradients",
    batch: 2,
    n: 29,
    hq: 4,
    hkv: 2,
    dqk: 16,
    dv: 8,
    config: { ...SMALL, initBlocks: 0, localBlocks: 1 },
    compressor: 'weighted',
  },
  {
    name: 'weighted pooling over packed sequences of 3, 30 and 11 tokens',
    batch: 1,
    n: 44,
    lengths: [3, 30, 11],
    hq: 2,
    hkv: 1,
    dqk: 16,
    dv: 16,
    config: SMALL,
    compressor: 'weighted',
  },
  {
    name: 'learned linear compressor',
    batch: 1,
    n: 33,
    hq: 4,
    hkv: 2,
    dqk: 16,
    dv: 8,
    config: SMALL,
    compressor: 'linear',
  },
  {
    name: 'learned swiglu compressor over packed sequences of 9 and 26 tokens',
    batch: 1,
    n: 35,
    lengths: [9, 26],
    hq: 2,
    hkv: 1,
    dqk: 16,
    dv: 16,
    config: SMALL,
    compressor: 'swiglu',
  },
  {
    name: 'learned sigmoid-mul compressor',
    batch: 2,
    n: 21,
    hq: 2,
    hkv: 2,
    dqk: 8,
    dv: 16,
    config: SMALL,
    compressor: 'sigmoid-mul',
  },
  { name: 'reference defaults, n = 1100', batch: 1, n: 1100, hq: 2, hkv: 1, dqk: 16, dv: 16, config: {} },
];

function configOf(c: Case) {
  return resolveNsaConfigFromReference(
    { heads: c.hq, kvHeads: c.hkv, headDim: c.dqk, vHeadDim: c.dv },
    c.config,
  );
}

function expectClose(label: string, expected: ArrayLike<number>, actual: ArrayLike<number>, magnitude = 1) {
  const result = compare(expected, actual, toleranceFor('f32', magnitude));
  expect(result.ok, `${label}: ${JSON.stringify(result)}`).toBe(true);
}

/** `[tokens, heads]` (the selected branch's lse) to the reference's `[batch, heads, n]` or `[heads, total]`. */
function headMajor(x: Float32Array, batch: number, n: number, heads: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let b = 0; b < batch; b++)
    for (let t = 0; t < n; t++)
      for (let h = 0; h < heads; h++) out[(b * heads + h) * n + t] = x[(b * n + t) * heads + h]!;
  return out;
}

/**
 * The GPU's selection against the reference's, as sets per (token, KV head): a block only one of
 * them picked must score, in the reference, within `slack` of the lowest-scoring block the
 * reference picked by score (a near tie resolved the other way); anything else is a wrong selection.
 */
function expectSameSelection(
  gpu: Int32Array,
  ref: Int32Array,
  scores: Float32Array,
  topN: number,
  blocks: number,
  slack = 1e-5,
) {
  const rows = gpu.length / topN;
  let swaps = 0;
  for (let r = 0; r < rows; r++) {
    const mine = new Set(Array.from(gpu.subarray(r * topN, (r + 1) * topN)).filter((x) => x >= 0));
    const theirs = new Set(Array.from(ref.subarray(r * topN, (r + 1) * topN)).filter((x) => x >= 0));
    expect(mine.size, `row ${r}: slot count`).toBe(theirs.size);
    const score = (J: number) => scores[r * blocks + J]!;
    const lowest = Math.min(...[...theirs].map(score));
    for (const J of mine) {
      if (theirs.has(J)) continue;
      swaps++;
      expect(
        Math.abs(score(J) - lowest),
        `row ${r}: block ${J} picked over ${[...theirs]}`,
      ).toBeLessThanOrEqual(slack);
    }
  }
  return swaps;
}

describe('nsaForward and nsaBackward on SwiftShader against the reference', () => {
  let gpu: Gpu;
  beforeAll(async () => {
    gpu = await testGpu();
  });
  afterAll(() => gpu.destroy());

  for (const c of CASES) {
    it(`${c.name}: selection, every branch, o, and every gradient`, async () => {
      const tokens = c.lengths ? c.lengths.reduce((a, b) => a + b, 0) : c.batch * c.n;
      const dims = c.lengths ? [tokens] : [c.batch, c.n];
      const inputs = {
        q: c.zeroQ ? new Float32Array(tokens * c.hq * c.dqk) : randn(tokens * c.hq * c.dqk, 31),
        k: randn(tokens * c.hkv * c.dqk, 32),
        v: randn(tokens * c.hkv * c.dv, 33),
        gates: randn(tokens * c.hq * 3, 34),
      };
      const dO = randn(tokens * c.hq * c.dv, 35);
      const cu = c.lengths && [
        0,
        ...c.lengths.map((_, i) => c.lengths!.slice(0, i + 1).reduce((a, b) => a + b, 0)),
      ];
      using q = Tensor.from(gpu, inputs.q, [...dims, c.hq, c.dqk]);
      using k = Tensor.from(gpu, inputs.k, [...dims, c.hkv, c.dqk]);
      using v = Tensor.from(gpu, inputs.v, [...dims, c.hkv, c.dv]);
      using g = Tensor.from(gpu, inputs.gates, [...dims, c.hq, 3]);
      using tdo = Tensor.from(gpu, dO, [...dims, c.hq, c.dv]);
      const config = configOf(c);
      // Random parameters of the size a trained compressor's have: pooling weights around 1 and
      // small position embeddings; linear maps scaled by 1 / sqrt(fan-in).
      const l = config.kernelSize;
      const params = (dim: number, seed: number) => {
        if (c.compressor === 'weighted') {
          return {
            reference: {
              method: 'weighted' as const,
              weight: randn(l, seed).map((x) => 1 + 0.3 * x),
              pe: randn(l * dim, seed + 1).map((x) => 0.2 * x),
            },
            shapes: { weight: [l], pe: [l, dim] },
          };
        }
        const method = c.compressor!;
        const features = method === 'linear' ? dim : 2 * dim;
        const weight = randn(features * l * dim, seed).map((x) => x / Math.sqrt(l * dim));
        return { reference: { method, weight }, shapes: { weight: [features, l * dim] } };
      };
      const kParams = c.compressor && params(c.dqk, 36);
      const vParams = c.compressor && params(c.dv, 38);
      if (kParams && vParams)
        Object.assign(inputs, { kCompressor: kParams.reference, vCompressor: vParams.reference });
      const tensors = (x: NonNullable<typeof kParams>) => {
        const weight = Tensor.from(gpu, x.reference.weight, x.shapes.weight);
        if (x.reference.method !== 'weighted') return { method: x.reference.method, weight };
        return { weight, pe: Tensor.from(gpu, x.reference.pe, x.shapes.pe!) };
      };
      const compressors = kParams && vParams ? { k: tensors(kParams), v: tensors(vParams) } : undefined;
      const result: NsaForwardResult = await nsaForward(gpu, config, q, k, v, g, {
        ...(cu && { cuSeqlens: cu }),
        ...(compressors && { compressors }),
      });
      try {
        const shape = { hq: c.hq, hkv: c.hkv, dqk: c.dqk, dv: c.dv, ...c.config };
        const dense = { batch: c.batch, n: c.n, ...shape };
        // The reference's own selection, to check the GPU's against.
        const selection = await readSelection(result.selection);
        if (!cu) {
          const ref = referenceForward(inputs, dense);
          const blocks = ref.blockScores.length / (tokens * c.hkv);
          // Exact ties have one right answer; otherwise near ties may resolve either way.
          const swaps = expectSameSelection(
            selection,
            ref.selection,
            ref.blockScores,
            config.topN,
            blocks,
            c.zeroQ ? 0 : 1e-5,
          );
          if (c.zeroQ) expect(swaps).toBe(0);
        }
        // Everything downstream of the selection, on the GPU's selection.
        const given = { ...inputs, selection };
        const ref = cu ? nsaVarlenForward(given, cu, shape) : referenceForward(given, dense);
        expectClose('o', ref.o, await result.o.read());
        expectClose('selected o', ref.selected.o, await result.selected.o.read());
        expectClose('window o', ref.window.o, await result.window.o.read());
        expectClose('window lse', ref.window.lse, await result.window.lse.read());
        const [batch, n] = cu ? [1, tokens] : [c.batch, c.n];
        expectClose(
          'selected lse',
          ref.selected.lse,
          headMajor(await result.selected.lse.read(), batch, n, c.hq),
        );
        if (result.compressed) {
          expectClose('compressed o', ref.compressed.o, await result.compressed.o.read());
          // Rows that see no compressed block: lse -inf here, 0 in the reference (the spec's stored value).
          const lse = (await result.compressed.lse.read()).map((x) =>
            x === Number.NEGATIVE_INFINITY ? 0 : x,
          );
          expectClose('compressed lse', ref.compressed.lse, lse);
        } else {
          expect(ref.compressed.o.every((x) => x === 0)).toBe(true);
        }
        const grads = await nsaBackward(result, tdo);
        const refGrads = cu ? nsaVarlenBackward(given, dO, cu, shape) : referenceBackward(given, dO, dense);
        expectClose('dq', refGrads.dq, await grads.dq.read(), 4);
        expectClose('dk', refGrads.dk, await grads.dk.read(), 4);
        expectClose('dv', refGrads.dv, await grads.dv.read(), 4);
        expectClose('dg', refGrads.dGates, await grads.dg.read(), 4);
        if (c.compressor) {
          expect(grads.kCompressor && grads.vCompressor).toBeDefined();
          expectClose('d k weight', refGrads.kCompressor.weight!, await grads.kCompressor!.weight.read(), 4);
          expectClose('d v weight', refGrads.vCompressor.weight!, await grads.vCompressor!.weight.read(), 4);
        }
        if (c.compressor === 'weighted') {
          // pe shifts every compressed key by the same vector, which softmax ignores: its gradient is
          // 0 up to rounding, so it is checked in absolute terms.
          const maxAbs = (x: ArrayLike<number>) => Math.max(...Array.from(x, Math.abs));
          expect(maxAbs(refGrads.kCompressor.pe!)).toBeLessThan(1e-9);
          expect(maxAbs(await grads.kCompressor!.pe!.read())).toBeLessThan(1e-5);
          expectClose('d v pe', refGrads.vCompressor.pe!, await grads.vCompressor!.pe!.read(), 4);
        }
        if (!c.compressor) expect(grads.kCompressor ?? grads.vCompressor).toBeUndefined();
        disposeGradients(grads);
      } finally {
        disposeNsaForward(result);
        for (const x of [compressors?.k, compressors?.v]) {
          x?.weight.dispose();
          if (x && 'pe' in x) x.pe?.dispose();
        }
      }
    });
  }

  it('frees everything it allocates and gives the same bits every run', async () => {
    const config = resolveNsaConfig({
      heads: 4,
      kvHeads: 2,
      headDim: 16,
      kernelSize: 4,
      stride: 2,
      blockSize: 8,
      topN: 3,
      windowSize: 6,
    });
    using q = Tensor.from(gpu, randn(40 * 4 * 16, 1), [1, 40, 4, 16]);
    using k = Tensor.from(gpu, randn(40 * 2 * 16, 2), [1, 40, 2, 16]);
    using g = Tensor.from(gpu, randn(40 * 4 * 3, 3), [1, 40, 4, 3]);
    const before = gpu.memory().liveBuffers;
    const bits: string[] = [];
    for (let run = 0; run < 2; run++) {
      const result = await nsaForward(gpu, config, q, k, k, g);
      const grads = await nsaBackward(result, result.o);
      const outputs = await Promise.all(
        [result.o, result.selection, grads.dq, grads.dk, grads.dv, grads.dg].map((t) => t.read()),
      );
      bits.push(outputs.map((x) => Buffer.from(x.buffer).toString('base64')).join());
      disposeGradients(grads);
      disposeNsaForward(result);
    }
    expect(bits[0]).toBe(bits[1]);
    expect(gpu.memory().liveBuffers).toBe(before);
  });
});

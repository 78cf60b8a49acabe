/**
 * `webattn verify nsa`: the NSA forward and backward on every tier the adapter has, against the
 * reference. The selection is checked by what it is worth: per query, the reference's scores summed
 * over the GPU's picks against over its own picks (a near tie resolved the other way changes that
 * sum by the tie's size; a wrong pick by a whole score). Everything downstream is compared on the
 * GPU's own selection.
 */
import { type Gpu, Tensor, type Tier, tierDtype } from '@webattn/core';
import {
  disposeNsaForward,
  disposeNsaGradients,
  NsaCache,
  nsaBackward,
  nsaDecode,
  nsaForward,
  readSelection,
  resolveNsaConfigFromReference,
  SELECTED_KEYS_CHUNK,
} from '@webattn/nsa';
import {
  compare,
  type NsaConfig as ReferenceConfig,
  randn,
  nsaBackward as referenceBackward,
  nsaDecode as referenceDecode,
  nsaForward as referenceForward,
  toleranceFor,
} from '@webattn/reference';
import type { Check } from './check.js';

interface Shape {
  /** Sequences of n tokens each (1 by default): their tokens share workgroups across boundaries. */
  batch?: number;
  /**
   * Tokens per chunk of the tensor-core dK/dV kernels' token lists (SELECTED_KEYS_CHUNK), small so
   * that lists of many chunks, and their ordered sums, occur at this size.
   */
  keyChunk?: number;
  n: number;
  hq: number;
  hkv: number;
  dqk: number;
  dv: number;
  config: ReferenceConfig;
  /** A compressor with parameters for keys and values instead of the mean. */
  compressor?: 'weighted' | 'swiglu';
}

/** A small configuration where every rule shows in a few dozen tokens, and the reference defaults. */
const SMALL: Shape = {
  n: 37,
  hq: 4,
  hkv: 2,
  dqk: 32,
  dv: 32,
  config: {
    kernelSize: 4,
    stride: 2,
    selectSize: 8,
    topN: 5,
    windowSize: 6,
    initBlocks: 1,
    localBlocks: 1,
  },
};
const SHAPES: Shape[] = [
  SMALL,
  // Three sequences of 37: a tensor-core selection workgroup of several tokens spans two of them.
  { ...SMALL, batch: 3, hkv: 1 },
  // Lists of up to 37 tokens in chunks of 4.
  { ...SMALL, keyChunk: 4 },
  { n: 300, hq: 4, hkv: 1, dqk: 64, dv: 64, config: { topN: 4, selectSize: 32, windowSize: 40 } },
  // The reference config (blocks of 64) with a group of 16 heads at d = 128: the tensor-core
  // forward's shape on the H200 (64-key tiles over four subgroups).
  { n: 300, hq: 16, hkv: 1, dqk: 128, dv: 128, config: { topN: 4, windowSize: 40 } },
  // 1100 selection blocks of one token: more than the tensor-core selection's picks hold in
  // registers (32 per lane of 32), so the last are read from workgroup memory.
  {
    n: 1100,
    hq: 4,
    hkv: 1,
    dqk: 16,
    dv: 16,
    config: { kernelSize: 1, stride: 1, selectSize: 1, topN: 8, windowSize: 16 },
  },
  // The model head dims: dqk 192 (128 plus a rope part) with dv 128, a group of 16 heads.
  { n: 200, hq: 16, hkv: 1, dqk: 192, dv: 128, config: { topN: 4, selectSize: 32, windowSize: 40 } },
  ...(['weighted', 'swiglu'] as const).map((compressor) => ({
    n: 41,
    hq: 4,
    hkv: 2,
    dqk: 16,
    dv: 16,
    config: { kernelSize: 8, stride: 4, selectSize: 8, topN: 3, windowSize: 6 },
    compressor,
  })),
];

/**
 * Random parameters for a shape's compressor, as the GPU holds them and as the reference takes
 * them: pooling weights around 1 with small position embeddings, or a linear map scaled by
 * 1 / sqrt(fan-in).
 */
async function compressorParams(
  device: Gpu,
  s: Shape,
  l: number,
  dim: number,
  seed: number,
  dtype: 'f32' | 'f16',
) {
  if (s.compressor === 'weighted') {
    const weight = Tensor.from(
      device,
      randn(l, seed).map((x) => 1 + 0.3 * x),
      [l],
      dtype,
    );
    const pe = Tensor.from(
      device,
      randn(l * dim, seed + 1).map((x) => 0.2 * x),
      [l, dim],
      dtype,
    );
    const reference = { method: 'weighted' as const, weight: await weight.read(), pe: await pe.read() };
    return { gpu: { weight, pe }, reference, tensors: [weight, pe] };
  }
  const data = randn(2 * dim * l * dim, seed).map((x) => x / Math.sqrt(l * dim));
  const weight = Tensor.from(device, data, [2 * dim, l * dim], dtype);
  const reference = { method: 'swiglu' as const, weight: await weight.read() };
  return { gpu: { method: 'swiglu' as const, weight }, reference, tensors: [weight] };
}

/** Sums of the reference's block scores over each row's picks. */
function pickedScores(
  selection: Int32Array,
  scores: Float32Array,
  topN: number,
  blocks: number,
): Float32Array {
  const rows = selection.length / topN;
  const sums = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    for (let s = 0; s < topN; s++) {
      const J = selection[r * topN + s]!;
      if (J >= 0) sums[r]! += scores[r * blocks + J]!;
    }
  }
  return sums;
}

function runShape(s: Shape, tier: Tier) {
  return async (device: Gpu) => {
    const dtype = tierDtype(tier);
    const config = resolveNsaConfigFromReference(
      { heads: s.hq, kvHeads: s.hkv, headDim: s.dqk, vHeadDim: s.dv },
      s.config,
    );
    const b = s.batch ?? 1;
    const tokens = b * s.n;
    using q = Tensor.from(device, randn(tokens * s.hq * s.dqk, 41), [b, s.n, s.hq, s.dqk], dtype);
    using k = Tensor.from(device, randn(tokens * s.hkv * s.dqk, 42), [b, s.n, s.hkv, s.dqk], dtype);
    using v = Tensor.from(device, randn(tokens * s.hkv * s.dv, 43), [b, s.n, s.hkv, s.dv], dtype);
    using g = Tensor.from(device, randn(tokens * s.hq * 3, 44), [b, s.n, s.hq, 3], dtype);
    using dO = Tensor.from(device, randn(tokens * s.hq * s.dv, 45), [b, s.n, s.hq, s.dv], dtype);
    const kParams = s.compressor && (await compressorParams(device, s, config.kernelSize, s.dqk, 46, dtype));
    const vParams = s.compressor && (await compressorParams(device, s, config.kernelSize, s.dv, 48, dtype));
    const owned = [...(kParams?.tensors ?? []), ...(vParams?.tensors ?? [])];
    const compressors = kParams && vParams ? { k: kParams.gpu, v: vParams.gpu } : undefined;
    const result = await nsaForward(device, config, q, k, v, g, {
      tier,
      ...(compressors && { compressors }),
    });
    const chunk = SELECTED_KEYS_CHUNK.tokens;
    try {
      if (s.keyChunk) SELECTED_KEYS_CHUNK.tokens = s.keyChunk;
      const grads = await nsaBackward(result, dO).finally(() => {
        SELECTED_KEYS_CHUNK.tokens = chunk;
      });
      // The reference runs on what the GPU holds, so f16 checks measure the kernels, not the rounding of inputs.
      const [hq, hk, hv, hg, hdo] = await Promise.all([q, k, v, g, dO].map((t) => t.read()));
      const inputs = {
        q: hq!,
        k: hk!,
        v: hv!,
        gates: hg!,
        ...(kParams && vParams && { kCompressor: kParams.reference, vCompressor: vParams.reference }),
      };
      const options = { batch: b, n: s.n, hq: s.hq, hkv: s.hkv, dqk: s.dqk, dv: s.dv, ...s.config };
      const own = referenceForward(inputs, options);
      const selection = await readSelection(result.selection);
      const blocks = own.blockScores.length / (tokens * s.hkv);
      const given = { ...inputs, selection };
      const ref = referenceForward(given, options);
      const refGrads = referenceBackward(given, hdo!, options);
      const comparisons: [string, ArrayLike<number>, ArrayLike<number>, number][] = [
        [
          'selection (reference scores of the picks)',
          pickedScores(own.selection, own.blockScores, config.topN, blocks),
          pickedScores(selection, own.blockScores, config.topN, blocks),
          1,
        ],
        ['o', ref.o, await result.o.read(), 1],
        ['selected o', ref.selected.o, await result.selected.o.read(), 1],
        ['window o', ref.window.o, await result.window.o.read(), 1],
        [
          'compressed o',
          ref.compressed.o,
          result.compressed ? await result.compressed.o.read() : ref.compressed.o,
          1,
        ],
        ['dq', refGrads.dq, await grads.dq.read(), 4],
        ['dk', refGrads.dk, await grads.dk.read(), 4],
        ['dv', refGrads.dv, await grads.dv.read(), 4],
        ['dg', refGrads.dGates, await grads.dg.read(), 4],
      ];
      // The keys' pe gradient is 0 up to rounding (a shift of every compressed key): not compared.
      const params: [string, ArrayLike<number> | undefined, Tensor | undefined][] = [
        ['d k compressor weight', refGrads.kCompressor.weight, grads.kCompressor?.weight],
        ['d v compressor weight', refGrads.vCompressor.weight, grads.vCompressor?.weight],
        ['d v compressor pe', refGrads.vCompressor.pe, grads.vCompressor?.pe],
      ];
      for (const [name, expected, actual] of params) {
        if (expected && actual) comparisons.push([name, expected, await actual.read(), 4]);
      }
      disposeNsaGradients(grads);
      return comparisons.map(([output, expected, actual, magnitude]) => ({
        output,
        comparison: compare(expected, actual, toleranceFor(dtype, magnitude)),
      }));
    } finally {
      disposeNsaForward(result);
      for (const t of owned) t.dispose();
    }
  };
}

/**
 * One decode step over a cache grown in two calls, for sequences of different lengths, against the
 * reference's decode on the GPU's own selection (and that selection against the reference's).
 */
function runDecode(tier: Tier) {
  return async (device: Gpu) => {
    const dtype = tierDtype(tier);
    const [hq, hkv, d, dv] = [8, 2, 32, 32];
    const settings = { kernelSize: 4, stride: 2, selectSize: 8, topN: 3, windowSize: 6 };
    const config = resolveNsaConfigFromReference(
      { heads: hq, kvHeads: hkv, headDim: d, vHeadDim: dv },
      settings,
    );
    const lengths = [1, 30, 77];
    const batch = lengths.length;
    const total = lengths.reduce((a, b) => a + b, 0);
    using k = Tensor.from(device, randn(total * hkv * d, 51), [total, hkv, d], dtype);
    using v = Tensor.from(device, randn(total * hkv * dv, 52), [total, hkv, dv], dtype);
    using q = Tensor.from(device, randn(batch * hq * d, 53), [batch, hq, d], dtype);
    using g = Tensor.from(device, randn(batch * hq * 3, 54), [batch, hq, 3], dtype);
    const cache = NsaCache.create(device, config, { batch, capacity: 80, dtype });
    try {
      // The packed prefixes in one call, sequence by sequence.
      await cache.append(k, v, lengths);
      const result = await nsaDecode(device, cache, q, g, { tier });
      const [hk, hv, hq2, hg] = await Promise.all([k, v, q, g].map((t) => t.read()));
      const inputs = { q: hq2!, k: hk!, v: hv!, gates: hg! };
      const cu = [0, 1, 31, 108];
      const options = { hq, hkv, dqk: d, dv, ...settings };
      const selection = await readSelection(result.selection);
      const own = referenceDecode(inputs, cu, options);
      const ref = referenceDecode({ ...inputs, selection }, cu, options);
      const picks = Float32Array.from(selection, (x, i) => (x === own.selection[i] ? 0 : 1));
      const out = [
        {
          output: 'selection (slots differing from the reference)',
          comparison: compare(new Float32Array(picks.length), picks, toleranceFor(dtype)),
        },
        { output: 'o', comparison: compare(ref.o, await result.o.read(), toleranceFor(dtype)) },
      ];
      result.o.dispose();
      result.selection.dispose();
      return out;
    } finally {
      cache.dispose();
    }
  };
}

/** The NSA checks for every tier `gpu` can run. */
export function nsaChecks(gpu: Gpu): Check[] {
  return gpu.caps.tiers.flatMap((tier) => [
    ...SHAPES.map((s) => ({
      suite: 'nsa' as const,
      name: `nsa forward+backward [${tier}] ${s.batch ? `b=${s.batch} ` : ''}n=${s.n}${s.keyChunk ? ` key chunks of ${s.keyChunk}` : ''} hq=${s.hq} hkv=${s.hkv} dqk=${s.dqk} dv=${s.dv} ${JSON.stringify(s.config)}${s.compressor ? ` ${s.compressor} compression` : ''}`,
      tier,
      run: runShape(s, tier),
    })),
    {
      suite: 'nsa' as const,
      name: `nsa decode [${tier}] lengths 1/30/77 hq=8 hkv=2 d=32`,
      tier,
      run: runDecode(tier),
    },
  ]);
}

import { describe, expect, it } from 'vitest';
import {
  absorbMlaWeights,
  type MlaDims,
  type MlaLayerOptions,
  type MlaRope,
  type MlaSequenceCache,
  mlaLayer,
  mlaLayerAbsorbed,
  ropeFrequencies,
  type Tolerance,
} from '../../src/index.js';
import { mlaLayerAbsorbedF64 } from '../../src/mla/absorbed-layer.js';
import { mlaLayerF64 } from '../../src/mla/layer.js';
import { directMlaPrefill, type Rotation } from './direct-layer.js';
import {
  complexInterleaved,
  expectClose,
  FOUR_HEADS,
  hfRotateHalf,
  randomHidden,
  randomWeights,
  rows,
  starts,
  WITH_Q_LORA,
  WITHOUT_Q_LORA,
} from './helpers.js';

/**
 * For results computed from a cache that one side rounded to f32 and the other kept in f64: a few
 * f32 ulps of the inputs, carried through the layer.
 */
const F32_INPUTS: Tolerance = { rmsRel: 1e-5, maxAbs: 1e-5 };

/** LongRoPE with distinct short and long factors and an original length of 12, exceeded mid-test. */
const LONGROPE: MlaRope = {
  style: 'rotate-half',
  theta: 10000,
  scaling: {
    type: 'longrope',
    shortFactor: [1.5, 2, 7],
    longFactor: [3, 4, 9],
    originalMaxPositionEmbeddings: 12,
    maxPositionEmbeddings: 48,
  },
};

/** YaRN over a short original length, with mscale ≠ mscaleAllDim so that both magnitudes matter. */
const YARN: MlaRope = {
  style: 'interleaved',
  theta: 500,
  scaling: { type: 'yarn', factor: 4, originalMaxPositionEmbeddings: 32, mscale: 1, mscaleAllDim: 0.5 },
};

const CASES: { name: string; dims: MlaDims; rope: MlaRope }[] = [
  { name: 'q_lora, rotate-half, LongRoPE', dims: WITH_Q_LORA, rope: LONGROPE },
  { name: 'q_proj, interleaved, YaRN', dims: WITHOUT_Q_LORA, rope: YARN },
  {
    name: 'q_lora, 4 heads, rank 32, interleaved',
    dims: FOUR_HEADS,
    rope: { style: 'interleaved', theta: 10000 },
  },
  { name: 'q_proj, rotate-half', dims: WITHOUT_Q_LORA, rope: { style: 'rotate-half', theta: 10000 } },
];

/** Both forms on the same call; asserts equal outputs and caches, returns the unabsorbed result. */
function bothForms(
  dims: MlaDims,
  rope: MlaRope,
  seed: number,
  newLengths: number[],
  cache?: MlaSequenceCache[],
) {
  const weights = randomWeights(dims, seed);
  const tokens = newLengths.reduce((a, b) => a + b, 0);
  const hidden = randomHidden(dims, tokens, seed + 100 + tokens);
  const options: MlaLayerOptions = { dims, rope, newLengths, ...(cache && { cache }) };
  const plain = mlaLayer(hidden, weights, options);
  const absorbed = mlaLayerAbsorbed(hidden, absorbMlaWeights(weights, dims), options);
  expectClose(absorbed.out, plain.out);
  absorbed.cache.forEach((c, s) => {
    expect(c.cKv).toEqual(plain.cache[s]!.cKv);
    expect(c.kPe).toEqual(plain.cache[s]!.kPe);
  });
  return plain;
}

describe.each(CASES)('absorbed == unabsorbed: $name', ({ dims, rope }) => {
  it('through prefill, decode, chunked prefill and decode again, for lengths 1, 0, 7 and 12', () => {
    const prefill = bothForms(dims, rope, 1, [1, 7, 0, 12]);
    expect(prefill.out).toHaveLength(20 * dims.hiddenSize);
    expect(prefill.cache.map((c) => c.cKv.length / dims.kvLoraRank)).toEqual([1, 7, 0, 12]);
    const decode = bothForms(dims, rope, 1, [1, 1, 1, 1], prefill.cache);
    const chunk = bothForms(dims, rope, 1, [3, 5, 2, 4], decode.cache);
    const again = bothForms(dims, rope, 1, [1, 1, 1, 1], chunk.cache);
    expect(again.cache.map((c) => c.kPe.length / dims.qkRopeHeadDim)).toEqual([6, 14, 4, 18]);
  });

  it('agree in f64 to rounding (spec §2: about 1e-15)', () => {
    const weights = randomWeights(dims, 2);
    const options: MlaLayerOptions = { dims, rope, newLengths: [5, 3] };
    const hidden = randomHidden(dims, 8, 3);
    const plain = mlaLayerF64(hidden, weights, options);
    const absorbed = mlaLayerAbsorbedF64(hidden, absorbMlaWeights(weights, dims), options);
    expectClose(absorbed.out, plain.out, { rmsRel: 1e-13, maxAbs: 1e-13 });
  });
});

describe('mlaLayer', () => {
  it('matches spec §1.3 written out token by token, for both rope styles and their schedules', () => {
    const hiddenOf = (dims: MlaDims) => {
      const h = randomHidden(dims, 6, 40);
      return Array.from({ length: 6 }, (_, t) => rows(h, t, t + 1, dims.hiddenSize));
    };
    const check = (dims: MlaDims, rope: MlaRope, rotation: Rotation, scale: number) => {
      const hidden = hiddenOf(dims);
      const weights = randomWeights(dims, 41);
      const { out } = mlaLayer(hidden.flat(), weights, { dims, rope, newLengths: [6] });
      expectClose(out, directMlaPrefill(hidden, weights, dims, rotation, scale).flat());
    };
    const inv = (dim: number, theta: number) =>
      Array.from({ length: dim / 2 }, (_, k) => 1 / theta ** ((2 * k) / dim));

    // LongRoPE at 6 tokens: short factors; magnitude sqrt(1 + ln(48 / 12) / ln 12).
    const longFreq = inv(6, 10000).map((f, k) => f / [1.5, 2, 7][k]!);
    const longMagnitude = Math.sqrt(1 + Math.log(4) / Math.log(12));
    check(WITH_Q_LORA, LONGROPE, (x, p) => hfRotateHalf(x, p, longFreq, longMagnitude), 14 ** -0.5);

    const plainInterleaved: MlaRope = { style: 'interleaved', theta: 10000 };
    check(WITHOUT_Q_LORA, plainInterleaved, (x, p) => complexInterleaved(x, p, inv(4, 10000)), 10 ** -0.5);

    // YaRN: the rates are tested on their own (rope.test.ts); the magnitudes are written out here:
    // cos/sin by (1 + 0.1 ln 4) / (1 + 0.05 ln 4), the softmax scale by (1 + 0.05 ln 4)².
    const yarnFreq = ropeFrequencies(4, YARN).invFreq;
    const allDim = 1 + 0.05 * Math.log(4);
    const yarnRotation: Rotation = (x, p) =>
      complexInterleaved(x, p, yarnFreq, (1 + 0.1 * Math.log(4)) / allDim);
    check(WITHOUT_Q_LORA, YARN, yarnRotation, allDim ** 2 / Math.sqrt(10));
  });

  it('gives the same rows for a prompt prefilled at once or in chunks (positions continue the cache)', () => {
    for (const rope of [CASES[2]!.rope, CASES[3]!.rope]) {
      const dims = rope.style === 'interleaved' ? FOUR_HEADS : WITHOUT_Q_LORA;
      const weights = randomWeights(dims, 50);
      const absorbed = absorbMlaWeights(weights, dims);
      const lengths = [9, 4];
      const [first, second] = [
        [5, 1],
        [4, 3],
      ];
      const at = starts(lengths);
      const hidden = randomHidden(dims, 13, 51);
      const w = dims.hiddenSize;
      const part = (from: number[], to: number[]) =>
        lengths.flatMap((_, s) => rows(hidden, at[s]! + from[s]!, at[s]! + to[s]!, w));
      for (const layer of [
        (x: number[], o: MlaLayerOptions) => mlaLayer(x, weights, o),
        (x: number[], o: MlaLayerOptions) => mlaLayerAbsorbed(x, absorbed, o),
      ]) {
        const whole = layer(Array.from(hidden), { dims, rope, newLengths: lengths });
        const head = layer(part([0, 0], first), { dims, rope, newLengths: first });
        const tail = layer(part(first, lengths), { dims, rope, newLengths: second, cache: head.cache });
        const tailStarts = starts(second);
        lengths.forEach((n, s) => {
          expectClose(
            rows(tail.out, tailStarts[s]!, tailStarts[s + 1]!, w),
            rows(whole.out, at[s]! + first[s]!, at[s]! + n, w),
            F32_INPUTS,
          );
          expectClose(tail.cache[s]!.cKv, whole.cache[s]!.cKv);
        });
      }
    }
  });

  it('computes each sequence as if alone: positions count its own tokens only', () => {
    const dims = WITH_Q_LORA;
    const rope = LONGROPE;
    const weights = randomWeights(dims, 60);
    const lengths = [3, 1, 6];
    const at = starts(lengths);
    const hidden = randomHidden(dims, 10, 61);
    const prefix = mlaLayer(randomHidden(dims, 7, 62), weights, { dims, rope, newLengths: [2, 5, 0] }).cache;
    const batch = mlaLayer(hidden, weights, { dims, rope, newLengths: lengths, cache: prefix });
    lengths.forEach((n, s) => {
      const alone = mlaLayer(rows(hidden, at[s]!, at[s + 1]!, dims.hiddenSize), weights, {
        dims,
        rope,
        newLengths: [n],
        cache: [prefix[s]!],
      });
      expectClose(rows(batch.out, at[s]!, at[s + 1]!, dims.hiddenSize), alone.out);
    });
  });

  it('uses the long LongRoPE factors for the tokens of a sequence longer than the original length', () => {
    const dims = WITH_Q_LORA;
    const weights = randomWeights(dims, 70);
    const hidden = randomHidden(dims, 1, 71);
    const prefix = mlaLayer(randomHidden(dims, 12, 72), weights, {
      dims,
      rope: LONGROPE,
      newLengths: [12],
    }).cache;
    const { cache } = mlaLayer(hidden, weights, { dims, rope: LONGROPE, newLengths: [1], cache: prefix });
    // The 13th token's key, rotated by hand at position 12 with the long factors.
    const raw = Array.from({ length: 6 }, (_, c) => {
      let sum = 0;
      for (let i = 0; i < dims.hiddenSize; i++) {
        sum += weights.kvAProjWithMqa[(dims.kvLoraRank + c) * dims.hiddenSize + i]! * hidden[i]!;
      }
      return sum;
    });
    const freq = [0, 1, 2].map((k) => 1 / (10000 ** (k / 3) * [3, 4, 9][k]!));
    const magnitude = Math.sqrt(1 + Math.log(4) / Math.log(12));
    expectClose(rows(cache[0]!.kPe, 12, 13, 6), hfRotateHalf(raw, 12, freq, magnitude));
  });

  it('rejects weights, inputs and caches that do not fit the dims', () => {
    const dims = WITH_Q_LORA;
    const weights = randomWeights(dims, 80);
    const options: MlaLayerOptions = { dims, rope: LONGROPE, newLengths: [2] };
    const hidden = randomHidden(dims, 2, 81);
    expect(() => mlaLayer(hidden.subarray(1), weights, options)).toThrow(/hidden/);
    expect(() => mlaLayer(hidden, { ...weights, qProj: weights.qBProj! }, options)).toThrow(/qProj/);
    expect(() => mlaLayer(hidden, { ...weights, qBProj: undefined }, options)).toThrow(/qBProj/);
    expect(() =>
      mlaLayer(hidden, { ...weights, kvBProj: Array.from(weights.kvBProj).slice(1) }, options),
    ).toThrow(/kvBProj/);
    expect(() => mlaLayer(hidden, weights, { ...options, dims: { ...dims, qLoraRank: undefined } })).toThrow(
      /qAProj/,
    );
    expect(() => mlaLayer(hidden, weights, { ...options, dims: { ...dims, qkRopeHeadDim: 5 } })).toThrow(
      /even/,
    );
    expect(() => mlaLayer(hidden, weights, { ...options, newLengths: [-1, 3] })).toThrow(/newLengths\[0\]/);
    expect(() => mlaLayer(hidden, weights, { ...options, cache: [] })).toThrow(/1 sequences but 0 caches/);
    const badCache = { cKv: new Float32Array(dims.kvLoraRank), kPe: new Float32Array(2) };
    expect(() => mlaLayer(hidden, weights, { ...options, cache: [badCache] })).toThrow(/cache\[0\]\.kPe/);
    expect(() =>
      mlaLayerAbsorbed(hidden, { ...absorbMlaWeights(weights, dims), wUv: new Float32Array(3) }, options),
    ).toThrow(/wUv/);
  });
});

import { describe, expect, it } from 'vitest';
import {
  decayMask,
  type LightningAttentionOptions,
  lightningAttention,
  lightningAttentionDecode,
  lightningAttentionRecurrent,
  maskedLinearAttention,
  randn,
} from '../../src/index.js';
import { cumulative, f64 } from '../nsa/helpers.js';
import { repeatKvHeads } from '../support/repeat-kv-heads.js';
import { expectClose, randomQkv, range, specDecays } from './helpers.js';

/** The spec's long-memory decay (slope 1e-5) and a short one, besides the exact ends 0 and 1. */
const NEAR_ONE = Math.exp(-1e-5);
const NEAR_ZERO = 1e-3;

/** Random inputs of a dense call, with a random initial state. */
function denseInputs(s: LightningAttentionOptions, decays: ArrayLike<number>, seed: number) {
  const x = randomQkv(s, seed);
  const initialState = f64(randn(s.batch * s.hq * s.dk * s.dv, seed + 4));
  return { ...x, decays, initialState };
}

describe('lightningAttention (quadratic) and lightningAttentionRecurrent', () => {
  it('compute a geometric sum worked out by hand, with and without an initial state', () => {
    // One dim, q = k = v = 1, λ = 1/2, scale 1: o_t = Σ_{j <= t} 2^-(t-j) = 1, 1.5, 1.75, and the
    // final state is the same sum at t = 2. An initial state of 4 adds 4 · 2^-(t+1) = 2, 1, 0.5 to o
    // and 4 · 2^-3 = 0.5 to the final state.
    const s = { batch: 1, n: 3, hq: 1, hkv: 1, dk: 1, dv: 1, scale: 1 };
    const x = { q: [1, 1, 1], k: [1, 1, 1], v: [1, 1, 1], decays: [0.5] };
    for (const run of [lightningAttention, lightningAttentionRecurrent]) {
      const plain = run(x, s);
      expect(Array.from(plain.o), run.name).toEqual([1, 1.5, 1.75]);
      expect(Array.from(plain.finalState), run.name).toEqual([1.75]);
      const carried = run({ ...x, initialState: [4] }, s);
      expect(Array.from(carried.o), run.name).toEqual([3, 2.5, 2.25]);
      expect(Array.from(carried.finalState), run.name).toEqual([2.25]);
    }
  });

  it('follow the closed form (1 - λ^(t+1)) / (1 - λ) for decays near 1 (slope 1e-5) and near 0', () => {
    const n = 9;
    const ones = new Array<number>(n).fill(1);
    const s = { batch: 1, n, hq: 2, hkv: 1, dk: 1, dv: 1, scale: 1 };
    const decays = [NEAR_ONE, NEAR_ZERO];
    // Two query heads share the one kv head: q is [n, 2, 1], k and v [n, 1, 1].
    const x = { q: [...ones, ...ones], k: ones, v: ones, decays };
    for (const run of [lightningAttention, lightningAttentionRecurrent]) {
      const { o, finalState } = run(x, s);
      decays.forEach((decay, h) => {
        const expected = Array.from({ length: n }, (_, t) => (1 - decay ** (t + 1)) / (1 - decay));
        const actual = Array.from({ length: n }, (_, t) => o[t * 2 + h]!);
        expectClose(`${run.name}, λ = ${decay}`, expected, actual);
        expectClose(`${run.name}, final state, λ = ${decay}`, [expected[n - 1]!], [finalState[h]!]);
      });
    }
    // Near 1 the first token still counts almost fully at the last: the sum is nearly n.
    expect(lightningAttention(x, s).o[(n - 1) * 2]).toBeGreaterThan(n - 1e-3);
  });

  it('equal the masked form under the decay mask (scale 1, no initial state), GQA 4:2', () => {
    const s = { batch: 2, n: 7, hq: 4, hkv: 2, dk: 3, dv: 2, scale: 1 };
    const decays = [0, NEAR_ZERO, 0.7, NEAR_ONE];
    const x = randomQkv(s, 71);
    const masked = maskedLinearAttention(x.q, x.k, x.v, decayMask(decays, s.n), {
      ...s,
      maskBatch: 1,
      maskHeads: s.hq,
    });
    expectClose('o', masked, lightningAttention({ ...x, decays }, s).o);
  });

  it('decayMask is λ^(i-j) on and below the diagonal and 0 above', () => {
    expect(Array.from(decayMask([0.5, 1], 3))).toEqual([
      ...[1, 0, 0, 0.5, 1, 0, 0.25, 0.5, 1],
      ...[1, 0, 0, 1, 1, 0, 1, 1, 1],
    ]);
  });

  const AGREEMENT: [string, LightningAttentionOptions, ArrayLike<number>][] = [
    [
      "spec's TransnormerLLM decays for 4 heads, GQA 4:2",
      { batch: 2, n: 13, hq: 4, hkv: 2, dk: 3, dv: 4 },
      specDecays(4),
    ],
    [
      'decays 0, near 0, near 1 and 1, MQA',
      { batch: 1, n: 11, hq: 4, hkv: 1, dk: 2, dv: 3 },
      [0, NEAR_ZERO, NEAR_ONE, 1],
    ],
    ['n = 1', { batch: 3, n: 1, hq: 2, hkv: 1, dk: 4, dv: 2, scale: 0.7 }, [0.3, 0.9]],
  ];

  for (const [name, s, decays] of AGREEMENT) {
    it(`agree with each other, and with decoding token by token, o and final state: ${name}`, () => {
      const x = denseInputs(s, decays, 81);
      for (const initialState of [undefined, x.initialState]) {
        const inputs = { ...x, initialState };
        const quadratic = lightningAttention(inputs, s);
        const recurrent = lightningAttentionRecurrent(inputs, s);
        expectClose('o', quadratic.o, recurrent.o);
        expectClose('finalState', quadratic.finalState, recurrent.finalState);
        // Decode: one token of every sequence per step, from the initial state.
        const { batch, n, hq, hkv, dk, dv } = s;
        let state: ArrayLike<number> = initialState ?? new Float64Array(batch * hq * dk * dv);
        for (let t = 0; t < n; t++) {
          const token = (a: ArrayLike<number>, heads: number, dim: number) =>
            Array.from({ length: batch }, (_, b) =>
              range(a, (b * n + t) * heads * dim, (b * n + t + 1) * heads * dim),
            ).flat();
          const step = lightningAttentionDecode(
            { q: token(x.q, hq, dk), k: token(x.k, hkv, dk), v: token(x.v, hkv, dv), decays, state },
            s,
          );
          expectClose(`decode o at t = ${t}`, token(quadratic.o, hq, dv), step.o);
          state = step.state;
        }
        expectClose('decode final state', quadratic.finalState, state);
      }
    });
  }

  it('gives the last row of the full forward by one decode step from the prefix final state', () => {
    const s = { batch: 2, n: 10, hq: 2, hkv: 2, dk: 3, dv: 3 };
    const decays = [NEAR_ONE, 0.5];
    const x = denseInputs(s, decays, 91);
    const full = lightningAttention(x, s);
    const { hq, hkv, dk, dv } = s;
    // Sequence b's prefix is its first n - 1 tokens; packed, the prefixes are cuSeqlens [0, 9, 18].
    const prefix = (a: ArrayLike<number>, heads: number, dim: number) =>
      [0, 1].flatMap((b) => range(a, b * s.n * heads * dim, ((b + 1) * s.n - 1) * heads * dim));
    const last = (a: ArrayLike<number>, heads: number, dim: number) =>
      [0, 1].flatMap((b) => range(a, ((b + 1) * s.n - 1) * heads * dim, (b + 1) * s.n * heads * dim));
    const head = lightningAttention(
      {
        q: prefix(x.q, hq, dk),
        k: prefix(x.k, hkv, dk),
        v: prefix(x.v, hkv, dv),
        decays,
        initialState: x.initialState,
      },
      { ...s, n: s.n - 1 },
    );
    const step = lightningAttentionDecode(
      { q: last(x.q, hq, dk), k: last(x.k, hkv, dk), v: last(x.v, hkv, dv), decays, state: head.finalState },
      s,
    );
    expectClose('o', last(full.o, hq, dv), step.o);
    expectClose('state', full.finalState, step.state);
  });

  it('applies the default scale 1/sqrt(dk) to o and not to the state', () => {
    const s = { batch: 1, n: 6, hq: 2, hkv: 1, dk: 4, dv: 2 };
    const x = denseInputs(s, [0.9, 0.4], 101);
    const unscaled = lightningAttention(x, { ...s, scale: 1 });
    const scaled = lightningAttention(x, s);
    expectClose(
      'o',
      unscaled.o.map((o) => o / 2),
      scaled.o,
    );
    expectClose('finalState', unscaled.finalState, scaled.finalState);
  });

  it('gives GQA the result of multi-head attention with repeated kv heads', () => {
    const s = { batch: 2, n: 5, hq: 4, hkv: 2, dk: 2, dv: 3 };
    const x = denseInputs(s, specDecays(4), 111);
    const mha = { ...s, hkv: 4 };
    const repeated = {
      ...x,
      k: repeatKvHeads(x.k, s.batch, s.n, s.hkv, 2, s.dk),
      v: repeatKvHeads(x.v, s.batch, s.n, s.hkv, 2, s.dv),
    };
    const grouped = lightningAttention(x, s);
    const full = lightningAttention(repeated, mha);
    expectClose('o', full.o, grouped.o);
    expectClose('finalState', full.finalState, grouped.finalState);
  });

  it('carries a sequence split in two through the final state exactly as the whole sequence', () => {
    const s = { batch: 1, n: 11, hq: 2, hkv: 1, dk: 3, dv: 2 };
    const decays = [NEAR_ONE, 0.6];
    const x = denseInputs(s, decays, 121);
    const whole = lightningAttention(x, s);
    const { hq, hkv, dk, dv } = s;
    for (const cut of [0, 4, 11]) {
      const part = (a: ArrayLike<number>, heads: number, dim: number, from: number, to: number) =>
        range(a, from * heads * dim, to * heads * dim);
      const piece = (from: number, to: number, initialState: ArrayLike<number>) =>
        lightningAttention(
          {
            q: part(x.q, hq, dk, from, to),
            k: part(x.k, hkv, dk, from, to),
            v: part(x.v, hkv, dv, from, to),
            decays,
            initialState,
          },
          { ...s, n: to - from },
        );
      const first = piece(0, cut, x.initialState);
      const second = piece(cut, s.n, first.finalState);
      expectClose(`o, cut at ${cut}`, whole.o, [...first.o, ...second.o]);
      expectClose(`final state, cut at ${cut}`, whole.finalState, second.finalState);
    }
  });

  it('treats packed sequences (cuSeqlens) as separate calls, lengths 1 and 0 included', () => {
    const lengths = [4, 1, 0, 6, 1];
    const cuSeqlens = cumulative(lengths);
    const heads = { hq: 4, hkv: 2, dk: 2, dv: 3 };
    const total = cuSeqlens.at(-1)!;
    const packedShape = { batch: 1, n: total, ...heads, cuSeqlens };
    const decays = [0, NEAR_ZERO, 0.8, NEAR_ONE];
    const x = denseInputs({ ...packedShape }, decays, 131);
    const initialState = f64(randn(lengths.length * heads.hq * heads.dk * heads.dv, 135));
    for (const run of [lightningAttention, lightningAttentionRecurrent]) {
      const packed = run({ ...x, initialState }, packedShape);
      const stateSize = heads.hq * heads.dk * heads.dv;
      lengths.forEach((length, s) => {
        const [from, to] = [cuSeqlens[s]!, cuSeqlens[s + 1]!];
        const alone = lightningAttention(
          {
            q: range(x.q, from * heads.hq * heads.dk, to * heads.hq * heads.dk),
            k: range(x.k, from * heads.hkv * heads.dk, to * heads.hkv * heads.dk),
            v: range(x.v, from * heads.hkv * heads.dv, to * heads.hkv * heads.dv),
            decays,
            initialState: range(initialState, s * stateSize, (s + 1) * stateSize),
          },
          { batch: 1, n: length, ...heads },
        );
        expectClose(
          `${run.name} o, sequence ${s}`,
          alone.o,
          range(packed.o, from * heads.hq * heads.dv, to * heads.hq * heads.dv),
        );
        expectClose(
          `${run.name} final state, sequence ${s}`,
          alone.finalState,
          range(packed.finalState, s * stateSize, (s + 1) * stateSize),
        );
      });
      // The empty sequence hands its initial state on unchanged.
      expect(range(packed.finalState, 2 * stateSize, 3 * stateSize)).toEqual(
        Array.from(Float32Array.from(range(initialState, 2 * stateSize, 3 * stateSize))),
      );
    }
  });

  it('gives a dense batch the result of the same sequences packed', () => {
    const s = { batch: 3, n: 4, hq: 2, hkv: 1, dk: 2, dv: 2 };
    const x = denseInputs(s, [0.5, NEAR_ONE], 141);
    const dense = lightningAttention(x, s);
    const packed = lightningAttention(x, { ...s, batch: 1, n: 12, cuSeqlens: [0, 4, 8, 12] });
    expect(Array.from(packed.o)).toEqual(Array.from(dense.o));
    expect(Array.from(packed.finalState)).toEqual(Array.from(dense.finalState));
  });

  it('rejects decays outside [0, 1], a bad scale, and inconsistent packing or state lengths', () => {
    const s = { batch: 2, n: 3, hq: 2, hkv: 1, dk: 2, dv: 2 };
    const x = denseInputs(s, [0.5, 0.5], 151);
    expect(() => lightningAttention({ ...x, decays: [0.5, 1.5] }, s)).toThrow(/decays\[1\]/);
    expect(() => lightningAttention({ ...x, decays: [Number.NaN, 0.5] }, s)).toThrow(/decays\[0\]/);
    expect(() => lightningAttention({ ...x, decays: [0.5] }, s)).toThrow(/decays has/);
    expect(() => lightningAttention(x, { ...s, scale: Number.POSITIVE_INFINITY })).toThrow(/scale/);
    expect(() => lightningAttention(x, { ...s, cuSeqlens: [0, 3, 6] })).toThrow(/batch must be 1/);
    expect(() => lightningAttention(x, { ...s, batch: 1, n: 6, cuSeqlens: [0, 3, 5] })).toThrow(/end at n/);
    expect(() => lightningAttention(x, { ...s, batch: 1, n: 6, cuSeqlens: [0, 3] })).toThrow(/end at n/);
    expect(() => lightningAttention(x, { ...s, batch: 1, n: 6, cuSeqlens: [0, 4, 3, 6] })).toThrow(
      /non-decreasing/,
    );
    expect(() => lightningAttention(x, { ...s, batch: 1, n: 6, cuSeqlens: [0, 2, 4, 6] })).toThrow(
      /initialState has/,
    );
  });
});

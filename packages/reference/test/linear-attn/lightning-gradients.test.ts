import { describe, expect, it } from 'vitest';
import {
  type LightningAttentionOptions,
  lightningAttention,
  lightningAttentionBackward,
  lightningAttentionRecurrentBackward,
  randn,
} from '../../src/index.js';
import { lightningAttentionF64 } from '../../src/linear-attn/lightning-quadratic.js';
import { cumulative, expectGradient, f64 } from '../nsa/helpers.js';
import { expectClose, inner, randomQkv, range, specDecays } from './helpers.js';

const NEAR_ONE = Math.exp(-1e-5);

interface Case {
  name: string;
  options: LightningAttentionOptions;
  decays: ArrayLike<number>;
  /** Sequences, which is batch unless packed. */
  sequences: number;
}

const CASES: Case[] = [
  {
    name: "GQA 4:2, two sequences, the spec's decays for 4 heads, default scale",
    options: { batch: 2, n: 5, hq: 4, hkv: 2, dk: 3, dv: 2 },
    decays: specDecays(4),
    sequences: 2,
  },
  {
    name: 'MQA, decays 0, 1e-3, exp(-1e-5) and 1, n = 6, scale 1',
    options: { batch: 1, n: 6, hq: 4, hkv: 1, dk: 2, dv: 3, scale: 1 },
    decays: [0, 1e-3, NEAR_ONE, 1],
    sequences: 1,
  },
  {
    name: 'n = 1',
    options: { batch: 2, n: 1, hq: 2, hkv: 1, dk: 3, dv: 2, scale: 0.8 },
    decays: [0.4, 0.95],
    sequences: 2,
  },
  {
    name: 'packed sequences of lengths 3, 1, 0 and 4',
    options: { batch: 1, n: 8, hq: 2, hkv: 2, dk: 2, dv: 2, cuSeqlens: cumulative([3, 1, 0, 4]) },
    decays: [0.5, NEAR_ONE],
    sequences: 4,
  },
];

/** Random inputs with an initial state, and the gradients flowing into o and the final state. */
function setup({ options: s, decays, sequences }: Case, seed: number) {
  const x = randomQkv(s, seed);
  const stateSize = sequences * s.hq * s.dk * s.dv;
  return {
    inputs: { q: x.q, k: x.k, v: x.v, decays, initialState: f64(randn(stateSize, seed + 4)) },
    grads: { dO: x.dO, dFinalState: f64(randn(stateSize, seed + 5)) },
  };
}

describe('lightningAttentionBackward', () => {
  for (const c of CASES) {
    it(`matches central finite differences of L = Σ o · dO + Σ S_final · dS_final in every element: ${c.name}`, () => {
      const { inputs, grads } = setup(c, 161);
      const analytic = lightningAttentionBackward(inputs, grads, c.options);
      const loss = () => {
        const { o, finalState } = lightningAttentionF64(inputs, c.options);
        return inner(o, grads.dO) + inner(finalState, grads.dFinalState);
      };
      for (const [label, input, grad] of [
        ['dq', inputs.q, analytic.dq],
        ['dk', inputs.k, analytic.dk],
        ['dv', inputs.v, analytic.dv],
        ['dInitialState', inputs.initialState, analytic.dInitialState],
      ] as const) {
        expect(Math.max(...grad.map(Math.abs)), `${label} is not all zero`).toBeGreaterThan(0.01);
        expectGradient(label, input, grad, loss);
      }
    });
  }

  for (const c of CASES) {
    it(`agrees with the recurrence run backwards, with and without a state in and out: ${c.name}`, () => {
      const { inputs, grads } = setup(c, 171);
      for (const initialState of [undefined, inputs.initialState]) {
        for (const dFinalState of [undefined, grads.dFinalState]) {
          const call = [{ ...inputs, initialState }, { dO: grads.dO, dFinalState }, c.options] as const;
          const quadratic = lightningAttentionBackward(...call);
          const recurrent = lightningAttentionRecurrentBackward(...call);
          for (const key of ['dq', 'dk', 'dv', 'dInitialState'] as const) {
            expectClose(
              `${key}, state ${!!initialState}, dFinalState ${!!dFinalState}`,
              quadratic[key],
              recurrent[key],
            );
          }
        }
      }
    });
  }

  it('gives no initial state the gradient of a zero one', () => {
    const c = CASES[0]!;
    const { inputs, grads } = setup(c, 181);
    const zero = new Float64Array(inputs.initialState.length);
    const without = lightningAttentionBackward({ ...inputs, initialState: undefined }, grads, c.options);
    const withZero = lightningAttentionBackward({ ...inputs, initialState: zero }, grads, c.options);
    for (const key of ['dq', 'dk', 'dv', 'dInitialState'] as const) {
      expect(Array.from(without[key]), key).toEqual(Array.from(withZero[key]));
    }
  });

  it('chains a sequence split in two through dFinalState exactly as the whole sequence', () => {
    const s = { batch: 1, n: 9, hq: 2, hkv: 1, dk: 2, dv: 3 };
    const c: Case = { name: 'split', options: s, decays: [0.7, NEAR_ONE], sequences: 1 };
    const { inputs, grads } = setup(c, 191);
    const whole = lightningAttentionBackward(inputs, grads, s);
    const { hq, hkv, dk, dv } = s;
    const cut = 4;
    const part = (a: ArrayLike<number>, heads: number, dim: number, from: number, to: number) =>
      range(a, from * heads * dim, to * heads * dim);
    const pieceInputs = (from: number, to: number, initialState: ArrayLike<number>) => ({
      q: part(inputs.q, hq, dk, from, to),
      k: part(inputs.k, hkv, dk, from, to),
      v: part(inputs.v, hkv, dv, from, to),
      decays: c.decays,
      initialState,
    });
    // The second piece starts from the first's final state, and hands the gradient of that state back.
    const firstInputs = pieceInputs(0, cut, inputs.initialState);
    const middle = lightningAttention(firstInputs, { ...s, n: cut }).finalState;
    const second = lightningAttentionBackward(
      pieceInputs(cut, s.n, middle),
      { dO: part(grads.dO, hq, dv, cut, s.n), dFinalState: grads.dFinalState },
      { ...s, n: s.n - cut },
    );
    const first = lightningAttentionBackward(
      firstInputs,
      { dO: part(grads.dO, hq, dv, 0, cut), dFinalState: second.dInitialState },
      { ...s, n: cut },
    );
    expectClose('dq', whole.dq, [...first.dq, ...second.dq]);
    expectClose('dk', whole.dk, [...first.dk, ...second.dk]);
    expectClose('dv', whole.dv, [...first.dv, ...second.dv]);
    expectClose('dInitialState', whole.dInitialState, first.dInitialState);
  });

  it('rejects dO and dFinalState of the wrong length', () => {
    const c = CASES[0]!;
    const { inputs, grads } = setup(c, 201);
    expect(() => lightningAttentionBackward(inputs, { dO: inputs.k }, c.options)).toThrow(/dO has/);
    expect(() =>
      lightningAttentionRecurrentBackward(inputs, { ...grads, dFinalState: [1] }, c.options),
    ).toThrow(/dFinalState has/);
  });
});

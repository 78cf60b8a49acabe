import { describe, expect, it } from 'vitest';
import { attentionForwardF64 } from '../src/attention-forward.js';
import { type AttentionOptions, attentionBackward, attentionForward, randn } from '../src/index.js';
import { repeatKvHeads, sumKvHeadGroups } from './support/repeat-kv-heads.js';

/** Random q, k, v and dO for a shape, in f64 so that finite differences see every digit. */
function inputs(s: AttentionOptions, seed: number) {
  return {
    q: Float64Array.from(randn(s.batch * s.n * s.hq * s.d, seed)),
    k: Float64Array.from(randn(s.batch * s.nk * s.hkv * s.d, seed + 1)),
    v: Float64Array.from(randn(s.batch * s.nk * s.hkv * s.dv, seed + 2)),
    dO: Float64Array.from(randn(s.batch * s.n * s.hq * s.dv, seed + 3)),
  };
}

const CASES: [string, AttentionOptions][] = [
  ['causal, GQA, nk > n', { batch: 1, n: 5, nk: 7, hq: 4, hkv: 2, d: 3, dv: 2, causal: true }],
  ['window [2, 1], GQA, nk > n', { batch: 1, n: 5, nk: 7, hq: 4, hkv: 2, d: 3, dv: 2, window: [2, 1] }],
  [
    'causal window [1, -], nk > n',
    { batch: 1, n: 5, nk: 7, hq: 4, hkv: 2, d: 3, dv: 2, causal: true, window: [1, -1] },
  ],
  ['causal, nk < n (empty rows)', { batch: 1, n: 7, nk: 5, hq: 4, hkv: 2, d: 3, dv: 2, causal: true }],
  ['two sequences, no mask, scale 0.7', { batch: 2, n: 3, nk: 4, hq: 2, hkv: 1, d: 2, dv: 3, scale: 0.7 }],
];

const EPS = 1e-3;

describe('attentionBackward', () => {
  for (const [name, s] of CASES) {
    it(`matches central finite differences of L = Σ o · dO: ${name}`, () => {
      const { q, k, v, dO } = inputs(s, 31);
      const { o, lse } = attentionForward(q, k, v, s);
      const grads = attentionBackward(q, k, v, o, lse, dO, s);
      const loss = () => attentionForwardF64(q, k, v, s).o.reduce((sum, x, e) => sum + x * dO[e]!, 0);
      // Every element: the shapes are small enough, and it covers masked keys and empty rows too.
      for (const [label, input, grad] of [
        ['dq', q, grads.dq],
        ['dk', k, grads.dk],
        ['dv', v, grads.dv],
      ] as const) {
        expect(Math.max(...grad.map(Math.abs)), `${label} is not all zero`).toBeGreaterThan(0.01);
        for (let e = 0; e < input.length; e++) {
          const kept = input[e]!;
          input[e] = kept + EPS;
          const up = loss();
          input[e] = kept - EPS;
          const down = loss();
          input[e] = kept;
          const numeric = (up - down) / (2 * EPS);
          // Relative to the gradient, or to 1e-2 for gradients near zero (masked keys give exactly 0).
          const relativeError = Math.abs(grad[e]! - numeric) / Math.max(Math.abs(numeric), 1e-2);
          expect(relativeError, `${label}[${e}]: analytic ${grad[e]}, numeric ${numeric}`).toBeLessThan(1e-3);
        }
      }
    });
  }

  it('gives zero gradients to rows that see no key and to keys that no row sees, never NaN', () => {
    // Causal with nk < n: rows 0, 1 see nothing. Window [0, 0]: each row sees only its own key.
    const s: AttentionOptions = { batch: 1, n: 4, nk: 2, hq: 1, hkv: 1, d: 2, dv: 2, causal: true };
    const { q, k, v, dO } = inputs(s, 41);
    const { o, lse } = attentionForward(q, k, v, s);
    const grads = attentionBackward(q, k, v, o, lse, dO, s);
    expect(Array.from(grads.dq.subarray(0, 4))).toEqual([0, 0, 0, 0]);
    for (const g of Object.values(grads)) expect(g.every(Number.isFinite)).toBe(true);
    const far: AttentionOptions = { batch: 1, n: 2, nk: 4, hq: 1, hkv: 1, d: 2, dv: 2, window: [0, 0] };
    const x = inputs(far, 43);
    const y = attentionForward(x.q, x.k, x.v, far);
    const g = attentionBackward(x.q, x.k, x.v, y.o, y.lse, x.dO, far);
    // Rows sit at keys 2 and 3: keys 0 and 1 are unseen. One key per row: softmax is constant, dS = 0.
    expect(Array.from(g.dk)).toEqual(new Array(8).fill(0));
    expect(Array.from(g.dq)).toEqual([0, 0, 0, 0]);
    expect(Array.from(g.dv)).toEqual([0, 0, 0, 0, ...Array.from(Float32Array.from(x.dO))]);
  });

  it('sums dk and dv over each GQA group, as if the kv heads were repeated', () => {
    const s: AttentionOptions = { batch: 2, n: 4, nk: 6, hq: 6, hkv: 2, d: 3, dv: 2, causal: true };
    const { q, k, v, dO } = inputs(s, 51);
    const { o, lse } = attentionForward(q, k, v, s);
    const grouped = attentionBackward(q, k, v, o, lse, dO, s);
    const mha: AttentionOptions = { ...s, hkv: 6 };
    const [kr, vr] = [repeatKvHeads(k, 2, 6, 2, 3, 3), repeatKvHeads(v, 2, 6, 2, 3, 2)];
    const repeated = attentionBackward(q, kr, vr, o, lse, dO, mha);
    expect(grouped.dq).toEqual(repeated.dq);
    const close = (x: Float64Array) => Array.from(x, (e) => expect.closeTo(e, 6));
    expect(Array.from(grouped.dk)).toEqual(close(sumKvHeadGroups(repeated.dk, 2, 6, 2, 3, 3)));
    expect(Array.from(grouped.dv)).toEqual(close(sumKvHeadGroups(repeated.dv, 2, 6, 2, 3, 2)));
  });

  it('rejects o, lse or dO of the wrong length', () => {
    const s: AttentionOptions = { batch: 1, n: 2, nk: 2, hq: 1, hkv: 1, d: 1, dv: 1 };
    const x = [1, 2];
    expect(() => attentionBackward(x, x, x, [1], x, x, s)).toThrow(/o has 1 elements/);
    expect(() => attentionBackward(x, x, x, x, [1, 2, 3], x, s)).toThrow(
      /lse has 3 elements, expected \[1, 1, 2\]/,
    );
    expect(() => attentionBackward(x, x, x, x, x, [], s)).toThrow(/dO has 0 elements/);
  });
});

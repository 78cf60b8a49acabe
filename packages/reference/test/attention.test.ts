import { describe, expect, it } from 'vitest';
import {
  type AttentionOptions,
  attentionBackward,
  attentionForward,
  attentionVarlen,
  attentionVarlenBackward,
  isKeyVisible,
  matmul,
  randn,
} from '../src/index.js';

describe('matmul', () => {
  it('multiplies a hand-computed example, and B transposed', () => {
    // [1 2 3; 4 5 6] · [7 8; 9 10; 11 12] = [58 64; 139 154]
    expect(Array.from(matmul([1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11, 12], 2, 3, 2))).toEqual([
      58, 64, 139, 154,
    ]);
    expect(
      Array.from(matmul([1, 2, 3, 4, 5, 6], [7, 9, 11, 8, 10, 12], 2, 3, 2, { transposeB: true })),
    ).toEqual([58, 64, 139, 154]);
  });
});

describe('attention forward', () => {
  it('computes a hand-worked case: d=1, two keys', () => {
    // q = 1, keys 0 and ln 3 (scale 1): weights 1/4 and 3/4 of values 4 and 8 -> 7; lse = ln 4.
    const { o, lse } = attentionForward([1], [0, Math.log(3)], [4, 8], {
      batch: 1,
      n: 1,
      nk: 2,
      hq: 1,
      hkv: 1,
      d: 1,
      dv: 1,
      scale: 1,
    });
    expect(o[0]).toBeCloseTo(7, 5);
    expect(lse[0]).toBeCloseTo(Math.log(4), 6);
  });

  it('averages values: v = 1 gives o = 1 on every row that sees a key', () => {
    const s: AttentionOptions = { batch: 2, n: 9, nk: 13, hq: 4, hkv: 2, d: 3, dv: 2, causal: true };
    const { o } = attentionForward(
      randn(2 * 9 * 4 * 3, 1),
      randn(2 * 13 * 2 * 3, 2),
      new Float32Array(2 * 13 * 2 * 2).fill(1),
      s,
    );
    for (const x of o) expect(x).toBeCloseTo(1, 5);
  });

  it('masks like FlashAttention: bottom-right alignment, causal, windows', () => {
    expect(isKeyVisible(0, 4, 2, 5, true)).toBe(false); // row 0 of 2 sits at key 3
    expect(isKeyVisible(0, 3, 2, 5, true)).toBe(true);
    expect(isKeyVisible(5, 2, 10, 10, false, [3, 0])).toBe(true);
    expect(isKeyVisible(5, 1, 10, 10, false, [3, 0])).toBe(false);
    expect(isKeyVisible(5, 8, 10, 10, false, [-1, 3])).toBe(true);
    expect(isKeyVisible(5, 9, 10, 10, false, [-1, 3])).toBe(false);
    // A window wider than the sequence equals causal.
    const s: AttentionOptions = { batch: 1, n: 20, nk: 20, hq: 1, hkv: 1, d: 4, dv: 4 };
    const [q, k, v] = [randn(80, 3), randn(80, 4), randn(80, 5)];
    expect(attentionForward(q, k, v, { ...s, window: [512, 0] }).o).toEqual(
      attentionForward(q, k, v, { ...s, causal: true }).o,
    );
    expect(attentionForward(q, k, v, { ...s, window: [2, 0] }).o).not.toEqual(
      attentionForward(q, k, v, { ...s, causal: true }).o,
    );
  });

  it('gives o = 0 and lse = -inf to rows that see no key', () => {
    const { o, lse } = attentionForward(randn(5 * 2, 1), randn(2 * 2, 2), randn(2 * 2, 3), {
      batch: 1,
      n: 5,
      nk: 2,
      hq: 1,
      hkv: 1,
      d: 2,
      dv: 2,
      causal: true,
    });
    // Rows 0..2 sit before key 0.
    expect(Array.from(lse.subarray(0, 3))).toEqual([
      Number.NEGATIVE_INFINITY,
      Number.NEGATIVE_INFINITY,
      Number.NEGATIVE_INFINITY,
    ]);
    expect(Array.from(o.subarray(0, 6))).toEqual([0, 0, 0, 0, 0, 0]);
    expect(Number.isFinite(lse[3]!)).toBe(true);
  });

  it('treats GQA as sharing each KV head across its group', () => {
    const s: AttentionOptions = { batch: 1, n: 6, nk: 6, hq: 4, hkv: 2, d: 3, dv: 3, causal: true };
    const q = randn(6 * 4 * 3, 1);
    const k = randn(6 * 2 * 3, 2);
    const v = randn(6 * 2 * 3, 3);
    const repeat = (x: Float32Array) =>
      Float32Array.from(
        { length: 6 * 4 * 3 },
        (_, e) => x[Math.floor(e / 12) * 6 + Math.floor((e % 12) / 6) * 3 + (e % 3)]!,
      );
    expect(attentionForward(q, k, v, s).o).toEqual(
      attentionForward(q, repeat(k), repeat(v), { ...s, hkv: 4 }).o,
    );
  });
});

describe('attention backward', () => {
  const cases: [string, AttentionOptions][] = [
    ['causal, GQA', { batch: 1, n: 5, nk: 5, hq: 4, hkv: 2, d: 3, dv: 2, causal: true }],
    [
      'bottom-right nk > n with a window',
      { batch: 1, n: 4, nk: 7, hq: 2, hkv: 1, d: 3, dv: 2, causal: true, window: [2, 0] },
    ],
    ['two batches, not causal', { batch: 2, n: 3, nk: 4, hq: 2, hkv: 2, d: 2, dv: 3, scale: 0.7 }],
  ];
  for (const [name, s] of cases) {
    it(`matches central finite differences of sum(o · dO): ${name}`, () => {
      const q = Float64Array.from(randn(s.batch * s.n * s.hq * s.d, 1));
      const k = Float64Array.from(randn(s.batch * s.nk * s.hkv * s.d, 2));
      const v = Float64Array.from(randn(s.batch * s.nk * s.hkv * s.dv, 3));
      const dO = randn(s.batch * s.n * s.hq * s.dv, 4);
      const { o, lse } = attentionForward(q, k, v, s);
      const grads = attentionBackward(q, k, v, o, lse, dO, s);
      const loss = () => attentionForward(q, k, v, s).o.reduce((sum, x, i) => sum + x * dO[i]!, 0);
      const eps = 1e-3;
      for (const [input, grad] of [
        [q, grads.dq],
        [k, grads.dk],
        [v, grads.dv],
      ] as const) {
        for (let e = 0; e < input.length; e += 3) {
          const keep = input[e]!;
          input[e] = keep + eps;
          const up = loss();
          input[e] = keep - eps;
          const down = loss();
          input[e] = keep;
          expect(grad[e]!).toBeCloseTo((up - down) / (2 * eps), 2);
        }
      }
    });
  }
});

describe('variable-length batches', () => {
  it('equal per-sequence dense calls, lengths including 1', () => {
    const [hq, hkv, d, dv] = [2, 1, 3, 2];
    const cuQ = [0, 1, 6, 10];
    const cuK = [0, 1, 8, 10];
    const q = randn(10 * hq * d, 1);
    const k = randn(10 * hkv * d, 2);
    const v = randn(10 * hkv * dv, 3);
    const dO = randn(10 * hq * dv, 4);
    const opts = { hq, hkv, d, dv, causal: true };
    const packed = attentionVarlen(q, k, v, cuQ, cuK, opts);
    const grads = attentionVarlenBackward(q, k, v, packed.o, packed.lse, dO, cuQ, cuK, opts);
    // Sequence 1: queries 1..5, keys 1..7.
    const slice = (a: Float32Array, from: number, to: number, per: number) => a.slice(from * per, to * per);
    const dense = attentionForward(
      slice(q, 1, 6, hq * d),
      slice(k, 1, 8, hkv * d),
      slice(v, 1, 8, hkv * dv),
      { ...opts, batch: 1, n: 5, nk: 7 },
    );
    expect(packed.o.slice(hq * dv, 6 * hq * dv)).toEqual(dense.o);
    expect(packed.lse.slice(1, 6)).toEqual(dense.lse.slice(0, 5)); // head 0
    expect(packed.lse.slice(10 + 1, 10 + 6)).toEqual(dense.lse.slice(5, 10)); // head 1
    const denseGrads = attentionBackward(
      slice(q, 1, 6, hq * d),
      slice(k, 1, 8, hkv * d),
      slice(v, 1, 8, hkv * dv),
      dense.o,
      dense.lse,
      slice(dO, 1, 6, hq * dv),
      { ...opts, batch: 1, n: 5, nk: 7 },
    );
    expect(grads.dk.slice(hkv * d, 8 * hkv * d)).toEqual(denseGrads.dk);
  });
});

import { describe, expect, it } from 'vitest';
import {
  attentionBackward,
  attentionForward,
  attentionVarlen,
  attentionVarlenBackward,
  randn,
  type VarlenOptions,
} from '../src/index.js';

const OPTIONS: VarlenOptions = { hq: 4, hkv: 2, d: 3, dv: 2, causal: true, window: [3, -1] };
// Lengths (q, k): (1, 1), (5, 7), (0, 1), (4, 2), (1, 0), (2, 2): single tokens, empty sides, nk < n, nk > n.
const CU_Q = Int32Array.from([0, 1, 6, 6, 10, 11, 13]);
const CU_K = Int32Array.from([0, 1, 8, 9, 11, 11, 13]);

function packedInputs(totalQ: number, totalK: number, o: VarlenOptions) {
  return {
    q: randn(totalQ * o.hq * o.d, 61),
    k: randn(totalK * o.hkv * o.d, 62),
    v: randn(totalK * o.hkv * o.dv, 63),
    dO: randn(totalQ * o.hq * o.dv, 64),
  };
}

/** Tokens `from ..< to` of a packed `[tokens, heads, dim]` array. */
function tokens(x: Float32Array, from: number, to: number, perToken: number): Float32Array {
  return x.slice(from * perToken, to * perToken);
}

describe('attentionVarlen', () => {
  it('equals dense calls on each sequence, concatenated (o, lse, dq, dk, dv)', () => {
    const [totalQ, totalK] = [CU_Q.at(-1)!, CU_K.at(-1)!];
    const { hq, hkv, d, dv } = OPTIONS;
    const { q, k, v, dO } = packedInputs(totalQ, totalK, OPTIONS);
    const packed = attentionVarlen(q, k, v, CU_Q, CU_K, OPTIONS);
    const grads = attentionVarlenBackward(q, k, v, packed.o, packed.lse, dO, CU_Q, CU_K, OPTIONS);
    const expected = {
      o: [] as number[],
      lsePerHead: Array.from({ length: hq }, () => [] as number[]),
      dq: [] as number[],
      dk: [] as number[],
      dv: [] as number[],
    };
    for (let s = 0; s + 1 < CU_Q.length; s++) {
      const [q0, q1, k0, k1] = [CU_Q[s]!, CU_Q[s + 1]!, CU_K[s]!, CU_K[s + 1]!];
      const shape = { ...OPTIONS, batch: 1, n: q1 - q0, nk: k1 - k0 };
      const sq = tokens(q, q0, q1, hq * d);
      const sk = tokens(k, k0, k1, hkv * d);
      const sv = tokens(v, k0, k1, hkv * dv);
      const dense = attentionForward(sq, sk, sv, shape);
      const g = attentionBackward(sq, sk, sv, dense.o, dense.lse, tokens(dO, q0, q1, hq * dv), shape);
      expected.o.push(...dense.o);
      for (let h = 0; h < hq; h++)
        expected.lsePerHead[h]!.push(...dense.lse.subarray(h * shape.n, (h + 1) * shape.n));
      expected.dq.push(...g.dq);
      expected.dk.push(...g.dk);
      expected.dv.push(...g.dv);
    }
    expect(Array.from(packed.o)).toEqual(expected.o);
    expect(Array.from(packed.lse)).toEqual(expected.lsePerHead.flat());
    expect(Array.from(grads.dq)).toEqual(expected.dq);
    expect(Array.from(grads.dk)).toEqual(expected.dk);
    expect(Array.from(grads.dv)).toEqual(expected.dv);
    // The sequence of 1 query and 0 keys, at token 10, sees nothing.
    for (let h = 0; h < hq; h++) expect(packed.lse[h * totalQ + 10]).toBe(Number.NEGATIVE_INFINITY);
  });

  it('with equal lengths, equals a dense batch, lse transposed from [b, hq, n] to [hq, b·n]', () => {
    const [batch, n, nk] = [3, 4, 5];
    const o: VarlenOptions = { hq: 2, hkv: 1, d: 3, dv: 2, causal: true };
    const { q, k, v, dO } = packedInputs(batch * n, batch * nk, o);
    const cuQ = [0, 4, 8, 12];
    const cuK = [0, 5, 10, 15];
    const packed = attentionVarlen(q, k, v, cuQ, cuK, o);
    const dense = attentionForward(q, k, v, { ...o, batch, n, nk });
    expect(packed.o).toEqual(dense.o);
    for (let b = 0; b < batch; b++) {
      for (let h = 0; h < o.hq; h++) {
        for (let i = 0; i < n; i++) {
          expect(packed.lse[h * batch * n + b * n + i]).toBe(dense.lse[(b * o.hq + h) * n + i]);
        }
      }
    }
    const packedGrads = attentionVarlenBackward(q, k, v, packed.o, packed.lse, dO, cuQ, cuK, o);
    expect(packedGrads).toEqual(attentionBackward(q, k, v, dense.o, dense.lse, dO, { ...o, batch, n, nk }));
  });

  it('rejects malformed cumulative lengths and inputs that do not match them', () => {
    const o: VarlenOptions = { hq: 1, hkv: 1, d: 1, dv: 1 };
    const x = [1, 2, 3];
    expect(() => attentionVarlen(x, x, x, [0, 3], [0, 1, 3], o)).toThrow(/2 entries and cuSeqlensK 3/);
    expect(() => attentionVarlen(x, x, x, [1, 3], [0, 3], o)).toThrow(/cuSeqlensQ must start with 0/);
    expect(() => attentionVarlen(x, x, x, [0, 2, 1, 3], [0, 1, 2, 3], o)).toThrow(/non-decreasing/);
    expect(() => attentionVarlen(x, x, x, [0, 2], [0, 3], o)).toThrow(
      /q has 3 elements, expected \[2, 1, 1\]/,
    );
    expect(() => attentionVarlen(x, x, x, [0, 3], [0, 3], { ...o, hq: 3, hkv: 2 })).toThrow(
      /multiple of hkv/,
    );
    expect(() => attentionVarlenBackward(x, x, x, x, [1], x, [0, 3], [0, 3], o)).toThrow(
      /lse has 1 elements/,
    );
  });
});

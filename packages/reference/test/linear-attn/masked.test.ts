import { describe, expect, it } from 'vitest';
import {
  type MaskedLinearAttentionOptions,
  maskedLinearAttention,
  maskedLinearAttentionBackward,
  matmul,
} from '../../src/index.js';
import { repeatKvHeads, sumKvHeadGroups } from '../support/repeat-kv-heads.js';
import { headRows } from '../support/single-head-attention.js';
import { expectClose, randomBinaryMask, randomQkv, randomRealMask, range } from './helpers.js';

/**
 * O of one (sequence, head) computed another way: the head's rows cut out of the token-major tensors
 * and multiplied as matrices, `S = Q Kᵀ`, `O = (S ⊙ M) V`, with the shared matmul reference.
 */
function headOutput(
  x: { q: ArrayLike<number>; k: ArrayLike<number>; v: ArrayLike<number> },
  mask: ArrayLike<number>,
  s: MaskedLinearAttentionOptions,
  b: number,
  h: number,
): Float32Array {
  const { n, hq, hkv, dk, dv } = s;
  const kvHead = Math.floor(h / (hq / hkv));
  const Q = headRows(x.q, b, h, n, hq, dk).flat();
  const K = headRows(x.k, b, kvHead, n, hkv, dk).flat();
  const V = headRows(x.v, b, kvHead, n, hkv, dv).flat();
  const scores = matmul(Q, K, n, dk, n, { transposeB: true });
  const mb = s.maskBatch === 1 ? 0 : b;
  const mh = s.maskHeads === 1 ? 0 : h;
  const M = range(mask, (mb * s.maskHeads + mh) * n * n, (mb * s.maskHeads + mh + 1) * n * n);
  return matmul(
    scores.map((a, e) => a * M[e]!),
    V,
    n,
    n,
    dv,
  );
}

const CASES: [string, MaskedLinearAttentionOptions][] = [
  ['mask [1, 1], GQA 4:2', { batch: 2, n: 7, hq: 4, hkv: 2, dk: 3, dv: 5, maskBatch: 1, maskHeads: 1 }],
  ['mask [b, 1], MQA', { batch: 2, n: 5, hq: 3, hkv: 1, dk: 4, dv: 2, maskBatch: 2, maskHeads: 1 }],
  [
    'mask [1, h], one kv head per query head',
    { batch: 3, n: 6, hq: 3, hkv: 3, dk: 2, dv: 3, maskBatch: 1, maskHeads: 3 },
  ],
  ['mask [b, h], GQA 4:1', { batch: 2, n: 9, hq: 4, hkv: 1, dk: 3, dv: 3, maskBatch: 2, maskHeads: 4 }],
  ['n = 1', { batch: 2, n: 1, hq: 2, hkv: 2, dk: 3, dv: 2, maskBatch: 1, maskHeads: 2 }],
];

describe('maskedLinearAttention', () => {
  it('computes a small example worked out by hand, forward and backward', () => {
    // q = [1, 2], k = [3, 4], v = [5, 6] (one dim), M = [[1, 0], [1, 1]]:
    // A = q kᵀ = [[3, 4], [6, 8]], A ⊙ M = [[3, 0], [6, 8]], o = [3·5, 6·5 + 8·6] = [15, 78].
    const s = { batch: 1, n: 2, hq: 1, hkv: 1, dk: 1, dv: 1, maskBatch: 1, maskHeads: 1 };
    const [q, k, v, m] = [
      [1, 2],
      [3, 4],
      [5, 6],
      [1, 0, 1, 1],
    ];
    expect(Array.from(maskedLinearAttention(q!, k!, v!, m!, s))).toEqual([15, 78]);
    // dO = [1, 1]: dA_m = dO vᵀ = [[5, 6], [5, 6]], dM = dA_m ⊙ A = [[15, 24], [30, 48]],
    // dA = dA_m ⊙ M = [[5, 0], [5, 6]], dq = dA k = [15, 39], dk = dAᵀ q = [15, 12],
    // dv = (A ⊙ M)ᵀ dO = [9, 8].
    const grads = maskedLinearAttentionBackward(q!, k!, v!, m!, [1, 1], s);
    expect(Array.from(grads.dm)).toEqual([15, 24, 30, 48]);
    expect(Array.from(grads.dq)).toEqual([15, 39]);
    expect(Array.from(grads.dk)).toEqual([15, 12]);
    expect(Array.from(grads.dv)).toEqual([9, 8]);
  });

  for (const [name, s] of CASES) {
    it(`equals (Q Kᵀ ⊙ M) V by matrix products, head by head: ${name}`, () => {
      const x = randomQkv(s, 11);
      for (const [kind, mask] of [
        ['random real', randomRealMask(s, 12)],
        ["the seed's random 0/1", randomBinaryMask(s, 13)],
      ] as const) {
        const o = maskedLinearAttention(x.q, x.k, x.v, mask, s);
        for (let b = 0; b < s.batch; b++) {
          for (let h = 0; h < s.hq; h++) {
            const actual = headRows(o, b, h, s.n, s.hq, s.dv).flat();
            expectClose(`${kind} mask, b ${b}, h ${h}`, headOutput(x, mask, s, b, h), actual);
          }
        }
      }
    });
  }

  it('gives a row with an all-zero mask o = 0 and dq = 0, and a key no row weights dk = dv = 0', () => {
    const s = { batch: 1, n: 5, hq: 2, hkv: 1, dk: 3, dv: 2, maskBatch: 1, maskHeads: 1 };
    const x = randomQkv(s, 21);
    const m = randomRealMask(s, 22);
    for (let j = 0; j < s.n; j++) m[2 * s.n + j] = 0; // row 2: no key
    for (let i = 0; i < s.n; i++) m[i * s.n + 4] = 0; // column 4: no query
    const o = maskedLinearAttention(x.q, x.k, x.v, m, s);
    const grads = maskedLinearAttentionBackward(x.q, x.k, x.v, m, x.dO, s);
    const row = (a: ArrayLike<number>, t: number, heads: number, dim: number) =>
      range(a, t * heads * dim, (t + 1) * heads * dim);
    expect(row(o, 2, s.hq, s.dv)).toEqual([0, 0, 0, 0]);
    expect(row(grads.dq, 2, s.hq, s.dk)).toEqual([0, 0, 0, 0, 0, 0]);
    expect(row(grads.dk, 4, s.hkv, s.dk)).toEqual([0, 0, 0]);
    expect(row(grads.dv, 4, s.hkv, s.dv)).toEqual([0, 0]);
    // The other rows are not zero, and the zero mask entries still get a gradient.
    expect(Math.max(...row(o, 1, s.hq, s.dv).map(Math.abs))).toBeGreaterThan(1e-3);
    expect(Math.max(...range(grads.dm, 2 * s.n, 3 * s.n).map(Math.abs))).toBeGreaterThan(1e-3);
  });

  it('gives MQA / GQA the result and summed gradients of multi-head attention with repeated kv heads', () => {
    for (const hkv of [1, 2]) {
      const s = { batch: 2, n: 6, hq: 4, hkv, dk: 3, dv: 2, maskBatch: 1, maskHeads: 4 };
      const group = s.hq / hkv;
      const x = randomQkv(s, 31 + hkv);
      const m = randomBinaryMask(s, 35);
      const k = repeatKvHeads(x.k, s.batch, s.n, hkv, group, s.dk);
      const v = repeatKvHeads(x.v, s.batch, s.n, hkv, group, s.dv);
      const mha = { ...s, hkv: s.hq };
      expectClose(
        `o, hkv ${hkv}`,
        maskedLinearAttention(x.q, k, v, m, mha),
        maskedLinearAttention(x.q, x.k, x.v, m, s),
      );
      const full = maskedLinearAttentionBackward(x.q, k, v, m, x.dO, mha);
      const grouped = maskedLinearAttentionBackward(x.q, x.k, x.v, m, x.dO, s);
      expectClose('dq', full.dq, grouped.dq);
      expectClose('dk', sumKvHeadGroups(full.dk, s.batch, s.n, hkv, group, s.dk), grouped.dk);
      expectClose('dv', sumKvHeadGroups(full.dv, s.batch, s.n, hkv, group, s.dv), grouped.dv);
      expectClose('dm', full.dm, grouped.dm);
    }
  });

  it('broadcasts the mask: [1, 1] equals the same mask tiled to [b, h], and dM is the tiled dM summed', () => {
    const s = { batch: 2, n: 4, hq: 3, hkv: 1, dk: 2, dv: 3, maskBatch: 1, maskHeads: 1 };
    const x = randomQkv(s, 41);
    const m = randomRealMask(s, 42);
    const tiled = { ...s, maskBatch: s.batch, maskHeads: s.hq };
    const copies = s.batch * s.hq;
    const mTiled = Float64Array.from({ length: copies * m.length }, (_, e) => m[e % m.length]!);
    expectClose(
      'o',
      maskedLinearAttention(x.q, x.k, x.v, mTiled, tiled),
      maskedLinearAttention(x.q, x.k, x.v, m, s),
    );
    const dmTiled = maskedLinearAttentionBackward(x.q, x.k, x.v, mTiled, x.dO, tiled).dm;
    const dmSummed = new Float64Array(m.length);
    dmTiled.forEach((g, e) => {
      dmSummed[e % m.length]! += g;
    });
    expectClose('dm', dmSummed, maskedLinearAttentionBackward(x.q, x.k, x.v, m, x.dO, s).dm);
  });

  it('rejects mask dims that are neither 1 nor the dim they broadcast over, and mismatched lengths', () => {
    const s = { batch: 2, n: 3, hq: 2, hkv: 1, dk: 2, dv: 2, maskBatch: 1, maskHeads: 1 };
    const x = randomQkv(s, 51);
    const m = randomRealMask(s, 52);
    expect(() => maskedLinearAttention(x.q, x.k, x.v, m, { ...s, maskBatch: 3 })).toThrow(/maskBatch/);
    expect(() => maskedLinearAttention(x.q, x.k, x.v, m, { ...s, maskHeads: 2 })).toThrow(/m has/);
    expect(() => maskedLinearAttention(x.q, x.k, x.v, m, { ...s, hkv: 3 })).toThrow(/multiple/);
    expect(() => maskedLinearAttention(x.q, x.q, x.v, m, s)).toThrow(/k has/);
    expect(() => maskedLinearAttentionBackward(x.q, x.k, x.v, m, x.v, s)).toThrow(/dO has/);
  });
});

import { describe, expect, it } from 'vitest';
import { type AttentionOptions, type AttentionWindow, attentionForward, randn } from '../src/index.js';
import { repeatKvHeads } from './support/repeat-kv-heads.js';
import { bandMask, headRows, singleHeadAttention } from './support/single-head-attention.js';

const NEG_INF = Number.NEGATIVE_INFINITY;

/** Random q, k, v for a shape, from fixed seeds. */
function inputs(s: AttentionOptions, seed = 1) {
  return {
    q: randn(s.batch * s.n * s.hq * s.d, seed),
    k: randn(s.batch * s.nk * s.hkv * s.d, seed + 1),
    v: randn(s.batch * s.nk * s.hkv * s.dv, seed + 2),
  };
}

/** Rows `from ..< to` of head 0 of a `[1, n, 1, dv]` output. */
function rows(o: Float32Array, dv: number, from: number, to: number): Float32Array {
  return o.subarray(from * dv, to * dv);
}

/**
 * Checks every (sequence, head) of the reference against {@link singleHeadAttention} with the mask
 * written as a band: keys `from(i) ..= to(i)`.
 */
function expectMatchesBand(s: AttentionOptions, from: (i: number) => number, to: (i: number) => number) {
  const { q, k, v } = inputs(s, 11);
  const { o, lse } = attentionForward(q, k, v, s);
  const scale = s.scale ?? 1 / Math.sqrt(s.d);
  const mask = bandMask(s.n, s.nk, from, to);
  for (let b = 0; b < s.batch; b++) {
    for (let h = 0; h < s.hq; h++) {
      const kvHead = Math.floor((h * s.hkv) / s.hq);
      const expected = singleHeadAttention(
        headRows(q, b, h, s.n, s.hq, s.d),
        headRows(k, b, kvHead, s.nk, s.hkv, s.d),
        headRows(v, b, kvHead, s.nk, s.hkv, s.dv),
        mask,
        scale,
      );
      expect(headRows(o, b, h, s.n, s.hq, s.dv).flat()).toEqual(
        expected.o.flat().map((x) => expect.closeTo(x, 6)),
      );
      const lseRow = Array.from(lse.subarray((b * s.hq + h) * s.n, (b * s.hq + h + 1) * s.n));
      expect(lseRow).toEqual(expected.lse.map((x) => (x === NEG_INF ? NEG_INF : expect.closeTo(x, 5))));
    }
  }
}

describe('attentionForward: hand-worked cases', () => {
  it('d = 1, two keys: weights 1/4 and 3/4', () => {
    // Scores 0 and ln 3 -> softmax 1/4, 3/4 -> o = 4/4 + 3·8/4 = 7, lse = ln(1 + 3).
    const { o, lse } = attentionForward([1], [0, Math.log(3)], [4, 8], {
      batch: 1,
      n: 1,
      nk: 2,
      hq: 1,
      hkv: 1,
      d: 1,
      dv: 1,
    });
    expect(o[0]).toBeCloseTo(7, 5);
    expect(lse[0]).toBeCloseTo(Math.log(4), 6);
  });

  it('applies the scale to the scores, not to the output', () => {
    // q·k = 2 ln 3 for key 1, scale 1/2 -> the same weights as above; dv = 2 this time.
    const { o, lse } = attentionForward([2], [0, Math.log(3)], [4, -4, 8, 0], {
      batch: 1,
      n: 1,
      nk: 2,
      hq: 1,
      hkv: 1,
      d: 1,
      dv: 2,
      scale: 0.5,
    });
    expect(o[0]).toBeCloseTo(7, 5);
    expect(o[1]).toBeCloseTo(-1, 5);
    expect(lse[0]).toBeCloseTo(Math.log(4), 6);
  });

  it('window [0, 0] picks exactly the aligned key, so o copies that value row', () => {
    // n = 4 queries over nk = 2 keys: rows sit at keys -2, -1, 0, 1.
    const v = [5, 6, 7, 8];
    const { o, lse } = attentionForward(randn(4 * 3, 1), randn(2 * 3, 2), v, {
      batch: 1,
      n: 4,
      nk: 2,
      hq: 1,
      hkv: 1,
      d: 3,
      dv: 2,
      window: [0, 0],
    });
    expect(Array.from(o)).toEqual([0, 0, 0, 0, 5, 6, 7, 8]);
    expect(Array.from(lse.subarray(0, 2))).toEqual([NEG_INF, NEG_INF]);
  });
});

describe('attentionForward: softmax and masking', () => {
  it('averages values: v = 1 gives o = 1 on every row that sees a key and 0 elsewhere', () => {
    // nk < n with causal: rows 0..2 sit before key 0 and see nothing.
    const s: AttentionOptions = { batch: 2, n: 9, nk: 6, hq: 4, hkv: 2, d: 3, dv: 2, causal: true };
    const { q, k } = inputs(s);
    const { o } = attentionForward(q, k, new Float32Array(2 * 6 * 2 * 2).fill(1), s);
    for (let b = 0; b < s.batch; b++) {
      for (let i = 0; i < s.n; i++) {
        for (let h = 0; h < s.hq; h++) {
          const expected = i < 3 ? 0 : 1;
          for (const x of headRows(o, b, h, s.n, s.hq, s.dv)[i]!) expect(x).toBeCloseTo(expected, 6);
        }
      }
    }
  });

  it('without a mask, matches an independent implementation, lse included', () => {
    expectMatchesBand(
      { batch: 2, n: 5, nk: 8, hq: 4, hkv: 2, d: 3, dv: 2, scale: 1.3 },
      () => 0,
      () => 7,
    );
  });

  it('causal, n = nk: matches the explicit lower-triangular mask', () => {
    expectMatchesBand(
      { batch: 2, n: 7, nk: 7, hq: 4, hkv: 2, d: 3, dv: 2, causal: true },
      () => 0,
      (i) => i,
    );
  });

  it('causal, nk > n: matches the mask shifted right by nk - n (bottom-right alignment)', () => {
    expectMatchesBand(
      { batch: 1, n: 3, nk: 8, hq: 2, hkv: 1, d: 4, dv: 3, causal: true },
      () => 0,
      (i) => i + 5,
    );
  });

  it('causal, nk < n: matches the mask shifted left, with empty leading rows', () => {
    expectMatchesBand(
      { batch: 1, n: 8, nk: 3, hq: 2, hkv: 2, d: 2, dv: 2, causal: true },
      () => 0,
      (i) => i - 5,
    );
  });

  it('n = 1 (decode): the single query sees every key, causal or not', () => {
    const s: AttentionOptions = { batch: 2, n: 1, nk: 9, hq: 4, hkv: 1, d: 3, dv: 3 };
    const { q, k, v } = inputs(s);
    expect(attentionForward(q, k, v, { ...s, causal: true })).toEqual(attentionForward(q, k, v, s));
    expectMatchesBand(
      { ...s, causal: true },
      () => 0,
      () => 8,
    );
    expectMatchesBand(
      { ...s, window: [2, -1] },
      () => 6,
      () => 8,
    );
  });

  it('a two-sided window, bottom-right aligned, matches its band', () => {
    expectMatchesBand(
      { batch: 1, n: 6, nk: 9, hq: 2, hkv: 1, d: 3, dv: 2, window: [2, 1] },
      (i) => i + 3 - 2,
      (i) => i + 3 + 1,
    );
  });

  it('window [512, 0] differs from causal exactly on the rows that lose keys (n = 600)', () => {
    const s: AttentionOptions = { batch: 1, n: 600, nk: 600, hq: 1, hkv: 1, d: 2, dv: 2 };
    const { q, k, v } = inputs(s, 5);
    const causal = attentionForward(q, k, v, { ...s, causal: true });
    const windowed = attentionForward(q, k, v, { ...s, window: [512, 0] });
    // Row i sees keys max(0, i - 512) ..= i, the same as causal up to row 512.
    expect(rows(windowed.o, 2, 0, 513)).toEqual(rows(causal.o, 2, 0, 513));
    expect(windowed.lse.subarray(0, 513)).toEqual(causal.lse.subarray(0, 513));
    for (let i = 513; i < 600; i++) {
      expect(windowed.lse[i]!, `row ${i}`).toBeLessThan(causal.lse[i]!);
      expect(rows(windowed.o, 2, i, i + 1)).not.toEqual(rows(causal.o, 2, i, i + 1));
    }
  });

  it('a window at least as wide as the sequence equals causal, and [-1, 0] is causal', () => {
    const s: AttentionOptions = { batch: 1, n: 40, nk: 40, hq: 2, hkv: 1, d: 3, dv: 2 };
    const { q, k, v } = inputs(s, 9);
    const causal = attentionForward(q, k, v, { ...s, causal: true });
    for (const window of [
      [39, 0],
      [40, 0],
      [4096, 0],
      [-1, 0],
    ] as AttentionWindow[]) {
      expect(attentionForward(q, k, v, { ...s, window }), `window [${window}]`).toEqual(causal);
    }
    expect(attentionForward(q, k, v, { ...s, window: [38, 0] })).not.toEqual(causal);
    expect(attentionForward(q, k, v, { ...s, window: [-1, -1] })).toEqual(attentionForward(q, k, v, s));
  });

  it('causal forces the right side of a window to 0', () => {
    const s: AttentionOptions = { batch: 1, n: 12, nk: 15, hq: 1, hkv: 1, d: 3, dv: 2 };
    const { q, k, v } = inputs(s, 13);
    expect(attentionForward(q, k, v, { ...s, causal: true, window: [3, 5] })).toEqual(
      attentionForward(q, k, v, { ...s, window: [3, 0] }),
    );
  });
});

describe('attentionForward: GQA', () => {
  it('equals multi-head attention with each kv head repeated over its group', () => {
    for (const [hq, hkv] of [
      [4, 2],
      [6, 1],
      [3, 3],
    ]) {
      const s: AttentionOptions = { batch: 2, n: 6, nk: 7, hq: hq!, hkv: hkv!, d: 3, dv: 2, causal: true };
      const { q, k, v } = inputs(s, 21);
      const group = hq! / hkv!;
      const repeated = {
        k: repeatKvHeads(k, 2, 7, hkv!, group, 3),
        v: repeatKvHeads(v, 2, 7, hkv!, group, 2),
      };
      expect(attentionForward(q, repeated.k, repeated.v, { ...s, hkv: hq! })).toEqual(
        attentionForward(q, k, v, s),
      );
    }
  });
});

describe('attentionForward: rows without keys and bad input', () => {
  it('gives o = 0 and lse = -Infinity, never NaN, to rows that see no key', () => {
    const s: AttentionOptions = { batch: 1, n: 5, nk: 2, hq: 2, hkv: 1, d: 2, dv: 2, causal: true };
    const { q, k, v } = inputs(s);
    const { o, lse } = attentionForward(q, k, v, s);
    for (let h = 0; h < 2; h++) {
      // Rows 0..2 sit at keys -3..-1.
      expect(Array.from(lse.subarray(h * 5, h * 5 + 3))).toEqual([NEG_INF, NEG_INF, NEG_INF]);
      expect(headRows(o, 0, h, 5, 2, 2).slice(0, 3).flat()).toEqual([0, 0, 0, 0, 0, 0]);
      expect(Number.isFinite(lse[h * 5 + 3]!)).toBe(true);
    }
    const noKeys = attentionForward(randn(3 * 2, 1), [], [], {
      batch: 1,
      n: 3,
      nk: 0,
      hq: 1,
      hkv: 1,
      d: 2,
      dv: 2,
    });
    expect(Array.from(noKeys.o)).toEqual([0, 0, 0, 0, 0, 0]);
    expect(Array.from(noKeys.lse)).toEqual([NEG_INF, NEG_INF, NEG_INF]);
  });

  it('stays finite for large scores, where exp without the max shift would overflow', () => {
    const { o, lse } = attentionForward([1], [800, 799], [1, 3], {
      batch: 1,
      n: 1,
      nk: 2,
      hq: 1,
      hkv: 1,
      d: 1,
      dv: 1,
    });
    // softmax(800, 799) = (1, e⁻¹) / (1 + e⁻¹)
    const w = 1 / (1 + Math.exp(-1));
    expect(o[0]).toBeCloseTo(w + 3 * (1 - w), 5);
    expect(lse[0]).toBeCloseTo(800 + Math.log(1 + Math.exp(-1)), 3);
  });

  it('rejects head counts that do not divide, wrong lengths and malformed windows', () => {
    const s: AttentionOptions = { batch: 1, n: 2, nk: 2, hq: 3, hkv: 2, d: 1, dv: 1 };
    expect(() => attentionForward([1, 2, 3, 4, 5, 6], [1, 2, 3, 4], [1, 2, 3, 4], s)).toThrow(
      /hq \(3\) must be a multiple of hkv \(2\)/,
    );
    const t: AttentionOptions = { ...s, hq: 2, hkv: 1 };
    expect(() => attentionForward([1, 2, 3], [1, 2], [1, 2], t)).toThrow(
      /q has 3 elements, expected \[1, 2, 2, 1\]/,
    );
    expect(() => attentionForward([1, 2, 3, 4], [1, 2], [1], t)).toThrow(/v has 1 elements/);
    expect(() => attentionForward([1, 2, 3, 4], [1, 2], [1, 2], { ...t, window: [-2, 0] })).toThrow(/window/);
    expect(() => attentionForward([1, 2, 3, 4], [1, 2], [1, 2], { ...t, n: 1.5 })).toThrow(
      /n must be an integer/,
    );
  });
});

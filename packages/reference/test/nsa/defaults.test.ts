/**
 * One run at the reference defaults (l 32, s 16, L 64, topN 16, w 512, 1 init + 2 local blocks) with
 * n = 1100: not a multiple of the stride, the selection block or the window, and past topN · L = 1024,
 * so the last queries are the first whose selection is sparse.
 */
import { describe, expect, it } from 'vitest';
import { attentionForward, type NsaOptions, nsaDecode, nsaForward } from '../../src/index.js';
import { randomInputs } from './helpers.js';

const S: NsaOptions = { batch: 1, n: 1100, hq: 4, hkv: 1, dqk: 8, dv: 4 };
const [l, L, topN, w] = [32, 64, 16, 512];
const NB = Math.ceil(S.n / L);

describe('NSA at the reference defaults, n = 1100', () => {
  const x = randomInputs(S, 401);
  const out = nsaForward(x, S);
  const dense = { ...S, nk: S.n, d: S.dqk };

  it('compresses into 67 blocks and leaves the first 31 queries without a compressed block', () => {
    expect(out.cmpK).toHaveLength(67 * S.dqk);
    for (let h = 0; h < S.hq; h++) {
      expect(Array.from(out.compressed.lse.subarray(h * S.n, h * S.n + l - 1))).toEqual(
        new Array(l - 1).fill(0),
      );
      expect(out.compressed.lse[h * S.n + l - 1]).not.toBe(0);
    }
    expect(Array.from(out.compressed.o.subarray(0, (l - 1) * S.hq * S.dv)).every((e) => e === 0)).toBe(true);
  });

  it('selects 1 init + 2 local blocks and the best others, all of them below t = topN · L', () => {
    for (let t = 0; t < S.n; t++) {
      const ki = Math.floor(t / L);
      const slots = Array.from(out.selection.subarray(t * topN, (t + 1) * topN));
      const used = slots.filter((J) => J >= 0);
      const count = Math.min(topN, ki + 1);
      expect(
        slots.slice(count).every((J) => J === -1),
        `t ${t}: unused slots are -1`,
      ).toBe(true);
      expect(new Set(used).size, `t ${t}: distinct`).toBe(count);
      expect(
        used.every((J) => J <= ki),
        `t ${t}: no future block`,
      ).toBe(true);
      expect(used.slice(0, Math.min(3, ki + 1))).toEqual([0, ki, ki - 1].slice(0, Math.min(3, ki + 1)));
      const scores = out.blockScores.subarray(t * NB, (t + 1) * NB);
      // Each visible compressed block spreads l / s = 2 of probability per head over the blocks.
      const total = Array.from(scores).reduce((a, b) => a + b, 0);
      expect(total).toBeCloseTo(t >= l - 1 ? 2 * S.hq : 0, 4);
      const picked = used.slice(3).map((J) => scores[J]!);
      for (let J = 0; J <= ki; J++) {
        if (!used.includes(J))
          expect(scores[J]!, `t ${t}: block ${J} left out`).toBeLessThanOrEqual(Math.min(...picked));
      }
    }
    expect(out.selection.subarray(1099 * topN, 1100 * topN)).not.toContain(-1);
  });

  it('selected branch is dense causal attention for t < 1024; window branch is keys t - 512 ..= t', () => {
    const causal = attentionForward(x.q, x.k, x.v, { ...dense, causal: true });
    const rows = 1024 * S.hq * S.dv;
    expect(Array.from(out.selected.o.subarray(0, rows))).toEqual(
      Array.from(causal.o.subarray(0, rows), (e) => expect.closeTo(e, 5)),
    );
    expect(Array.from(out.selected.o.subarray(rows))).not.toEqual(
      Array.from(causal.o.subarray(rows), (e) => expect.closeTo(e, 5)),
    );
    const window = attentionForward(x.q, x.k, x.v, { ...dense, causal: true, window: [w, 0] });
    expect(Array.from(out.window.o)).toEqual(Array.from(window.o, (e) => expect.closeTo(e, 5)));
  });

  it('decodes the last token to the last row of the forward', () => {
    const lastQ = x.q.subarray((S.n - 1) * S.hq * S.dqk);
    const lastGates = x.gates.subarray((S.n - 1) * S.hq * 3);
    const step = nsaDecode({ ...x, q: lastQ, gates: lastGates }, [0, S.n], S);
    expect(step.o).toEqual(out.o.subarray((S.n - 1) * S.hq * S.dv));
    expect(step.selection).toEqual(out.selection.subarray((S.n - 1) * topN));
  });
});

import { describe, expect, it } from 'vitest';
import { type NsaOptions, nsaForward, resolveNsaConfig } from '../../src/index.js';
import { topNBlocks } from '../../src/nsa/selection.js';
import { repeatKvHeads } from '../support/repeat-kv-heads.js';
import { randomInputs, SMALL, tokenRow } from './helpers.js';

/** Blocks of 4 tokens; topN 4. */
const CONFIG = resolveNsaConfig({ ...SMALL, topN: 4 }, 4);
const QWEN = resolveNsaConfig({ ...SMALL, topN: 4, initBlocks: 0, localBlocks: 1 }, 4);

describe('topNBlocks', () => {
  // Block 5 is t's own block; block 4 scores highest, blocks 1 and 2 tie.
  const scores = [0.1, 0.5, 0.5, 0.2, 0.9, 0];

  it('forces the init and current blocks, then picks by score, ties to the lowest index', () => {
    expect(topNBlocks(scores, 20, CONFIG)).toEqual([0, 5, 4, 1]);
  });

  it('Qwen variant (initBlocks 0, localBlocks 1): only the current block is forced', () => {
    expect(topNBlocks(scores, 20, QWEN)).toEqual([5, 4, 1, 2]);
  });

  it('takes every causal block while they fit, each once, even when forced blocks coincide', () => {
    expect(topNBlocks(scores, 5, CONFIG)).toEqual([0, 1]);
    expect(topNBlocks(scores, 0, CONFIG)).toEqual([0]);
    const twoAndTwo = resolveNsaConfig({ ...SMALL, topN: 4, initBlocks: 2, localBlocks: 2 }, 4);
    expect(topNBlocks(scores, 9, twoAndTwo)).toEqual([0, 1, 2]);
    expect(topNBlocks(scores, 13, twoAndTwo)).toEqual([0, 1, 3, 2]);
  });

  it('never picks a future block, whatever it scores', () => {
    expect(topNBlocks([0, 0, 0, 9, 9, 9], 11, CONFIG)).toEqual([0, 2, 1]);
  });
});

describe('NSA selection', () => {
  const S: NsaOptions = { batch: 2, n: 23, hq: 6, hkv: 2, dqk: 3, dv: 2, ...SMALL, topN: 4 };
  const { kernelSize: l, stride: s, selectSize: L, topN } = CONFIG;
  const group = S.hq / S.hkv;
  const blocks = Math.floor((S.n - l) / s) + 1;
  const selectionBlocks = Math.ceil(S.n / L);
  const x = randomInputs(S, 201);
  const out = nsaForward(x, S);

  it('scores blocks by the group-summed compressed probabilities, spread by token overlap / stride', () => {
    const scale = 1 / Math.sqrt(S.dqk);
    for (let b = 0; b < S.batch; b++) {
      for (let t = 0; t < S.n; t++) {
        for (let g = 0; g < S.hkv; g++) {
          // p_cmp[m]: each head's softmax probability of block m, recovered from the branch's lse.
          const pCmp = Array.from({ length: blocks }, (_, m) => {
            if (m * s + l - 1 > t) return 0;
            let p = 0;
            for (let h = g * group; h < (g + 1) * group; h++) {
              const q = tokenRow(x.q, b, t, S.n, S.hq * S.dqk).slice(h * S.dqk, (h + 1) * S.dqk);
              const k = tokenRow(out.cmpK, b, m, blocks, S.hkv * S.dqk).slice(g * S.dqk, (g + 1) * S.dqk);
              const score = scale * q.reduce((sum, qc, c) => sum + qc * k[c]!, 0);
              p += Math.exp(score - out.compressed.lse[(b * S.hq + h) * S.n + t]!);
            }
            return p;
          });
          // Overlap counted token by token rather than by interval arithmetic.
          const want = Array.from({ length: selectionBlocks }, (_, J) =>
            pCmp.reduce((sum, p, m) => {
              let shared = 0;
              for (let token = m * s; token < m * s + l; token++) if (Math.floor(token / L) === J) shared++;
              return sum + (shared / s) * p;
            }, 0),
          );
          const row = ((b * S.n + t) * S.hkv + g) * selectionBlocks;
          const got = Array.from(out.blockScores.subarray(row, row + selectionBlocks));
          expect(got, `b ${b} t ${t} g ${g}`).toEqual(want.map((e) => expect.closeTo(e, 5)));
          // Every visible block's probability is spread in full (l / s), and each head's sum to 1.
          const total = got.reduce((a, c) => a + c, 0);
          expect(total).toBeCloseTo(t >= l - 1 ? (group * l) / s : 0, 5);
        }
      }
    }
  });

  it('selects the forced blocks and then the highest-scoring others, as a sort would', () => {
    for (let row = 0; row < S.batch * S.n * S.hkv; row++) {
      const t = Math.floor(row / S.hkv) % S.n;
      const ki = Math.floor(t / L);
      const scores = out.blockScores.subarray(row * selectionBlocks, (row + 1) * selectionBlocks);
      const forced = ki === 0 ? [0] : [0, ki];
      const others = Array.from({ length: ki + 1 }, (_, J) => J)
        .filter((J) => !forced.includes(J))
        .sort((a, b) => scores[b]! - scores[a]! || a - b);
      const count = Math.min(topN, ki + 1);
      const want = [...forced, ...others].slice(0, count);
      const got = Array.from(out.selection.subarray(row * topN, (row + 1) * topN));
      expect(got, `row ${row}`).toEqual([...want, ...new Array(topN - count).fill(-1)]);
    }
  });

  it('breaks exact ties toward the lowest index: with q = 0 every past block scores the same', () => {
    // n = 24, t = 23: blocks 1 .. 4 all get 1·p + 2·p + 1·p from uniform probabilities.
    const tie: NsaOptions = { ...S, n: 24, batch: 1 };
    const y = randomInputs(tie, 211);
    const zero = nsaForward({ ...y, q: new Float64Array(y.q.length) }, tie);
    const row = 23 * tie.hkv;
    const scores = zero.blockScores.subarray(row * 6, row * 6 + 6);
    expect(new Set(Array.from(scores.subarray(1, 5))).size).toBe(1);
    expect(Array.from(zero.selection.subarray(row * topN, (row + 1) * topN))).toEqual([0, 5, 1, 2]);
  });

  it('sums the probabilities over the GQA group: the group’s scores are those of its heads run one by one', () => {
    const mha: NsaOptions = { ...S, hkv: S.hq };
    const repeated = {
      ...x,
      k: repeatKvHeads(x.k, S.batch, S.n, S.hkv, group, S.dqk),
      v: repeatKvHeads(x.v, S.batch, S.n, S.hkv, group, S.dv),
    };
    const perHead = nsaForward(repeated, mha);
    for (let row = 0; row < S.batch * S.n * S.hkv; row++) {
      const want = new Array(selectionBlocks).fill(0);
      for (let h = 0; h < group; h++) {
        const headRow = (row * group + h) * selectionBlocks;
        for (let J = 0; J < selectionBlocks; J++) want[J] += perHead.blockScores[headRow + J]!;
      }
      const got = Array.from(out.blockScores.subarray(row * selectionBlocks, (row + 1) * selectionBlocks));
      expect(got).toEqual(want.map((e) => expect.closeTo(e, 5)));
    }
    // The branches that do not depend on the selection do not see the grouping at all.
    expect(Array.from(perHead.compressed.o)).toEqual(
      Array.from(out.compressed.o, (e) => expect.closeTo(e, 6)),
    );
    expect(Array.from(perHead.window.o)).toEqual(Array.from(out.window.o, (e) => expect.closeTo(e, 6)));
  });

  it('Qwen variant: block 0 is not forced, so low-scoring early blocks can drop out', () => {
    const qwen = nsaForward(x, { ...S, initBlocks: 0, localBlocks: 1 });
    let dropped = 0;
    for (let row = 0; row < S.batch * S.n * S.hkv; row++) {
      const t = Math.floor(row / S.hkv) % S.n;
      const got = Array.from(qwen.selection.subarray(row * topN, (row + 1) * topN)).filter((J) => J >= 0);
      expect(got[0]).toBe(Math.floor(t / L));
      if (!got.includes(0)) dropped++;
    }
    expect(dropped).toBeGreaterThan(0);
  });
});

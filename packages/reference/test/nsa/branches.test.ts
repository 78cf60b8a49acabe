/**
 * Each branch of the forward against a second, independent attention: the dense reference, or the
 * tests' single-head attention with the mask written out as a matrix.
 */
import { describe, expect, it } from 'vitest';
import { attentionForward, type NsaOptions, type NsaOutput, nsaForward } from '../../src/index.js';
import { headRows, singleHeadAttention } from '../support/single-head-attention.js';
import { randomInputs, SMALL } from './helpers.js';

// n = 13: not a multiple of the stride, the selection block or the window; just above topN · L = 12.
const S: NsaOptions = { batch: 2, n: 13, hq: 4, hkv: 2, dqk: 3, dv: 2, ...SMALL };
const L = SMALL.selectSize!;
const l = SMALL.kernelSize!;
const s = SMALL.stride!;

/** Branch o and lse of (sequence b, head h) as nested rows, to compare with singleHeadAttention. */
function branchRows(branch: NsaOutput['compressed'], opts: NsaOptions, b: number, h: number) {
  return {
    o: headRows(branch.o, b, h, opts.n, opts.hq, opts.dv),
    lse: Array.from(branch.lse.subarray((b * opts.hq + h) * opts.n, (b * opts.hq + h + 1) * opts.n)),
  };
}

function expectRowsClose(actual: number[][], expected: number[][], digits = 5) {
  expect(actual.flat()).toEqual(expected.flat().map((x) => expect.closeTo(x, digits)));
}

describe('NSA branches', () => {
  const x = randomInputs(S, 101);
  const out = nsaForward(x, S);
  const blocks = Math.floor((S.n - l) / s) + 1;
  const group = S.hq / S.hkv;

  it('compressed: attention over the blocks ending at or before t; rows t < l - 1 get o = 0 and lse = 0 exactly', () => {
    for (let b = 0; b < S.batch; b++) {
      for (let h = 0; h < S.hq; h++) {
        const g = Math.floor(h / group);
        const mask = Array.from({ length: S.n }, (_, t) =>
          Array.from({ length: blocks }, (_, m) => m * s + l - 1 <= t),
        );
        const want = singleHeadAttention(
          headRows(x.q, b, h, S.n, S.hq, S.dqk),
          headRows(out.cmpK, b, g, blocks, S.hkv, S.dqk),
          headRows(out.cmpV, b, g, blocks, S.hkv, S.dv),
          mask,
          1 / Math.sqrt(S.dqk),
        );
        const got = branchRows(out.compressed, S, b, h);
        expectRowsClose(got.o.slice(l - 1), want.o.slice(l - 1));
        expectRowsClose([got.lse.slice(l - 1)], [want.lse.slice(l - 1)]);
        expect(got.o.slice(0, l - 1).flat()).toEqual(new Array((l - 1) * S.dv).fill(0));
        expect(got.lse.slice(0, l - 1)).toEqual(new Array(l - 1).fill(0));
      }
    }
  });

  it('window: the dense reference with causal masking and window [windowSize, 0]', () => {
    const dense = attentionForward(x.q, x.k, x.v, {
      batch: S.batch,
      n: S.n,
      nk: S.n,
      hq: S.hq,
      hkv: S.hkv,
      d: S.dqk,
      dv: S.dv,
      causal: true,
      window: [SMALL.windowSize!, 0],
    });
    expect(Array.from(out.window.o)).toEqual(Array.from(dense.o, (e) => expect.closeTo(e, 6)));
    expect(Array.from(out.window.lse)).toEqual(Array.from(dense.lse, (e) => expect.closeTo(e, 6)));
  });

  it('selected: attention over the tokens <= t of the blocks its kv head selected', () => {
    for (let b = 0; b < S.batch; b++) {
      for (let h = 0; h < S.hq; h++) {
        const g = Math.floor(h / group);
        const chosen = (t: number) => {
          const row = ((b * S.n + t) * S.hkv + g) * SMALL.topN!;
          return Array.from(out.selection.subarray(row, row + SMALL.topN!));
        };
        const mask = Array.from({ length: S.n }, (_, t) =>
          Array.from({ length: S.n }, (_, key) => key <= t && chosen(t).includes(Math.floor(key / L))),
        );
        const want = singleHeadAttention(
          headRows(x.q, b, h, S.n, S.hq, S.dqk),
          headRows(x.k, b, g, S.n, S.hkv, S.dqk),
          headRows(x.v, b, g, S.n, S.hkv, S.dv),
          mask,
          1 / Math.sqrt(S.dqk),
        );
        const got = branchRows(out.selected, S, b, h);
        expectRowsClose(got.o, want.o);
        expectRowsClose([got.lse], [want.lse]);
      }
    }
    // Tokens 12 (block 3) select 3 of 4 blocks: the branch really is sparse there.
    expect(out.selection[12 * S.hkv * SMALL.topN! + 2]).toBeGreaterThanOrEqual(0);
  });

  it('selected: dense causal attention while every block fits in topN (t < topN · selectSize)', () => {
    const wide: NsaOptions = { ...S, topN: 4 };
    const all = nsaForward(x, wide);
    const dense = attentionForward(x.q, x.k, x.v, { ...S, nk: S.n, d: S.dqk, causal: true });
    expect(Array.from(all.selected.o)).toEqual(Array.from(dense.o, (e) => expect.closeTo(e, 6)));
  });

  it('combines the branches as σ(g0) compressed + σ(g1) selected + σ(g2) window', () => {
    const sigmoid = (z: number) => 1 / (1 + Math.exp(-z));
    const want = Array.from(out.o, (_, e) => {
      const row = Math.floor(e / S.dv);
      return [out.compressed, out.selected, out.window].reduce(
        (sum, branch, i) => sum + sigmoid(x.gates[row * 3 + i]!) * branch.o[e]!,
        0,
      );
    });
    expect(Array.from(out.o)).toEqual(want.map((e) => expect.closeTo(e, 6)));
    // A gate saturated open with the others shut passes its branch through alone.
    for (const [i, branch] of (['compressed', 'selected', 'window'] as const).entries()) {
      const gates = Array.from(x.gates, (_, e) => (e % 3 === i ? 40 : -40));
      const alone = nsaForward({ ...x, gates }, S);
      expect(Array.from(alone.o)).toEqual(Array.from(out[branch].o, (e) => expect.closeTo(e, 6)));
    }
  });

  it('n < kernelSize: no compressed block, only block 0 selected, selected = window = dense causal', () => {
    const tiny: NsaOptions = { ...S, n: 3 };
    const y = randomInputs(tiny, 111);
    const got = nsaForward(y, tiny);
    expect(got.cmpK).toHaveLength(0);
    expect(got.cmpV).toHaveLength(0);
    expect(Array.from(got.compressed.o).every((e) => e === 0)).toBe(true);
    expect(Array.from(got.compressed.lse).every((e) => e === 0)).toBe(true);
    expect(Array.from(got.blockScores).every((e) => e === 0)).toBe(true);
    const slots = tiny.batch * tiny.n * tiny.hkv;
    expect(Array.from(got.selection)).toEqual(new Array(slots).fill([0, -1, -1]).flat());
    const dense = attentionForward(y.q, y.k, y.v, { ...tiny, nk: tiny.n, d: tiny.dqk, causal: true });
    expect(Array.from(got.selected.o)).toEqual(Array.from(dense.o, (e) => expect.closeTo(e, 6)));
    expect(Array.from(got.window.o)).toEqual(Array.from(dense.o, (e) => expect.closeTo(e, 6)));
  });
});

import { describe, expect, it } from 'vitest';
import { type NsaCompressor, nsaForward, resolveNsaConfig } from '../../src/index.js';
import { compressTokens } from '../../src/nsa/compress.js';

/** Two-token blocks without overlap, so every expectation below is worked out by hand. */
const PAIRS = resolveNsaConfig(
  { kernelSize: 2, stride: 2, selectSize: 2, topN: 1, initBlocks: 0, localBlocks: 1 },
  2,
);
/** Tokens [1, 2], [3, 4], [5, 6]: one sequence, one head, dim 2; token 2 fills no block. */
const X = [1, 2, 3, 4, 5, 6];
const SIZES = { batch: 1, n: 3, heads: 1, dim: 2 };

function compress(compressor: NsaCompressor): number[] {
  return Array.from(compressTokens(X, compressor, SIZES, PAIRS, 'kCompressor'));
}

const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));

describe('NSA compression', () => {
  it('mean-pools each block, at the spec’s n = 200: 11 blocks, block 10 = tokens 160 .. 191, the rest dropped', () => {
    const n = 200;
    // Token t carries (t, -t), so a block's mean is its middle position.
    const k = Array.from({ length: 2 * n }, (_, e) => (e % 2 === 0 ? 1 : -1) * Math.floor(e / 2));
    const zeros = new Float32Array(n * 3);
    const out = nsaForward(
      { q: new Float32Array(2 * n), k, v: new Float32Array(2 * n), gates: zeros },
      {
        batch: 1,
        n,
        hq: 1,
        hkv: 1,
        dqk: 2,
        dv: 2,
      },
    );
    expect(out.cmpK).toHaveLength(11 * 2);
    expect(Array.from(out.cmpK.subarray(0, 2))).toEqual([15.5, -15.5]);
    expect(Array.from(out.cmpK.subarray(20, 22))).toEqual([175.5, -175.5]);
  });

  it('drops tail tokens: three tokens make one two-token block', () => {
    expect(compress({ method: 'mean' })).toEqual([2, 3]);
  });

  it('weighted: (1/l) Σ_r weight[r] (x[r] + pe[r])', () => {
    const got = compress({ method: 'weighted', weight: [0.5, 2], pe: [1, 0, 0, 1] });
    // ½ · (0.5 · [2, 2] + 2 · [3, 5]) = [3.5, 5.5]
    expect(got).toEqual([3.5, 5.5]);
  });

  it('linear: weight · (block flattened position-major)', () => {
    // Rows pick token 1's channel 0 and 0.5 · token 0's channel 1.
    expect(compress({ method: 'linear', weight: [0, 0, 1, 0, 0, 0.5, 0, 0] })).toEqual([3, 1]);
  });

  it('swiglu and sigmoid-mul: act(first half of z) · second half', () => {
    // Gate rows pick token 0 ([1, 2]), value rows token 1 ([3, 4]).
    const weight = [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1];
    const swiglu = compress({ method: 'swiglu', weight });
    const sigmoidMul = compress({ method: 'sigmoid-mul', weight });
    expect(swiglu[0]).toBeCloseTo(1 * sigmoid(1) * 3, 12);
    expect(swiglu[1]).toBeCloseTo(2 * sigmoid(2) * 4, 12);
    expect(sigmoidMul[0]).toBeCloseTo(sigmoid(1) * 3, 12);
    expect(sigmoidMul[1]).toBeCloseTo(sigmoid(2) * 4, 12);
  });

  it('rejects parameters of the wrong size, naming them', () => {
    expect(() => compress({ method: 'weighted', weight: [1], pe: [0, 0, 0, 0] })).toThrow(
      /kCompressor.weight has 1 elements, expected \[2\]/,
    );
    expect(() => compress({ method: 'sigmoid-mul', weight: new Array(8).fill(0) })).toThrow(
      /kCompressor.weight has 8 elements, expected \[4, 4\]/,
    );
  });
});

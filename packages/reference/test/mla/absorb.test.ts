import { describe, expect, it } from 'vitest';
import {
  absorbMlaWeights,
  type MlaWeights,
  matmul,
  mergedQueryWeight,
  mlaAbsorbedInputs,
  rmsNorm,
} from '../../src/index.js';
import { expectClose, randomHidden, randomWeights, WITH_Q_LORA, WITHOUT_Q_LORA } from './helpers.js';

/** A `[rows, cols]` matrix whose entry (row, col) is `row · 1000 + col`, so that a value names its place. */
function indexed(rowsCount: number, cols: number): Float32Array {
  return Float32Array.from({ length: rowsCount * cols }, (_, e) => Math.floor(e / cols) * 1000 + (e % cols));
}

describe('absorbMlaWeights', () => {
  it('cuts q_b_proj per head into nope and rope rows, kv_b_proj into W_UK and W_UV transposed (spec §2)', () => {
    const dims = WITH_Q_LORA;
    const { heads, qLoraRank, kvLoraRank: r, qkNopeHeadDim: dn, qkRopeHeadDim: dr, vHeadDim: dv } = dims;
    const weights: MlaWeights = {
      ...randomWeights(dims, 1),
      qBProj: indexed(heads * (dn + dr), qLoraRank!),
      kvBProj: indexed(heads * (dn + dv), r),
    };
    const a = absorbMlaWeights(weights, dims);
    // Spec §2: q_b_proj.reshape(heads, dn + dr, in).split([dn, dr]); kv_b_proj.reshape(heads, dn + dv, r).split([dn, dv]).
    for (const [h, d, c] of [
      [0, 0, 0],
      [1, 7, 17],
      [2, 3, 9],
    ] as const) {
      expect(a.qNopeProj[(h * dn + d) * qLoraRank! + c]).toBe((h * (dn + dr) + d) * 1000 + c);
    }
    for (const [h, d, c] of [
      [0, 0, 0],
      [2, 5, 11],
    ] as const) {
      expect(a.qRopeProj[(h * dr + d) * qLoraRank! + c]).toBe((h * (dn + dr) + dn + d) * 1000 + c);
    }
    for (const [h, d, k] of [
      [0, 0, 0],
      [1, 7, 19],
      [2, 4, 3],
    ] as const) {
      // W_UK keeps kv_b_proj's [dn, r] rows; W_UV is the [dv, r] rows transposed to the kernel's [r, dv].
      expect(a.wUk[(h * dn + d) * r + k]).toBe((h * (dn + dv) + d) * 1000 + k);
      expect(a.wUv[(h * r + k) * dv + (d % dv)]).toBe((h * (dn + dv) + dn + (d % dv)) * 1000 + k);
    }
    expect([a.qNopeProj.length, a.qRopeProj.length, a.wUk.length, a.wUv.length]).toEqual([
      heads * dn * qLoraRank!,
      heads * dr * qLoraRank!,
      heads * dn * r,
      heads * r * dv,
    ]);
    expect(a.oProj).toBe(weights.oProj);
  });

  it('takes q_proj in place of q_b_proj without a query rank', () => {
    const dims = WITHOUT_Q_LORA;
    const { heads, hiddenSize, qkNopeHeadDim: dn, qkRopeHeadDim: dr } = dims;
    const weights = { ...randomWeights(dims, 2), qProj: indexed(heads * (dn + dr), hiddenSize) };
    const a = absorbMlaWeights(weights, dims);
    expect(a.qRopeProj[(1 * dr + 2) * hiddenSize + 5]).toBe((1 * (dn + dr) + dn + 2) * 1000 + 5);
    expect(a.qAProj).toBeUndefined();
  });
});

describe('mergedQueryWeight', () => {
  it("maps c_q to the same latent queries as the two steps (the spec's qk_merge)", () => {
    const dims = WITH_Q_LORA;
    const { hiddenSize, heads, qLoraRank, kvLoraRank: r } = dims;
    const weights = randomWeights(dims, 3);
    const absorbed = absorbMlaWeights(weights, dims);
    const tokens = 4;
    const hidden = randomHidden(dims, tokens, 4);
    const { qLatent } = mlaAbsorbedInputs(hidden, absorbed, {
      dims,
      rope: { style: 'rotate-half', theta: 10000 },
      newLengths: [tokens],
    });
    // c_q by the package's plain products, then the merged matrix in one product.
    const cQ = rmsNorm(
      matmul(hidden, weights.qAProj!, tokens, hiddenSize, qLoraRank!, { transposeB: true }),
      weights.qALayernorm!,
      tokens,
    );
    const merged = mergedQueryWeight(absorbed, dims);
    expect(merged).toHaveLength(heads * r * qLoraRank!);
    // Both sides round f32 intermediates (c_q, the merged weight) that the other does not.
    expectClose(matmul(cQ, merged, tokens, qLoraRank!, heads * r, { transposeB: true }), qLatent, {
      rmsRel: 1e-5,
      maxAbs: 1e-5,
    });
  });
});

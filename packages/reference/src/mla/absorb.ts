/**
 * The host-side absorption (spec §2): q_b_proj and kv_b_proj cut into the pieces the absorbed form
 * uses. W_UK moves to the query side, so that queries live in the latent space and c_kv serves as
 * the key; W_UV moves after the attention, as the kernel's epilogue. Only the nope part can move:
 * the rope rotation sits between query and key weights and depends on the position.
 */

import { checkLength } from '../attention-shape.js';
import { type MlaDims, queryInputSize } from './dims.js';
import { checkMlaWeights, checkSharedWeights, type MlaSharedWeights, type MlaWeights } from './weights.js';

/**
 * The weights of the absorbed form. The query's nope projection and W_UK are kept apart, so that the
 * latent query is computed in two steps (`q_nope`, then `W_UKᵀ` per head), which the spec recommends
 * over the merged matrix (3× its size); {@link mergedQueryWeight} builds that matrix when wanted.
 */
export interface MlaAbsorbedWeights extends MlaSharedWeights {
  /** The nope rows of q_b_proj (or q_proj), head-major, `[heads · qkNopeHeadDim, queryInput]` (W_UQ). */
  qNopeProj: Float32Array;
  /** The rope rows of q_b_proj (or q_proj), head-major, `[heads · qkRopeHeadDim, queryInput]` (W_QR, the spec's q_b_rope). */
  qRopeProj: Float32Array;
  /** The key rows of kv_b_proj, `[heads, qkNopeHeadDim, kvLoraRank]` (W_UK). */
  wUk: Float32Array;
  /** The value rows of kv_b_proj transposed per head, `[heads, kvLoraRank, vHeadDim]`: the kernel's `w_uv`. */
  wUv: Float32Array;
}

/**
 * Splits the standard weights into the absorbed form's (spec §2, "train2test"): q_b_proj viewed
 * `[heads, dn + dr, in]` and split into nope and rope rows, kv_b_proj viewed `[heads, dn + dv, r]`
 * and split into W_UK and W_UV, W_UV transposed per head. Copies only, so exact for f32 weights; the
 * shared weights are passed through.
 *
 * @param weights - The layer's weights in the HF layouts.
 * @param dims - Layer sizes.
 * @throws Error if a weight does not fit the dims.
 */
export function absorbMlaWeights(weights: MlaWeights, dims: MlaDims): MlaAbsorbedWeights {
  const qUp = checkMlaWeights(weights, dims);
  const { heads, kvLoraRank: r, qkNopeHeadDim: dn, qkRopeHeadDim: dr, vHeadDim: dv } = dims;
  const input = queryInputSize(dims);
  const qNopeProj = new Float32Array(heads * dn * input);
  const qRopeProj = new Float32Array(heads * dr * input);
  for (let h = 0; h < heads; h++) {
    for (let row = 0; row < dn + dr; row++) {
      const from = (h * (dn + dr) + row) * input;
      const [target, to] =
        row < dn ? [qNopeProj, (h * dn + row) * input] : [qRopeProj, (h * dr + row - dn) * input];
      for (let c = 0; c < input; c++) target[to + c] = qUp[from + c]!;
    }
  }
  const wUk = new Float32Array(heads * dn * r);
  const wUv = new Float32Array(heads * r * dv);
  for (let h = 0; h < heads; h++) {
    for (let k = 0; k < r; k++) {
      for (let d = 0; d < dn; d++) wUk[(h * dn + d) * r + k] = weights.kvBProj[(h * (dn + dv) + d) * r + k]!;
      for (let d = 0; d < dv; d++)
        wUv[(h * r + k) * dv + d] = weights.kvBProj[(h * (dn + dv) + dn + d) * r + k]!;
    }
  }
  const { qAProj, qALayernorm, kvAProjWithMqa, kvALayernorm, oProj } = weights;
  return { qAProj, qALayernorm, kvAProjWithMqa, kvALayernorm, oProj, qNopeProj, qRopeProj, wUk, wUv };
}

/** Throws unless the absorbed weights fit `dims`. */
export function checkAbsorbedWeights(weights: MlaAbsorbedWeights, dims: MlaDims): void {
  checkSharedWeights(weights, dims);
  const { heads, kvLoraRank: r, qkNopeHeadDim: dn, qkRopeHeadDim: dr, vHeadDim: dv } = dims;
  checkLength('qNopeProj', weights.qNopeProj, [heads * dn, queryInputSize(dims)]);
  checkLength('qRopeProj', weights.qRopeProj, [heads * dr, queryInputSize(dims)]);
  checkLength('wUk', weights.wUk, [heads, dn, r]);
  checkLength('wUv', weights.wUv, [heads, r, dv]);
}

/**
 * The spec's single merged query weight `qk_merge`: per head `W_UK[h]ᵀ · W_UQ[h]`, stacked as
 * `[heads · kvLoraRank, queryInput]`, so that one product maps c_q to every head's latent query.
 * Summed in f64, rounded once to f32.
 *
 * @param weights - The absorbed weights.
 * @param dims - Layer sizes.
 * @throws Error if the weights do not fit the dims.
 */
export function mergedQueryWeight(weights: MlaAbsorbedWeights, dims: MlaDims): Float32Array {
  checkAbsorbedWeights(weights, dims);
  const { heads, kvLoraRank: r, qkNopeHeadDim: dn } = dims;
  const input = queryInputSize(dims);
  const merged = new Float32Array(heads * r * input);
  for (let h = 0; h < heads; h++) {
    for (let k = 0; k < r; k++) {
      for (let c = 0; c < input; c++) {
        let sum = 0;
        for (let d = 0; d < dn; d++)
          sum += weights.wUk[(h * dn + d) * r + k]! * weights.qNopeProj[(h * dn + d) * input + c]!;
        merged[(h * r + k) * input + c] = sum;
      }
    }
  }
  return merged;
}

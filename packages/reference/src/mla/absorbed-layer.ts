/**
 * The MLA layer in the absorbed form (spec §2): the same inputs, caches and outputs as the
 * unabsorbed {@link mlaLayer}, computed as inference kernels do, with attention over the latent
 * cache and no per-head keys or values ever formed.
 */
import { checkAbsorbedWeights, type MlaAbsorbedWeights } from './absorb.js';
import { mlaAbsorbedAttentionF64 } from './absorbed-attention.js';
import { queryInputSize } from './dims.js';
import { cachesToF32, type LatentStep, latentStep, rotateQueries } from './latent.js';
import type { MlaLayerOptions, MlaLayerOutput, MlaSequenceCache } from './layer-options.js';
import { linearF64 } from './linear.js';
import { mlaSoftmaxScale } from './rope-frequencies.js';

/** The kernel-level tensors of the new tokens of a layer call, packed as the input. */
export interface MlaAbsorbedInputs {
  /** Latent queries `W_UK[h]ᵀ q_nope_h`, `[totalNew, heads, kvLoraRank]`. */
  qLatent: Float32Array;
  /** Rotated rope queries, `[totalNew, heads, qkRopeHeadDim]`. */
  qPe: Float32Array;
  /** Each sequence's latent cache with the new tokens appended. */
  cache: MlaSequenceCache[];
}

function absorbedInputsF64(
  hidden: ArrayLike<number>,
  weights: MlaAbsorbedWeights,
  options: MlaLayerOptions,
): { step: LatentStep; qLatent: Float64Array; qPe: Float64Array } {
  checkAbsorbedWeights(weights, options.dims);
  const { heads, kvLoraRank: r, qkNopeHeadDim: dn, qkRopeHeadDim: dr } = options.dims;
  const step = latentStep(hidden, weights, options);
  const input = queryInputSize(options.dims);
  // Two steps rather than the merged matrix (spec §2, [rec]): q_nope, then W_UK[h]ᵀ per head.
  const qNope = linearF64(step.cQ, weights.qNopeProj, step.tokens, input, heads * dn);
  const qLatent = new Float64Array(step.tokens * heads * r);
  for (let row = 0; row < step.tokens * heads; row++) {
    const h = row % heads;
    for (let k = 0; k < r; k++) {
      let sum = 0;
      for (let d = 0; d < dn; d++) sum += qNope[row * dn + d]! * weights.wUk[(h * dn + d) * r + k]!;
      qLatent[row * r + k] = sum;
    }
  }
  const qPe = linearF64(step.cQ, weights.qRopeProj, step.tokens, input, heads * dr);
  rotateQueries(qPe, step, options, dr, 0);
  return { step, qLatent, qPe };
}

/**
 * The absorbed form's projections of the new tokens: what a layer call feeds the attention kernel
 * (with each sequence's cache as `c_kv`/`k_pe` and its length as `lengths`), in f64 rounded to f32.
 *
 * @param hidden - `[totalNew, hiddenSize]`, the new tokens of every sequence, packed in order.
 * @param weights - From {@link absorbMlaWeights}.
 * @param options - As for {@link mlaLayer}.
 * @throws Error if a weight, the input or a cache does not fit the dims.
 */
export function mlaAbsorbedInputs(
  hidden: ArrayLike<number>,
  weights: MlaAbsorbedWeights,
  options: MlaLayerOptions,
): MlaAbsorbedInputs {
  const { step, qLatent, qPe } = absorbedInputsF64(hidden, weights, options);
  return {
    qLatent: Float32Array.from(qLatent),
    qPe: Float32Array.from(qPe),
    cache: cachesToF32(step.caches),
  };
}

/** {@link mlaLayerAbsorbed} in f64: the output and the caches unrounded. */
export function mlaLayerAbsorbedF64(
  hidden: ArrayLike<number>,
  weights: MlaAbsorbedWeights,
  options: MlaLayerOptions,
): { out: Float64Array; caches: { cKv: Float64Array; kPe: Float64Array }[] } {
  const { step, qLatent, qPe } = absorbedInputsF64(hidden, weights, options);
  const { dims } = options;
  const { hiddenSize, heads, kvLoraRank: r, qkRopeHeadDim: dr, vHeadDim: dv } = dims;
  const scale = options.scale ?? mlaSoftmaxScale(dims, options.rope);
  const o = new Float64Array(step.tokens * heads * dv);
  step.sequences.forEach((seq, s) => {
    const cache = step.caches[s]!;
    const [from, to] = [seq.start * heads, (seq.start + seq.count) * heads];
    const length = seq.prefix + seq.count;
    const sequenceO = mlaAbsorbedAttentionF64(
      qLatent.subarray(from * r, to * r),
      qPe.subarray(from * dr, to * dr),
      cache.cKv,
      cache.kPe,
      weights.wUv,
      [length],
      { nq: seq.count, nk: length, heads, kvLoraRank: r, qkRopeHeadDim: dr, vHeadDim: dv, scale },
    );
    o.set(sequenceO, from * dv);
  });
  return { out: linearF64(o, weights.oProj, step.tokens, heads * dv, hiddenSize), caches: step.caches };
}

/**
 * The absorbed MLA attention layer: {@link mlaLayer}'s contract (same inputs, caches and outputs, up
 * to rounding), computed through {@link mlaAbsorbedInputs} and {@link mlaAbsorbedAttention}, then
 * o_proj. In f64, rounded once to f32.
 *
 * @param hidden - `[totalNew, hiddenSize]`, the new tokens of every sequence, packed in order.
 * @param weights - From {@link absorbMlaWeights}.
 * @param options - Sizes, rope, lengths and caches; see {@link MlaLayerOptions} for the masking.
 * @throws Error if a weight, the input or a cache does not fit the dims.
 */
export function mlaLayerAbsorbed(
  hidden: ArrayLike<number>,
  weights: MlaAbsorbedWeights,
  options: MlaLayerOptions,
): MlaLayerOutput {
  const { out, caches } = mlaLayerAbsorbedF64(hidden, weights, options);
  return { out: Float32Array.from(out), cache: cachesToF32(caches) };
}

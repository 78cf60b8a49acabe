/**
 * The part of the layer that both forms share and that must not differ between them: the query
 * input c_q, the latent cache entries of the new tokens, their positions and rope frequencies.
 */

import { checkLength } from '../attention-shape.js';
import { queryInputSize } from './dims.js';
import type { MlaLayerOptions, MlaSequenceCache } from './layer-options.js';
import { linearF64 } from './linear.js';
import { MLA_LATENT_NORM_EPS, rmsNormF64 } from './rms-norm.js';
import { rotateInPlace } from './rope.js';
import { type RopeFrequencies, ropeFrequencies } from './rope-frequencies.js';
import type { MlaSharedWeights } from './weights.js';

/** Where one sequence's new tokens lie in the packed input and what they attend. */
export interface SequenceStep {
  /** First new token in the packed input. */
  start: number;
  /** New tokens. */
  count: number;
  /** Cached tokens before them, and the position of the first new token. */
  prefix: number;
  /** Rope rates of the sequence at its new length. */
  frequencies: RopeFrequencies;
}

/** The shared results of one layer call, in f64. */
export interface LatentStep {
  /** One entry per sequence. */
  sequences: SequenceStep[];
  /** New tokens in all. */
  tokens: number;
  /** Query input, `[tokens, queryInputSize]`: `RMSNorm(q_a_proj x)`, or x itself without q_a_proj. */
  cQ: Float64Array;
  /** Each sequence's cache, old tokens then new, `[prefix + count, kvLoraRank]` and `[.., qkRopeHeadDim]`. */
  caches: { cKv: Float64Array; kPe: Float64Array }[];
}

function cachedTokens(cache: MlaSequenceCache | undefined, s: number, r: number, dr: number): number {
  if (cache === undefined) return 0;
  const tokens = cache.cKv.length / r;
  if (!Number.isInteger(tokens)) {
    throw new Error(`mla: cache[${s}].cKv has ${cache.cKv.length} elements, not a multiple of ${r}`);
  }
  checkLength(`cache[${s}].kPe`, cache.kPe, [tokens, dr]);
  return tokens;
}

function planSequences(options: MlaLayerOptions): SequenceStep[] {
  const { dims, rope, newLengths, cache } = options;
  if (cache !== undefined && cache.length !== newLengths.length) {
    throw new Error(`mla: ${newLengths.length} sequences but ${cache.length} caches`);
  }
  let start = 0;
  return newLengths.map((count, s) => {
    if (!Number.isSafeInteger(count) || count < 0) {
      throw new Error(`mla: newLengths[${s}] must be a non-negative integer, got ${count}`);
    }
    const prefix = cachedTokens(cache?.[s], s, dims.kvLoraRank, dims.qkRopeHeadDim);
    const step = {
      start,
      count,
      prefix,
      frequencies: ropeFrequencies(dims.qkRopeHeadDim, rope, prefix + count),
    };
    start += count;
    return step;
  });
}

/**
 * Projects the new tokens (spec §1.3 steps 1 and 3, and 5 for the key): c_q, then
 * `[c_raw | k_pe] = kv_a_proj_with_mqa x`, `c_kv = RMSNorm(c_raw)`, k_pe rotated at its position,
 * both appended to the sequence's cache.
 */
export function latentStep(
  hidden: ArrayLike<number>,
  weights: MlaSharedWeights,
  options: MlaLayerOptions,
): LatentStep {
  const { dims, rope } = options;
  const { hiddenSize, kvLoraRank: r, qkRopeHeadDim: dr } = dims;
  const eps = options.normEps ?? MLA_LATENT_NORM_EPS;
  const sequences = planSequences(options);
  const tokens = sequences.reduce((sum, s) => sum + s.count, 0);
  checkLength('hidden', hidden, [tokens, hiddenSize]);

  // The callers checked that the query down-projection is there exactly when dims.qLoraRank is.
  const cQ =
    dims.qLoraRank === undefined
      ? Float64Array.from(hidden)
      : rmsNormF64(
          linearF64(hidden, weights.qAProj!, tokens, hiddenSize, queryInputSize(dims)),
          weights.qALayernorm!,
          tokens,
          eps,
        );

  const kvA = linearF64(hidden, weights.kvAProjWithMqa, tokens, hiddenSize, r + dr);
  const rawLatent = new Float64Array(tokens * r);
  const kPe = new Float64Array(tokens * dr);
  for (let t = 0; t < tokens; t++) {
    rawLatent.set(kvA.subarray(t * (r + dr), t * (r + dr) + r), t * r);
    kPe.set(kvA.subarray(t * (r + dr) + r, (t + 1) * (r + dr)), t * dr);
  }
  const cKv = rmsNormF64(rawLatent, weights.kvALayernorm, tokens, eps);

  const caches = sequences.map((seq, s) => {
    const old = options.cache?.[s];
    const total = seq.prefix + seq.count;
    const seqCKv = new Float64Array(total * r);
    const seqKPe = new Float64Array(total * dr);
    if (old !== undefined) {
      seqCKv.set(Float64Array.from(old.cKv));
      seqKPe.set(Float64Array.from(old.kPe));
    }
    seqCKv.set(cKv.subarray(seq.start * r, (seq.start + seq.count) * r), seq.prefix * r);
    seqKPe.set(kPe.subarray(seq.start * dr, (seq.start + seq.count) * dr), seq.prefix * dr);
    // The cache stores the key already rotated (spec §1.4), each at its own position.
    for (let i = 0; i < seq.count; i++) {
      rotateInPlace(seqKPe, (seq.prefix + i) * dr, seq.prefix + i, seq.frequencies, rope.style);
    }
    return { cKv: seqCKv, kPe: seqKPe };
  });
  return { sequences, tokens, cQ, caches };
}

/**
 * Rotates the rope part of every head of every new token in place: `q` is `[tokens, heads, stride]`
 * and the rope values of a head start at `offset` in its `stride` values.
 */
export function rotateQueries(
  q: Float64Array,
  step: LatentStep,
  options: MlaLayerOptions,
  stride: number,
  offset: number,
): void {
  const { heads } = options.dims;
  for (const seq of step.sequences) {
    for (let i = 0; i < seq.count; i++) {
      for (let h = 0; h < heads; h++) {
        const at = ((seq.start + i) * heads + h) * stride + offset;
        rotateInPlace(q, at, seq.prefix + i, seq.frequencies, options.rope.style);
      }
    }
  }
}

/** f32 copies of the caches, as the layers return them. */
export function cachesToF32(caches: LatentStep['caches']): MlaSequenceCache[] {
  return caches.map(({ cKv, kPe }) => ({ cKv: Float32Array.from(cKv), kPe: Float32Array.from(kPe) }));
}

/**
 * The MLA layer as trained (spec §1.3): per-head queries from q_b_proj (or q_proj), per-head keys
 * and values expanded from the latent cache by kv_b_proj, causal softmax attention, o_proj. The
 * plain form that the absorbed one must reproduce.
 */
import { attentionForwardF64 } from '../attention-forward.js';
import { queryInputSize } from './dims.js';
import { mlaExpandKvF64 } from './expand-kv.js';
import { cachesToF32, latentStep, rotateQueries } from './latent.js';
import type { MlaLayerOptions, MlaLayerOutput } from './layer-options.js';
import { linearF64 } from './linear.js';
import { mlaSoftmaxScale } from './rope-frequencies.js';
import { checkMlaWeights, type MlaWeights } from './weights.js';

/** {@link mlaLayer} in f64: the output and the caches unrounded. */
export function mlaLayerF64(
  hidden: ArrayLike<number>,
  weights: MlaWeights,
  options: MlaLayerOptions,
): { out: Float64Array; caches: { cKv: Float64Array; kPe: Float64Array }[] } {
  const qUp = checkMlaWeights(weights, options.dims);
  const { hiddenSize, heads, qkNopeHeadDim: dn, qkRopeHeadDim: dr, vHeadDim: dv } = options.dims;
  const scale = options.scale ?? mlaSoftmaxScale(options.dims, options.rope);
  const step = latentStep(hidden, weights, options);
  const dk = dn + dr;
  // Spec §1.3 step 2: q viewed [heads, dn + dr], the nope part first; step 5 rotates the rest.
  const q = linearF64(step.cQ, qUp, step.tokens, queryInputSize(options.dims), heads * dk);
  rotateQueries(q, step, options, dk, dn);

  const o = new Float64Array(step.tokens * heads * dv);
  step.sequences.forEach((seq, s) => {
    const cache = step.caches[s]!;
    const { k, v } = mlaExpandKvF64(cache, weights.kvBProj, options.dims);
    const attention = attentionForwardF64(
      q.subarray(seq.start * heads * dk, (seq.start + seq.count) * heads * dk),
      k,
      v,
      {
        batch: 1,
        n: seq.count,
        nk: seq.prefix + seq.count,
        hq: heads,
        hkv: heads,
        d: dk,
        dv,
        scale,
        // Bottom-right alignment (isKeyVisible): the new tokens are the last ones of the sequence.
        causal: true,
      },
    );
    o.set(attention.o, seq.start * heads * dv);
  });
  return { out: linearF64(o, weights.oProj, step.tokens, heads * dv, hiddenSize), caches: step.caches };
}

/**
 * The unabsorbed MLA attention layer: hidden states of the new tokens of a batch of sequences in,
 * attention output after o_proj out, with each sequence's latent cache extended by its new tokens.
 * Everything is computed in f64 and rounded once to f32; the caches too, as they are returned.
 *
 * @param hidden - `[totalNew, hiddenSize]`: the new tokens of every sequence, packed in order.
 * @param weights - The layer's weights in the HF layouts.
 * @param options - Sizes, rope, lengths and caches; see {@link MlaLayerOptions} for the masking.
 * @throws Error if a weight, the input or a cache does not fit the dims, or the dims are invalid.
 */
export function mlaLayer(
  hidden: ArrayLike<number>,
  weights: MlaWeights,
  options: MlaLayerOptions,
): MlaLayerOutput {
  const { out, caches } = mlaLayerF64(hidden, weights, options);
  return { out: Float32Array.from(out), cache: cachesToF32(caches) };
}

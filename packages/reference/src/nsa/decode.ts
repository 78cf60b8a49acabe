/**
 * One decode step (spec §11): the newest token of each sequence attends its whole prefix. The
 * reference recomputes the compressed keys and values from the prefix rather than keeping a cache,
 * and runs the forward's row computations for that single query, so its output is the last row of
 * the full forward.
 */
import { checkLength } from '../attention-shape.js';
import { resolveNsaConfig } from './config.js';
import { runNsaForward } from './forward.js';
import type { NsaInputs } from './inputs.js';
import { planNsa } from './plan.js';
import { type NsaVarlenOptions, sequenceSpans, sliceTokens } from './varlen.js';

/** What {@link nsaDecode} returns for the newest token of each sequence. */
export interface NsaDecodeOutput {
  /** `[batch, hq, dv]`. */
  o: Float32Array;
  /** Selected blocks, `[batch, hkv, topN]`; the first `min(topN, floor((len - 1) / selectSize) + 1)` slots used, the rest -1. */
  selection: Int32Array;
}

/**
 * The NSA output of the last token of each sequence, given the sequences' keys and values up to and
 * including that token: a batch of sequences of different lengths, packed.
 *
 * @param inputs - q `[batch, hq, dqk]` and gate logits `[batch, hq, 3]` of each sequence's newest
 *   token; k `[total, hkv, dqk]` and v `[total, hkv, dv]`, the packed prefixes; the compressors; an
 *   optional selection `[batch, hkv, topN]` to use instead of computing it.
 * @param cuSeqlens - `batch + 1` cumulative prefix lengths, from 0 to total; every prefix holds at least
 *   its newest token.
 * @param options - Head counts, dims and hyper-parameters.
 * @throws Error if a prefix is empty, `cuSeqlens` is malformed or an input has the wrong length.
 */
export function nsaDecode(
  inputs: NsaInputs,
  cuSeqlens: ArrayLike<number>,
  options: NsaVarlenOptions,
): NsaDecodeOutput {
  const spans = sequenceSpans(cuSeqlens);
  const { hq, hkv, dqk, dv, ...settings } = options;
  const config = resolveNsaConfig(settings, dqk);
  const batch = spans.length;
  const total = cuSeqlens[batch]!;
  checkLength('q', inputs.q, [batch, hq, dqk]);
  checkLength('gates', inputs.gates, [batch, hq, 3]);
  checkLength('k', inputs.k, [total, hkv, dqk]);
  checkLength('v', inputs.v, [total, hkv, dv]);
  if (inputs.selection) checkLength('selection', inputs.selection, [batch, hkv, config.topN]);
  const o = new Float32Array(batch * hq * dv);
  const selection = new Int32Array(batch * hkv * config.topN);
  spans.forEach((span, s) => {
    if (span.length === 0) throw new Error(`nsa: decode sequence ${s} is empty; it needs its newest token`);
    const sequence: NsaInputs = {
      ...inputs,
      q: sliceTokens(inputs.q, s, 1, hq * dqk),
      k: sliceTokens(inputs.k, span.start, span.length, hkv * dqk),
      v: sliceTokens(inputs.v, span.start, span.length, hkv * dv),
      gates: sliceTokens(inputs.gates, s, 1, hq * 3),
      selection: inputs.selection && sliceTokens(inputs.selection, s, 1, hkv * config.topN),
    };
    const call = { batch: 1, n: span.length, nq: 1, hq, hkv, dqk, dv };
    const result = runNsaForward(sequence, planNsa(sequence, call, config));
    o.set(result.o, s * hq * dv);
    selection.set(result.selection, s * hkv * config.topN);
  });
  return { o, selection };
}

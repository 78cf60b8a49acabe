/**
 * Attention over packed variable-length sequences, FlashAttention's varlen layout: the sequences
 * of a batch are concatenated along the token axis and `cuSeqlens` (cumulative lengths, starting at
 * 0) marks where each begins. Each sequence attends only within itself, with the dense masking
 * rules; the reference simply cuts the sequences out and calls the dense functions on each.
 */
import { type AttentionGradients, attentionBackward } from './attention-backward.js';
import { type AttentionOutput, attentionForward } from './attention-forward.js';
import type { AttentionOptions } from './attention-shape.js';
import { checkLength, resolveAttention } from './attention-shape.js';

/** Options of a packed call: those of the dense call without the lengths, which `cuSeqlens` give. */
export type VarlenOptions = Omit<AttentionOptions, 'batch' | 'n' | 'nk'>;

/** Where one sequence lies in the packed query and key tensors. */
interface SequenceSpan {
  qStart: number;
  qLength: number;
  kStart: number;
  kLength: number;
}

function checkCumulative(name: string, cu: ArrayLike<number>): void {
  if (cu.length < 1 || cu[0] !== 0) throw new Error(`attentionVarlen: ${name} must start with 0`);
  for (let s = 1; s < cu.length; s++) {
    const [previous, current] = [cu[s - 1]!, cu[s]!];
    if (!Number.isInteger(current) || current < previous) {
      throw new Error(
        `attentionVarlen: ${name} must be non-decreasing integers, got ${current} after ${previous}`,
      );
    }
  }
}

function sequenceSpans(cuSeqlensQ: ArrayLike<number>, cuSeqlensK: ArrayLike<number>): SequenceSpan[] {
  if (cuSeqlensQ.length !== cuSeqlensK.length) {
    throw new Error(
      `attentionVarlen: cuSeqlensQ has ${cuSeqlensQ.length} entries and cuSeqlensK ${cuSeqlensK.length}; ` +
        'both must be batch + 1',
    );
  }
  checkCumulative('cuSeqlensQ', cuSeqlensQ);
  checkCumulative('cuSeqlensK', cuSeqlensK);
  const spans: SequenceSpan[] = [];
  for (let s = 0; s + 1 < cuSeqlensQ.length; s++) {
    const [qStart, kStart] = [cuSeqlensQ[s]!, cuSeqlensK[s]!];
    spans.push({
      qStart,
      qLength: cuSeqlensQ[s + 1]! - qStart,
      kStart,
      kLength: cuSeqlensK[s + 1]! - kStart,
    });
  }
  return spans;
}

/** Total packed lengths, with every input's length checked against them. */
function packedTotals(
  options: VarlenOptions,
  cuSeqlensQ: ArrayLike<number>,
  cuSeqlensK: ArrayLike<number>,
  tensors: { q: ArrayLike<number>; k: ArrayLike<number>; v: ArrayLike<number> },
): { totalQ: number; totalK: number } {
  // Checks the head counts and dimensions before they size anything.
  const { hq, hkv, d, dv } = resolveAttention({ ...options, batch: 0, n: 0, nk: 0 });
  const totalQ = cuSeqlensQ[cuSeqlensQ.length - 1] ?? 0;
  const totalK = cuSeqlensK[cuSeqlensK.length - 1] ?? 0;
  checkLength('q', tensors.q, [totalQ, hq, d]);
  checkLength('k', tensors.k, [totalK, hkv, d]);
  checkLength('v', tensors.v, [totalK, hkv, dv]);
  return { totalQ, totalK };
}

/** Tokens `start .. start + count` of a token-major array with `perToken` elements per token, in f64. */
function sliceTokens(array: ArrayLike<number>, start: number, count: number, perToken: number): Float64Array {
  const out = new Float64Array(count * perToken);
  for (let e = 0; e < out.length; e++) out[e] = array[start * perToken + e]!;
  return out;
}

/**
 * Attention over packed sequences: sequence s is queries `cuSeqlensQ[s] .. cuSeqlensQ[s+1]` and keys
 * `cuSeqlensK[s] .. cuSeqlensK[s+1]`, masked as in a dense call of those lengths (bottom-right
 * alignment within the sequence).
 *
 * @param q - `[totalQ, hq, d]`.
 * @param k - `[totalK, hkv, d]`.
 * @param v - `[totalK, hkv, dv]`.
 * @param cuSeqlensQ - `batch + 1` cumulative query lengths, from 0 to totalQ.
 * @param cuSeqlensK - `batch + 1` cumulative key lengths, from 0 to totalK.
 * @param options - Heads, dimensions, scale and mask.
 * @returns o `[totalQ, hq, dv]` and lse `[hq, totalQ]`.
 * @throws Error if the cumulative lengths are malformed or do not match the inputs.
 */
export function attentionVarlen(
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
  cuSeqlensQ: ArrayLike<number>,
  cuSeqlensK: ArrayLike<number>,
  options: VarlenOptions,
): AttentionOutput {
  const spans = sequenceSpans(cuSeqlensQ, cuSeqlensK);
  const { totalQ } = packedTotals(options, cuSeqlensQ, cuSeqlensK, { q, k, v });
  const { hq, hkv, d, dv } = options;
  const o = new Float32Array(totalQ * hq * dv);
  const lse = new Float32Array(hq * totalQ);
  for (const span of spans) {
    const dense = attentionForward(
      sliceTokens(q, span.qStart, span.qLength, hq * d),
      sliceTokens(k, span.kStart, span.kLength, hkv * d),
      sliceTokens(v, span.kStart, span.kLength, hkv * dv),
      { ...options, batch: 1, n: span.qLength, nk: span.kLength },
    );
    o.set(dense.o, span.qStart * hq * dv);
    for (let h = 0; h < hq; h++) {
      lse.set(dense.lse.subarray(h * span.qLength, (h + 1) * span.qLength), h * totalQ + span.qStart);
    }
  }
  return { o, lse };
}

/**
 * Gradients of {@link attentionVarlen}, sequence by sequence with {@link attentionBackward}.
 *
 * @param q - `[totalQ, hq, d]`.
 * @param k - `[totalK, hkv, d]`.
 * @param v - `[totalK, hkv, dv]`.
 * @param o - The forward's output, `[totalQ, hq, dv]`.
 * @param lse - The forward's log-sum-exp, `[hq, totalQ]`.
 * @param dO - Gradient of the loss with respect to o, `[totalQ, hq, dv]`.
 * @param cuSeqlensQ - `batch + 1` cumulative query lengths, from 0 to totalQ.
 * @param cuSeqlensK - `batch + 1` cumulative key lengths, from 0 to totalK.
 * @param options - The options the forward ran with.
 * @throws Error if the cumulative lengths are malformed or do not match the inputs.
 */
export function attentionVarlenBackward(
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
  o: ArrayLike<number>,
  lse: ArrayLike<number>,
  dO: ArrayLike<number>,
  cuSeqlensQ: ArrayLike<number>,
  cuSeqlensK: ArrayLike<number>,
  options: VarlenOptions,
): AttentionGradients {
  const spans = sequenceSpans(cuSeqlensQ, cuSeqlensK);
  const { totalQ } = packedTotals(options, cuSeqlensQ, cuSeqlensK, { q, k, v });
  const { hq, hkv, d, dv } = options;
  checkLength('o', o, [totalQ, hq, dv]);
  checkLength('lse', lse, [hq, totalQ]);
  checkLength('dO', dO, [totalQ, hq, dv]);
  const dq = new Float32Array(q.length);
  const dk = new Float32Array(k.length);
  const dvOut = new Float32Array(v.length);
  for (const span of spans) {
    const spanLse = new Float64Array(hq * span.qLength);
    for (let h = 0; h < hq; h++) {
      for (let i = 0; i < span.qLength; i++)
        spanLse[h * span.qLength + i] = lse[h * totalQ + span.qStart + i]!;
    }
    const grads = attentionBackward(
      sliceTokens(q, span.qStart, span.qLength, hq * d),
      sliceTokens(k, span.kStart, span.kLength, hkv * d),
      sliceTokens(v, span.kStart, span.kLength, hkv * dv),
      sliceTokens(o, span.qStart, span.qLength, hq * dv),
      spanLse,
      sliceTokens(dO, span.qStart, span.qLength, hq * dv),
      { ...options, batch: 1, n: span.qLength, nk: span.kLength },
    );
    // Sequences own disjoint token ranges, so placing each one's gradients is enough.
    dq.set(grads.dq, span.qStart * hq * d);
    dk.set(grads.dk, span.kStart * hkv * d);
    dvOut.set(grads.dv, span.kStart * hkv * dv);
  }
  return { dq, dk, dv: dvOut };
}

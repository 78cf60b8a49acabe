/**
 * NSA over packed variable-length sequences (spec §1.2, §12.1 item 10), the Scalable repo's layout:
 * the sequences are concatenated along the token axis and `cuSeqlens` (cumulative lengths from 0)
 * marks where each begins. Positions, blocks and selection restart in every sequence, so the
 * reference cuts each one out and runs the dense code on it.
 */
import { checkLength } from '../attention-shape.js';
import { compressorGradientsF32, type NsaGradients, runNsaBackward } from './backward.js';
import type { CompressorGradientsF64 } from './compress.js';
import { type ResolvedNsaConfig, resolveNsaConfig } from './config.js';
import { type BranchF64, type NsaBranchOutput, runNsaForward } from './forward.js';
import type { NsaInputs, NsaOptions } from './inputs.js';
import { type NsaCall, planNsa } from './plan.js';

/** Options of a packed call: those of the dense call without the lengths, which `cuSeqlens` give. */
export type NsaVarlenOptions = Omit<NsaOptions, 'batch' | 'n'>;

/** What {@link nsaVarlenForward} returns; the dense outputs, packed. */
export interface NsaVarlenOutput {
  /** `[total, hq, dv]`. */
  o: Float32Array;
  /** The compressed branch, o `[total, hq, dv]` and lse `[hq, total]`. */
  compressed: NsaBranchOutput;
  /** The selected branch, packed likewise. */
  selected: NsaBranchOutput;
  /** The window branch, packed likewise. */
  window: NsaBranchOutput;
  /** Selected blocks, `[total, hkv, topN]`, block indices counted from each sequence's start; -1 for unused slots. */
  selection: Int32Array;
}

/** Where one sequence lies along the packed token axis. */
export interface SequenceSpan {
  start: number;
  length: number;
}

/** The spans of `cuSeqlens`, checked: starts at 0, non-decreasing integers. */
export function sequenceSpans(cuSeqlens: ArrayLike<number>): SequenceSpan[] {
  if (cuSeqlens.length < 1 || cuSeqlens[0] !== 0) throw new Error('nsa: cuSeqlens must start with 0');
  const spans: SequenceSpan[] = [];
  for (let s = 1; s < cuSeqlens.length; s++) {
    const [start, end] = [cuSeqlens[s - 1]!, cuSeqlens[s]!];
    if (!Number.isInteger(end) || end < start) {
      throw new Error(`nsa: cuSeqlens must be non-decreasing integers, got ${end} after ${start}`);
    }
    spans.push({ start, length: end - start });
  }
  return spans;
}

/** Tokens `start .. start + count` of a token-major array with `perToken` elements per token, in f64. */
export function sliceTokens(
  array: ArrayLike<number>,
  start: number,
  count: number,
  perToken: number,
): Float64Array {
  const out = new Float64Array(count * perToken);
  for (let e = 0; e < out.length; e++) out[e] = array[start * perToken + e]!;
  return out;
}

/** One sequence's inputs cut out of packed ones, with the call that runs them densely. */
function sequenceCall(
  inputs: NsaInputs,
  span: SequenceSpan,
  options: NsaVarlenOptions,
  config: ResolvedNsaConfig,
): { inputs: NsaInputs; call: NsaCall } {
  const { hq, hkv, dqk, dv } = options;
  const { start, length } = span;
  const sequence: NsaInputs = {
    ...inputs,
    q: sliceTokens(inputs.q, start, length, hq * dqk),
    k: sliceTokens(inputs.k, start, length, hkv * dqk),
    v: sliceTokens(inputs.v, start, length, hkv * dv),
    gates: sliceTokens(inputs.gates, start, length, hq * 3),
    selection: inputs.selection && sliceTokens(inputs.selection, start, length, hkv * config.topN),
  };
  return { inputs: sequence, call: { batch: 1, n: length, nq: length, hq, hkv, dqk, dv } };
}

/** The spans and config of a packed call, with the packed inputs' lengths checked. */
function packedCall(inputs: NsaInputs, cuSeqlens: ArrayLike<number>, options: NsaVarlenOptions) {
  const spans = sequenceSpans(cuSeqlens);
  const { hq, hkv, dqk, dv, ...settings } = options;
  const config = resolveNsaConfig(settings, dqk);
  const total = cuSeqlens[cuSeqlens.length - 1]!;
  checkLength('q', inputs.q, [total, hq, dqk]);
  checkLength('k', inputs.k, [total, hkv, dqk]);
  checkLength('v', inputs.v, [total, hkv, dv]);
  checkLength('gates', inputs.gates, [total, hq, 3]);
  if (inputs.selection) checkLength('selection', inputs.selection, [total, hkv, config.topN]);
  return { spans, config, total };
}

/** Writes one sequence's branch output into the packed one: o by tokens, lse `[1, hq, n]` into `[hq, total]`. */
function placeBranch(packed: NsaBranchOutput, branch: BranchF64, span: SequenceSpan, hq: number, dv: number) {
  packed.o.set(branch.o, span.start * hq * dv);
  const total = packed.lse.length / hq;
  for (let h = 0; h < hq; h++) {
    packed.lse.set(branch.lse.subarray(h * span.length, (h + 1) * span.length), h * total + span.start);
  }
}

/** Adds one sequence's parameter gradients into the running total. */
function accumulate(total: CompressorGradientsF64, part: CompressorGradientsF64): void {
  for (const name of ['weight', 'pe'] as const) {
    const grad = part[name];
    if (grad === undefined) continue;
    const sum = total[name] ?? new Float64Array(grad.length);
    for (let e = 0; e < grad.length; e++) sum[e]! += grad[e]!;
    total[name] = sum;
  }
}

/**
 * {@link nsaForward} over packed sequences, each one independent: sequence s is tokens
 * `cuSeqlens[s] .. cuSeqlens[s + 1]` of q `[total, hq, dqk]`, k `[total, hkv, dqk]`,
 * v `[total, hkv, dv]` and gate logits `[total, hq, 3]`; a given `selection` is `[total, hkv, topN]`.
 *
 * @param inputs - The packed tensors, the compressors (shared by all sequences) and optionally a selection.
 * @param cuSeqlens - `batch + 1` cumulative lengths, from 0 to total.
 * @param options - Head counts, dims and hyper-parameters.
 * @throws Error if `cuSeqlens` is malformed, or as {@link nsaForward} does.
 */
export function nsaVarlenForward(
  inputs: NsaInputs,
  cuSeqlens: ArrayLike<number>,
  options: NsaVarlenOptions,
): NsaVarlenOutput {
  const { spans, config, total } = packedCall(inputs, cuSeqlens, options);
  const { hq, hkv, dv } = options;
  const branch = () => ({ o: new Float32Array(total * hq * dv), lse: new Float32Array(hq * total) });
  const out: NsaVarlenOutput = {
    o: new Float32Array(total * hq * dv),
    compressed: branch(),
    selected: branch(),
    window: branch(),
    selection: new Int32Array(total * hkv * config.topN),
  };
  for (const span of spans) {
    const sequence = sequenceCall(inputs, span, options, config);
    const result = runNsaForward(sequence.inputs, planNsa(sequence.inputs, sequence.call, config));
    out.o.set(result.o, span.start * hq * dv);
    placeBranch(out.compressed, result.compressed, span, hq, dv);
    placeBranch(out.selected, result.selected, span, hq, dv);
    placeBranch(out.window, result.window, span, hq, dv);
    out.selection.set(result.selection, span.start * hkv * config.topN);
  }
  return out;
}

/**
 * Gradients of {@link nsaVarlenForward}, sequence by sequence; the compressors' parameter gradients
 * are summed over the sequences, which share the parameters.
 *
 * @param inputs - The forward's inputs.
 * @param dO - `[total, hq, dv]`.
 * @param cuSeqlens - `batch + 1` cumulative lengths, from 0 to total.
 * @param options - The forward's options.
 * @throws Error if `cuSeqlens` is malformed, or as {@link nsaBackward} does.
 */
export function nsaVarlenBackward(
  inputs: NsaInputs,
  dO: ArrayLike<number>,
  cuSeqlens: ArrayLike<number>,
  options: NsaVarlenOptions,
): NsaGradients {
  const { spans, config, total } = packedCall(inputs, cuSeqlens, options);
  const { hq, hkv, dqk, dv } = options;
  checkLength('dO', dO, [total, hq, dv]);
  const dq = new Float32Array(total * hq * dqk);
  const dk = new Float32Array(total * hkv * dqk);
  const dvOut = new Float32Array(total * hkv * dv);
  const dGates = new Float32Array(total * hq * 3);
  const params: Record<'kCompressor' | 'vCompressor', CompressorGradientsF64> = {
    kCompressor: {},
    vCompressor: {},
  };
  for (const span of spans) {
    const sequence = sequenceCall(inputs, span, options, config);
    const spanDO = sliceTokens(dO, span.start, span.length, hq * dv);
    const grads = runNsaBackward(sequence.inputs, spanDO, sequence.call, config);
    // Sequences own disjoint token ranges, so placing each one's gradients is enough.
    dq.set(grads.dq, span.start * hq * dqk);
    dk.set(grads.dk, span.start * hkv * dqk);
    dvOut.set(grads.dv, span.start * hkv * dv);
    dGates.set(grads.dGates, span.start * hq * 3);
    accumulate(params.kCompressor, grads.kCompressor);
    accumulate(params.vCompressor, grads.vCompressor);
  }
  return {
    dq,
    dk,
    dv: dvOut,
    dGates,
    kCompressor: compressorGradientsF32(params.kCompressor),
    vCompressor: compressorGradientsF32(params.vCompressor),
  };
}

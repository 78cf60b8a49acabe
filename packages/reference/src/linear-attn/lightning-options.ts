/**
 * Inputs, options and results of TransnormerLLM's decayed ("lightning") linear attention (spec §2),
 * shared by its quadratic and recurrent references, and the checks that turn them into a call.
 */
import { checkLength } from '../attention-shape.js';
import { type SequenceSpan, sequenceSpans } from '../nsa/varlen.js';
import {
  checkQkv,
  type LinearAttentionShape,
  type ResolvedLinearShape,
  resolveLinearShape,
} from './shape.js';

/**
 * Sizes and options of a lightning attention call, named after fla's: q `[batch, n, hq, dk]`,
 * k `[batch, n, hkv, dk]`, v `[batch, n, hkv, dv]`, o `[batch, n, hq, dv]`, states
 * `[sequences, hq, dk, dv]`.
 */
export interface LightningAttentionOptions extends LinearAttentionShape {
  /**
   * Multiplies q·k (and q·state): fla's `scale`, `1 / sqrt(dk)` by default. TransnormerLLM uses none:
   * pass 1.
   */
  scale?: number;
  /**
   * fla's `cu_seqlens`: packed sequences, `sequences + 1` cumulative lengths from 0 to n. With it,
   * batch must be 1, the tensors hold the sequences one after the other along the token axis, each
   * with its own state (reset at its start to its initial state), and the states have one entry per
   * sequence.
   */
  cuSeqlens?: ArrayLike<number>;
}

/** The tensors of a lightning attention call. */
export interface LightningAttentionInputs {
  /** Queries, `[batch, n, hq, dk]`. */
  q: ArrayLike<number>;
  /** Keys, `[batch, n, hkv, dk]`. */
  k: ArrayLike<number>;
  /** Values, `[batch, n, hkv, dv]`. */
  v: ArrayLike<number>;
  /**
   * Per query head decay `λ_h`, `[hq]`, each in [0, 1]: the factor applied per token of distance,
   * `exp(-slope_h)` for TransnormerLLM's slopes.
   */
  decays: ArrayLike<number>;
  /** The state before each sequence's first token, `[sequences, hq, dk, dv]`; zeros when absent. */
  initialState?: ArrayLike<number>;
}

/** What a lightning attention forward returns. */
export interface LightningAttentionOutput {
  /** `[batch, n, hq, dv]`. */
  o: Float32Array;
  /**
   * The state after each sequence's last token, `[sequences, hq, dk, dv]`:
   * `S = λ^len S_init + Σ_j λ^(len-1-j) k_jᵀ v_j`. Passed as the initial state of the sequence's
   * continuation, it makes the continuation exact.
   */
  finalState: Float32Array;
}

/** The gradients a lightning attention backward starts from. */
export interface LightningAttentionOutputGradients {
  /** Gradient of the loss with respect to o, `[batch, n, hq, dv]`. */
  dO: ArrayLike<number>;
  /**
   * Gradient of the loss with respect to the final state, `[sequences, hq, dk, dv]`, for a sequence
   * whose continuation read that state; zeros when absent.
   */
  dFinalState?: ArrayLike<number>;
}

/** Gradients of a lightning attention's inputs, each the shape of its input. */
export interface LightningAttentionGradients {
  /** Gradient of q, `[batch, n, hq, dk]`. */
  dq: Float32Array;
  /** Gradient of k, `[batch, n, hkv, dk]`, summed over the query heads of each GQA group. */
  dk: Float32Array;
  /** Gradient of v, `[batch, n, hkv, dv]`, summed over the query heads of each GQA group. */
  dv: Float32Array;
  /** Gradient of the initial state, `[sequences, hq, dk, dv]`, given one or not. */
  dInitialState: Float32Array;
}

/** A checked lightning call: its sizes, scale, decays and sequences. */
export interface LightningCall extends ResolvedLinearShape {
  /** The scale, defaulted. */
  scale: number;
  /** λ_h per query head, in f64. */
  decays: Float64Array;
  /** The sequences along the flattened batch and token axes: sequence b of a dense call starts at b · n. */
  spans: SequenceSpan[];
  /** Elements of one sequence's state, `hq · dk · dv`. */
  stateSize: number;
}

const CALLER = 'lightningAttention';

function resolveSpans(shape: ResolvedLinearShape, cuSeqlens: ArrayLike<number> | undefined): SequenceSpan[] {
  const { batch, n } = shape;
  if (cuSeqlens === undefined) return Array.from({ length: batch }, (_, b) => ({ start: b * n, length: n }));
  if (batch !== 1) throw new Error(`${CALLER}: with cuSeqlens, batch must be 1, got ${batch}`);
  const spans = sequenceSpans(cuSeqlens);
  const total = cuSeqlens[cuSeqlens.length - 1];
  if (total !== n) throw new Error(`${CALLER}: cuSeqlens must end at n (${n}), got ${total}`);
  return spans;
}

function resolveDecays(decays: ArrayLike<number>, hq: number): Float64Array {
  checkLength('decays', decays, [hq]);
  const out = Float64Array.from(decays);
  for (const [h, decay] of out.entries()) {
    // Written so that NaN fails too.
    if (!(decay >= 0 && decay <= 1)) {
      throw new Error(`${CALLER}: decays[${h}] must lie in [0, 1], got ${decay}`);
    }
  }
  return out;
}

/**
 * Checks the sizes, the decays, the scale, `cuSeqlens` and the lengths of q, k, v and the initial state.
 *
 * @throws Error if anything is invalid or an input's length does not match.
 */
export function resolveLightningCall(
  inputs: LightningAttentionInputs,
  options: LightningAttentionOptions,
): LightningCall {
  const shape = resolveLinearShape(options, CALLER);
  checkQkv(shape, inputs.q, inputs.k, inputs.v);
  const spans = resolveSpans(shape, options.cuSeqlens);
  const stateSize = shape.hq * shape.dk * shape.dv;
  if (inputs.initialState !== undefined) {
    checkLength('initialState', inputs.initialState, [spans.length, shape.hq, shape.dk, shape.dv]);
  }
  const scale = options.scale ?? 1 / Math.sqrt(shape.dk);
  if (!Number.isFinite(scale)) throw new Error(`${CALLER}: scale must be finite, got ${scale}`);
  return { ...shape, scale, decays: resolveDecays(inputs.decays, shape.hq), spans, stateSize };
}

/** Offset of head h's `dk × dv` state of sequence `s` in a `[sequences, hq, dk, dv]` array. */
export function stateOffset(call: LightningCall, s: number, h: number): number {
  return s * call.stateSize + h * call.dk * call.dv;
}

/** A lightning forward's results in f64, for finite differences and for the f32 results. */
export interface LightningOutputF64 {
  /** `[batch, n, hq, dv]`. */
  o: Float64Array;
  /** `[sequences, hq, dk, dv]`. */
  finalState: Float64Array;
}

/** Rounds a forward's results once to f32. */
export function lightningOutputF32(result: LightningOutputF64): LightningAttentionOutput {
  return { o: Float32Array.from(result.o), finalState: Float32Array.from(result.finalState) };
}

/** Checks dO and dFinalState against a call. */
export function checkOutputGradients(call: LightningCall, grads: LightningAttentionOutputGradients): void {
  checkLength('dO', grads.dO, [call.batch, call.n, call.hq, call.dv]);
  if (grads.dFinalState !== undefined) {
    checkLength('dFinalState', grads.dFinalState, [call.spans.length, call.hq, call.dk, call.dv]);
  }
}

/**
 * The NSA forward (spec §13): compress keys and values, attend the compressed blocks, select blocks
 * from that attention's probabilities, attend the selected blocks and the sliding window, and gate
 * the three branches together. Every step in f64.
 */
import { combineForward } from './combine.js';
import { compressTokens, type NsaCompressor } from './compress.js';
import type { NsaInputs, NsaOptions } from './inputs.js';
import { keySetAttentionForward } from './key-set-attention.js';
import { compressedKeySet, denseCall, type NsaPlan, planNsa, selectedKeySet, windowKeySet } from './plan.js';
import { checkSelection, selectBlocks, selectionScores } from './selection.js';

/** The default compressor. */
export const MEAN: NsaCompressor = Object.freeze({ method: 'mean' });

/** One branch's output before the gates. */
export interface NsaBranchOutput {
  /** `[batch, n, hq, dv]`. */
  o: Float32Array;
  /** Natural-log sum of exp of each row's scores, `[batch, hq, n]`; 0 where the row attends nothing. */
  lse: Float32Array;
}

/** What the NSA forward returns: the output and every intermediate a kernel may be checked against. */
export interface NsaOutput {
  /** The gated sum of the three branches, `[batch, n, hq, dv]`. */
  o: Float32Array;
  /** The compressed branch; rows that see no compressed block (t < kernelSize - 1) have o = 0, lse = 0. */
  compressed: NsaBranchOutput;
  /** The selected-blocks branch. */
  selected: NsaBranchOutput;
  /** The sliding-window branch. */
  window: NsaBranchOutput;
  /** Compressed keys, `[batch, M, hkv, dqk]` with M from {@link compressedBlockCount}. */
  cmpK: Float32Array;
  /** Compressed values, `[batch, M, hkv, dv]`. */
  cmpV: Float32Array;
  /**
   * Selected blocks, `[batch, n, hkv, topN]`, token-major like the other tensors and shared by the
   * query heads of each kv head. The first `min(topN, floor(t / selectSize) + 1)` slots of token t
   * are used, the rest are -1. Slot order: init blocks, local blocks from t's own block backwards,
   * then the other picks by descending score (ties to the lowest index).
   */
  selection: Int32Array;
  /**
   * The scores the selection ranked, `[batch, n, hkv, NB]` with NB from {@link selectionBlockCount}:
   * the compressed probabilities summed over each GQA group and spread over the selection blocks by
   * overlap. Tests use them to tell a swap between near-equal scores from a wrong selection.
   */
  blockScores: Float32Array;
}

/** {@link NsaBranchOutput} in f64. */
export interface BranchF64 {
  o: Float64Array;
  lse: Float64Array;
}

/** {@link NsaOutput} in f64, for the backward, for decode and for finite differences. */
export interface NsaForwardF64 {
  o: Float64Array;
  compressed: BranchF64;
  selected: BranchF64;
  window: BranchF64;
  cmpK: Float64Array;
  cmpV: Float64Array;
  selection: Int32Array;
  blockScores: Float64Array;
}

/** The forward of one planned call: queries are the last `call.nq` tokens of each sequence. */
export function runNsaForward(inputs: NsaInputs, plan: NsaPlan): NsaForwardF64 {
  const { call, config } = plan;
  const { n, dv } = call;
  const { q, k, v } = inputs;
  const cmpK = compressTokens(k, inputs.kCompressor ?? MEAN, plan.kTokens, config, 'kCompressor');
  const cmpV = compressTokens(v, inputs.vCompressor ?? MEAN, plan.vTokens, config, 'vCompressor');
  const compressed = keySetAttentionForward(q, cmpK, cmpV, plan.compressed, compressedKeySet(plan));
  const blockScores = selectionScores(q, cmpK, compressed.lse, plan.compressed, n, config);
  let selection: Int32Array;
  if (inputs.selection === undefined) {
    selection = selectBlocks(blockScores, plan.tokens, plan.selectionBlocks, config);
  } else {
    checkSelection(inputs.selection, plan.tokens, plan.selectionBlocks, config);
    selection = Int32Array.from(inputs.selection);
  }
  const selected = keySetAttentionForward(q, k, v, plan.tokens, selectedKeySet(plan, selection));
  const window = keySetAttentionForward(q, k, v, plan.tokens, windowKeySet(plan));
  const o = combineForward([compressed.o, selected.o, window.o], inputs.gates, dv);
  return { o, compressed, selected, window, cmpK, cmpV, selection, blockScores };
}

/** The dense forward in f64 from end to end: tests take finite differences of it. */
export function nsaForwardF64(inputs: NsaInputs, options: NsaOptions): NsaForwardF64 {
  const { call, config } = denseCall(options);
  return runNsaForward(inputs, planNsa(inputs, call, config));
}

function branchF32(branch: BranchF64): NsaBranchOutput {
  return { o: Float32Array.from(branch.o), lse: Float32Array.from(branch.lse) };
}

/** Rounds every tensor of a forward result to f32 once. */
export function outputF32(result: NsaForwardF64): NsaOutput {
  return {
    o: Float32Array.from(result.o),
    compressed: branchF32(result.compressed),
    selected: branchF32(result.selected),
    window: branchF32(result.window),
    cmpK: Float32Array.from(result.cmpK),
    cmpV: Float32Array.from(result.cmpV),
    selection: result.selection,
    blockScores: Float32Array.from(result.blockScores),
  };
}

/**
 * Native Sparse Attention forward over equal-length sequences, computed in f64 straight from the spec
 * and rounded once to f32:
 * `o = σ(g0) · compressed + σ(g1) · selected + σ(g2) · window` per (token, query head), where
 * - compressed: attention over the compressed blocks whose last token is at or before t;
 * - selected: attention over the tokens `<= t` of the blocks that t's kv head selected
 *   (see {@link NsaOutput.selection});
 * - window: attention over tokens `t - windowSize ..= t`.
 *
 * @param inputs - q, k, v, gate logits, the compressors and optionally a fixed selection.
 * @param options - Sizes and hyper-parameters.
 * @throws Error if a size or hyper-parameter is invalid or an input has the wrong length.
 */
export function nsaForward(inputs: NsaInputs, options: NsaOptions): NsaOutput {
  return outputF32(nsaForwardF64(inputs, options));
}

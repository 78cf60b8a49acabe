/**
 * Block selection (spec §4): how much each selection block matters to each query, read off the
 * compressed branch's attention probabilities, and the top-n rule that turns that into the blocks the
 * selected branch attends. Nothing here is differentiated: the selection is a constant of the backward.
 */
import { checkLength } from '../attention-shape.js';
import { compressedKeys, overlapWeight, selectionBlockCount } from './blocks.js';
import type { ResolvedNsaConfig } from './config.js';
import { type BranchSizes, keyScore } from './key-set-attention.js';

/**
 * Importance of every selection block for every query, `[batch, nq, hkv, NB]` (spec §4.1, §4.2):
 * `p_cmp[t, m] = Σ_{h in group} exp(score[t, h, m] - lse[t, h])`, the compressed branch's softmax
 * probabilities summed over the kv head's query heads, then
 * `p_slc[t, J] = Σ_m overlapWeight(m, J) · p_cmp[t, m]`. Blocks in the future of t score exactly 0.
 *
 * @param q - `[batch, nq, hq, dqk]`.
 * @param cmpK - Compressed keys, `[batch, M, hkv, dqk]`; `sizes.nk` is M.
 * @param cmpLse - The compressed branch's lse, `[batch, hq, nq]`.
 * @param n - Tokens per sequence, which sets the number of selection blocks NB.
 */
export function selectionScores(
  q: ArrayLike<number>,
  cmpK: ArrayLike<number>,
  cmpLse: ArrayLike<number>,
  sizes: BranchSizes,
  n: number,
  config: ResolvedNsaConfig,
): Float64Array {
  const { batch, nq, nk: blocks, hq, hkv, firstQuery } = sizes;
  const group = hq / hkv;
  const selectionBlocks = selectionBlockCount(n, config);
  const scores = new Float64Array(batch * nq * hkv * selectionBlocks);
  for (let b = 0; b < batch; b++) {
    for (let i = 0; i < nq; i++) {
      const visible = compressedKeys(firstQuery + i, blocks, config);
      for (let g = 0; g < hkv; g++) {
        const pCmp = visible.map((m) => {
          let p = 0;
          for (let h = g * group; h < (g + 1) * group; h++) {
            p += Math.exp(keyScore(q, cmpK, sizes, b, h, i, m) - cmpLse[(b * hq + h) * nq + i]!);
          }
          return p;
        });
        const rowBase = ((b * nq + i) * hkv + g) * selectionBlocks;
        for (let J = 0; J < selectionBlocks; J++) {
          visible.forEach((m, j) => {
            scores[rowBase + J]! += overlapWeight(m, J, config) * pCmp[j]!;
          });
        }
      }
    }
  }
  return scores;
}

/**
 * The blocks that the query at position t selects, in slot order (spec §4.3, the Scalable repo's
 * rule): the init blocks `0 .. initBlocks - 1`; the local blocks `ki, ki - 1, ..` down to but not into
 * the init blocks, where `ki = floor(t / L)` is t's own block; then repeated arg-max over the other
 * blocks `0 ..= ki`, the lowest index winning ties; `min(topN, ki + 1)` blocks in all, never one in
 * the future and never one twice.
 *
 * @param scores - One row of {@link selectionScores}: a score per selection block, at least `ki + 1`.
 * @param t - The query's position in its sequence.
 */
export function topNBlocks(scores: ArrayLike<number>, t: number, config: ResolvedNsaConfig): number[] {
  const { topN, initBlocks, localBlocks, selectSize } = config;
  const current = Math.floor(t / selectSize);
  const chosen: number[] = [];
  for (let J = 0; J < initBlocks && J <= current; J++) chosen.push(J);
  for (let back = 0; back < localBlocks && current - back >= initBlocks; back++) chosen.push(current - back);
  const count = Math.min(topN, current + 1);
  while (chosen.length < count) {
    let best = -1;
    for (let J = 0; J <= current; J++) {
      // Strictly greater: on a tie the lower index, met first, stays.
      if (!chosen.includes(J) && (best < 0 || scores[J]! > scores[best]!)) best = J;
    }
    chosen.push(best);
  }
  return chosen;
}

/**
 * {@link topNBlocks} for every (sequence, query, kv head): `[batch, nq, hkv, topN]`, the first
 * `min(topN, floor(t / L) + 1)` slots of each row used and the rest -1.
 *
 * @param scores - {@link selectionScores}, `[batch, nq, hkv, NB]`.
 */
export function selectBlocks(
  scores: Float64Array,
  sizes: BranchSizes,
  selectionBlocks: number,
  config: ResolvedNsaConfig,
): Int32Array {
  const { batch, nq, hkv, firstQuery } = sizes;
  const rows = batch * nq * hkv;
  const selection = new Int32Array(rows * config.topN).fill(-1);
  for (let row = 0; row < rows; row++) {
    const i = Math.floor(row / hkv) % nq;
    const blocks = topNBlocks(
      scores.subarray(row * selectionBlocks, (row + 1) * selectionBlocks),
      firstQuery + i,
      config,
    );
    selection.set(blocks, row * config.topN);
  }
  return selection;
}

/**
 * Checks a selection given from outside (a kernel's, to test the branches on identical blocks):
 * `[batch, nq, hkv, topN]` of block indices in `[0, NB)` or -1.
 *
 * @throws Error if the length or an index is out of range.
 */
export function checkSelection(
  selection: ArrayLike<number>,
  sizes: BranchSizes,
  selectionBlocks: number,
  config: ResolvedNsaConfig,
): void {
  checkLength('selection', selection, [sizes.batch, sizes.nq, sizes.hkv, config.topN]);
  for (let e = 0; e < selection.length; e++) {
    const J = selection[e]!;
    if (!Number.isInteger(J) || J < -1 || J >= selectionBlocks) {
      throw new Error(
        `nsa: selection[${e}]: expected -1 or a block index below ${selectionBlocks}, got ${J}`,
      );
    }
  }
}

/**
 * NSA's two block grids (spec §2, §4.2): compressed blocks of `kernelSize` tokens every `stride`
 * tokens, and selection blocks tiling the sequence by `selectSize`; and which keys each branch's
 * query attends (§3, §5). Positions are within one sequence, from 0.
 */
import type { ResolvedNsaConfig } from './config.js';

/**
 * Compressed blocks over `n` tokens: `M = floor((n - l) / s) + 1`, and 0 while `n < l`. Block m covers
 * tokens `m·s ..= m·s + l - 1`; the tail tokens after the last block belong to none (they are dropped).
 *
 * @param n - Tokens in the sequence.
 * @param config - The block size `kernelSize` and the step `stride`.
 */
export function compressedBlockCount(
  n: number,
  config: Pick<ResolvedNsaConfig, 'kernelSize' | 'stride'>,
): number {
  return n < config.kernelSize ? 0 : Math.floor((n - config.kernelSize) / config.stride) + 1;
}

/**
 * Selection blocks over `n` tokens, `ceil(n / selectSize)`: block J covers tokens
 * `J·L ..= J·L + L - 1`, the last one possibly partial.
 *
 * @param n - Tokens in the sequence.
 * @param config - The selection block size `selectSize`.
 */
export function selectionBlockCount(n: number, config: Pick<ResolvedNsaConfig, 'selectSize'>): number {
  return Math.ceil(n / config.selectSize);
}

/**
 * How much of compressed block `i`'s score goes to selection block `J` (spec §4.2): the tokens the
 * two blocks share, divided by the stride. With l = 32, s = 16, L = 64 that is 1, 2, 2, 2, 1 on
 * compressed blocks `4J - 1 .. 4J + 3`.
 */
export function overlapWeight(i: number, J: number, config: ResolvedNsaConfig): number {
  const { kernelSize, stride, selectSize } = config;
  const shared =
    Math.min(i * stride + kernelSize, (J + 1) * selectSize) - Math.max(i * stride, J * selectSize);
  return Math.max(shared, 0) / stride;
}

/**
 * The keys that the query at position `t` of sequence `b` attends in one branch, ascending; the heads
 * of a GQA group share them.
 */
export type KeySet = (b: number, kvHead: number, t: number) => readonly number[];

/**
 * Compressed blocks visible to position `t` (spec §3): those whose last token is not in the future,
 * `m·s + l - 1 <= t`. Empty while `t < l - 1`.
 *
 * @param blocks - Compressed blocks in the sequence, M.
 */
export function compressedKeys(t: number, blocks: number, config: ResolvedNsaConfig): number[] {
  const keys: number[] = [];
  for (let m = 0; m < blocks && m * config.stride + config.kernelSize - 1 <= t; m++) keys.push(m);
  return keys;
}

/**
 * Tokens of the selected blocks at or before position `t` (spec §5.1). Duplicated block indices and
 * -1 (unused slot) are ignored, so no block is attended twice. The keys come out ascending whatever
 * the slot order, which keeps the f64 sums identical between callers.
 *
 * @param blocks - Selected selection-block indices, in any order.
 */
export function selectedKeys(blocks: Iterable<number>, t: number, config: ResolvedNsaConfig): number[] {
  const keys: number[] = [];
  const sorted = [...new Set(blocks)].filter((J) => J >= 0).sort((a, b) => a - b);
  for (const J of sorted) {
    for (let key = J * config.selectSize; key < (J + 1) * config.selectSize && key <= t; key++)
      keys.push(key);
  }
  return keys;
}

/** Tokens `max(0, t - windowSize) ..= t` (spec §5.2): `windowSize + 1` keys once `t >= windowSize`. */
export function windowKeys(t: number, config: ResolvedNsaConfig): number[] {
  const keys: number[] = [];
  for (let key = Math.max(0, t - config.windowSize); key <= t; key++) keys.push(key);
  return keys;
}

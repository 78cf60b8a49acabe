/** The block geometry, checked against the numbers the spec quotes (§2, §3, §4.2, §5.2). */
import { describe, expect, it } from 'vitest';
import {
  compressedBlockCount,
  overlapWeight,
  resolveNsaConfig,
  selectionBlockCount,
} from '../../src/index.js';
import { compressedKeys, selectedKeys, windowKeys } from '../../src/nsa/blocks.js';

const DEFAULTS = resolveNsaConfig({}, 128);

/** Compressed blocks `from .. from + weights.length - 1` and their weights for selection block J. */
function weightsAround(J: number, from: number, count: number, config = DEFAULTS): number[] {
  return Array.from({ length: count }, (_, i) => overlapWeight(from + i, J, config));
}

describe('NSA blocks', () => {
  it('counts compressed blocks as the spec does: 200 → 11, 32 → 1, 47 → 1, 48 → 2, fewer than l → 0', () => {
    expect(compressedBlockCount(200, DEFAULTS)).toBe(11);
    expect(compressedBlockCount(32, DEFAULTS)).toBe(1);
    expect(compressedBlockCount(47, DEFAULTS)).toBe(1);
    expect(compressedBlockCount(48, DEFAULTS)).toBe(2);
    expect(compressedBlockCount(31, DEFAULTS)).toBe(0);
    expect(compressedBlockCount(0, DEFAULTS)).toBe(0);
    expect(selectionBlockCount(65, DEFAULTS)).toBe(2);
    expect(selectionBlockCount(64, DEFAULTS)).toBe(1);
  });

  it('shows compressed blocks to queries as the spec does: t = 30 none, 31 and 46 block 0, 47 blocks 0 and 1', () => {
    expect(compressedKeys(30, 11, DEFAULTS)).toEqual([]);
    expect(compressedKeys(31, 11, DEFAULTS)).toEqual([0]);
    expect(compressedKeys(46, 11, DEFAULTS)).toEqual([0]);
    expect(compressedKeys(47, 11, DEFAULTS)).toEqual([0, 1]);
    // n = 200: the last query sees all 11 blocks, the last ending at token 191.
    expect(compressedKeys(199, 11, DEFAULTS)).toEqual(Array.from({ length: 11 }, (_, m) => m));
  });

  it('weights compressed blocks 4J-1 .. 4J+3 by 1, 2, 2, 2, 1 at l 32, s 16, L 64, and nothing else', () => {
    for (const J of [0, 1, 5]) {
      expect(weightsAround(J, 4 * J - 1, 5)).toEqual([1, 2, 2, 2, 1]);
      expect(overlapWeight(4 * J - 2, J, DEFAULTS)).toBe(0);
      expect(overlapWeight(4 * J + 4, J, DEFAULTS)).toBe(0);
    }
  });

  it('gives the spec’s other patterns: 1,1,1,1 at l = s = 16, and 1,2,3,4,4,4,4,4,3,2,1 at l 32, s 8', () => {
    const noOverlap = resolveNsaConfig({ kernelSize: 16, stride: 16 }, 128);
    expect(weightsAround(3, 11, 6, noOverlap)).toEqual([0, 1, 1, 1, 1, 0]);
    const fine = resolveNsaConfig({ stride: 8 }, 128);
    expect(weightsAround(2, 8 * 2 - 4, 13, fine)).toEqual([0, 1, 2, 3, 4, 4, 4, 4, 4, 3, 2, 1, 0]);
  });

  it('gives the window w + 1 keys once t >= w, and the whole prefix before', () => {
    expect(windowKeys(600, DEFAULTS)).toHaveLength(513);
    expect(windowKeys(600, DEFAULTS)[0]).toBe(88);
    expect(windowKeys(100, DEFAULTS)).toEqual(Array.from({ length: 101 }, (_, k) => k));
  });

  it('expands selected blocks to their tokens up to t, ascending, each block once, ignoring -1', () => {
    const config = resolveNsaConfig({ kernelSize: 4, stride: 2, selectSize: 4, topN: 4 }, 4);
    expect(selectedKeys([2, 0, -1, 2], 9, config)).toEqual([0, 1, 2, 3, 8, 9]);
    expect(selectedKeys([1], 9, config)).toEqual([4, 5, 6, 7]);
  });
});

import { describe, expect, it } from 'vitest';
import { type AttentionWindow, isKeyVisible } from '../src/index.js';

/** The keys row i sees, as a list. */
function visibleKeys(i: number, n: number, nk: number, causal: boolean, window?: AttentionWindow): number[] {
  return Array.from({ length: nk }, (_, j) => j).filter((j) => isKeyVisible(i, j, n, nk, causal, window));
}

describe('isKeyVisible', () => {
  it('sees every key without causal or window', () => {
    expect(visibleKeys(0, 3, 5, false)).toEqual([0, 1, 2, 3, 4]);
    expect(visibleKeys(2, 3, 5, false, [-1, -1])).toEqual([0, 1, 2, 3, 4]);
  });

  it('aligns rows bottom-right: with n = nk it is the usual lower triangle', () => {
    expect(visibleKeys(0, 4, 4, true)).toEqual([0]);
    expect(visibleKeys(3, 4, 4, true)).toEqual([0, 1, 2, 3]);
  });

  it('aligns rows bottom-right: with nk > n row 0 sits at key nk - n', () => {
    // Two new queries after three cached keys: row 0 is token 3 of 5, row 1 token 4.
    expect(visibleKeys(0, 2, 5, true)).toEqual([0, 1, 2, 3]);
    expect(visibleKeys(1, 2, 5, true)).toEqual([0, 1, 2, 3, 4]);
    // Decode: one query sees every key.
    expect(visibleKeys(0, 1, 5, true)).toEqual([0, 1, 2, 3, 4]);
  });

  it('aligns rows bottom-right: with nk < n the first n - nk causal rows see nothing', () => {
    expect(visibleKeys(0, 5, 2, true)).toEqual([]);
    expect(visibleKeys(2, 5, 2, true)).toEqual([]);
    expect(visibleKeys(3, 5, 2, true)).toEqual([0]);
    expect(visibleKeys(4, 5, 2, true)).toEqual([0, 1]);
  });

  it('bounds the left side with window[0] and the right with window[1]', () => {
    expect(visibleKeys(5, 10, 10, false, [3, 0])).toEqual([2, 3, 4, 5]);
    expect(visibleKeys(5, 10, 10, false, [-1, 3])).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8]);
    expect(visibleKeys(5, 10, 10, false, [1, 2])).toEqual([4, 5, 6, 7]);
    expect(visibleKeys(5, 10, 10, false, [0, 0])).toEqual([5]);
    // Aligned bottom-right too: row 0 of 2 against 6 keys sits at key 4.
    expect(visibleKeys(0, 2, 6, false, [1, 1])).toEqual([3, 4, 5]);
  });

  it('makes causal force the right side to 0', () => {
    expect(visibleKeys(5, 10, 10, true, [2, 3])).toEqual([3, 4, 5]);
    expect(visibleKeys(5, 10, 10, true, [-1, 3])).toEqual(visibleKeys(5, 10, 10, true));
  });
});

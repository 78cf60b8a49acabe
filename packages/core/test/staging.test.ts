import { describe, expect, it } from 'vitest';
import { type StagedRowsVec4, stageRowsVec4Set } from '../src/flash/common.wgsl.js';

// The staging steps' index arithmetic, read off the generated WGSL. The kernels that use 16-byte
// loads need f16, which the CI adapters lack: `webattn verify` checks their results on GPUs, and
// this checks here that each load's eight halves land where the four-half loads put them.
describe('row staging: 8- and 16-byte loads', () => {
  const rows: StagedRowsVec4 = {
    dest: 'Xs',
    src: 'k',
    rows: 32,
    width: 128,
    destStride: 136,
    destOffset: 272,
    tokenStart: 'sp.kStart',
    heads: 'p.hkv',
    head: 'hk',
    first: 'k0',
    end: 'range.y',
    threads: 128,
  };

  it('covers the rows in half as many loads, each unpacking eight f16 to consecutive elements', () => {
    const narrow = stageRowsVec4Set(rows, 'e');
    const wide = stageRowsVec4Set({ ...rows, wide: true }, 'e');
    expect(narrow.count).toBe((32 * 128) / 4);
    expect(wide.count).toBe((32 * 128) / 8);
    // A row is 16 loads of 8 where it was 32 of 4; the storage index steps in those units.
    expect(wide.load(0, '')).toContain('var ex0 = vec4<u32>();');
    expect(wide.load(0, '')).toContain('* 16u + e0 % 16u]');
    expect(narrow.load(0, '')).toContain('* 32u + e0 % 32u]');
    // The same destination row and column: row e / 16 at stride 136, column 8 · (e % 16).
    expect(wide.store(0)).toContain('let at = 272u + (e0 / 16u) * 136u + 8u * (e0 % 16u);');
    expect(narrow.store(0)).toContain('let at = 272u + (e0 / 32u) * 136u + 4u * (e0 % 32u);');
    const halves = [
      ...wide.store(0).matchAll(/Xs\[at(?: \+ (\d)u)?\] = bitcast<vec2<f16>>\(ex0\.([xyzw])\)\.([xy]);/g),
    ];
    expect(halves.map(([, offset, lane, half]) => [Number(offset ?? 0), `${lane}.${half}`])).toEqual([
      [0, 'x.x'],
      [1, 'x.y'],
      [2, 'y.x'],
      [3, 'y.y'],
      [4, 'z.x'],
      [5, 'z.y'],
      [6, 'w.x'],
      [7, 'w.y'],
    ]);
  });
});

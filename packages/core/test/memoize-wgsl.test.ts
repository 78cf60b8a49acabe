import { describe, expect, it } from 'vitest';
import { memoizeWgsl, WebAttnError } from '../src/index.js';

describe('memoizeWgsl', () => {
  it('writes each configuration once and returns the same string for it after', () => {
    let calls = 0;
    const code = memoizeWgsl((c: { rows: number; matrix: { M: number } }) => {
      calls++;
      return `const ROWS = ${c.rows}u; // ${c.matrix.M} ${'x'.repeat(1000)}`;
    });
    const first = code({ rows: 16, matrix: { M: 16 } });
    expect(code({ rows: 16, matrix: { M: 16 } })).toBe(first);
    expect(calls).toBe(1);
    // A nested field that differs is another kernel.
    expect(code({ rows: 16, matrix: { M: 8 } })).toContain('// 8 ');
    expect(code({ rows: 32, matrix: { M: 16 } })).toContain('ROWS = 32u');
    expect(calls).toBe(3);
  });

  it('tells apart argument lists of several arguments', () => {
    const code = memoizeWgsl((dtype: string, width: number) => `${dtype}:${width}`);
    expect(code('f16', 4)).toBe('f16:4');
    expect(code('f32', 4)).toBe('f32:4');
    expect(code('f16', 8)).toBe('f16:8');
  });

  it('tells apart numbers JSON writes as null', () => {
    const code = memoizeWgsl((c: { bound: number | null }) => `bound ${c.bound}`);
    expect(code({ bound: Number.POSITIVE_INFINITY })).toBe('bound Infinity');
    expect(code({ bound: Number.NEGATIVE_INFINITY })).toBe('bound -Infinity');
    expect(code({ bound: Number.NaN })).toBe('bound NaN');
    expect(code({ bound: null })).toBe('bound null');
  });

  it('refuses an argument holding a function, which JSON would drop', () => {
    const code = memoizeWgsl(function kernelOf(c: { write: () => string }) {
      return c.write();
    });
    expect(() => code({ write: () => 'a' })).toThrow(WebAttnError);
    expect(() => code({ write: () => 'a' })).toThrow(/kernelOf.*'write' is a function/);
  });

  it('forgets the oldest configuration past 64 and writes it again when asked', () => {
    let calls = 0;
    const code = memoizeWgsl((n: number) => {
      calls++;
      return `n = ${n}`;
    });
    for (let n = 0; n < 65; n++) code(n);
    expect(calls).toBe(65);
    code(64);
    expect(calls).toBe(65);
    code(0);
    expect(calls).toBe(66);
  });
});

import { describe, expect, it } from 'vitest';
import { absorbedHeadDims, resolveMlaConfig } from '../src/index.js';

describe('resolveMlaConfig', () => {
  it("defaults to MiniCPM3-4B's dimensions and scale", () => {
    const c = resolveMlaConfig();
    expect(c).toMatchObject({
      heads: 40,
      kvLoraRank: 256,
      qkNopeHeadDim: 64,
      qkRopeHeadDim: 32,
      vHeadDim: 64,
    });
    expect(c.scale).toBeCloseTo(96 ** -0.5, 12);
    expect(absorbedHeadDims(c)).toEqual({ qk: 288, v: 256 });
  });

  it('derives the scale from the dims given and keeps an explicit one', () => {
    expect(resolveMlaConfig({ qkNopeHeadDim: 128, qkRopeHeadDim: 64 }).scale).toBeCloseTo(192 ** -0.5, 12);
    expect(resolveMlaConfig({ scale: 0.1 }).scale).toBe(0.1);
  });

  it('rejects bad dimensions, naming the field', () => {
    expect(() => resolveMlaConfig({ heads: 0 })).toThrow(/config.heads: expected a positive integer, got 0/);
    expect(() => resolveMlaConfig({ qkRopeHeadDim: 33 })).toThrow(
      /config.qkRopeHeadDim: expected a non-negative even integer/,
    );
    expect(() => resolveMlaConfig({ scale: Number.NaN })).toThrow(/config.scale: expected a positive number/);
  });
});

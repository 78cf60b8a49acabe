import { describe, expect, it } from 'vitest';
import {
  compressedBlockCount,
  resolveNsaConfig,
  resolveNsaConfigFromReference,
  selectionBlockCount,
} from '../src/index.js';

describe('resolveNsaConfig', () => {
  it('fills in the reference defaults', () => {
    const c = resolveNsaConfig({ heads: 64, kvHeads: 4, headDim: 128 });
    expect(c).toMatchObject({
      vHeadDim: 128,
      kernelSize: 32,
      stride: 16,
      blockSize: 64,
      topN: 16,
      windowSize: 512,
    });
    expect(c.scale).toBeCloseTo(1 / Math.sqrt(128), 12);
  });

  it('rejects each broken constraint, naming the field', () => {
    const base = { heads: 64, kvHeads: 4, headDim: 128 };
    expect(() => resolveNsaConfig({ ...base, kvHeads: 5 })).toThrow(
      /config.heads: expected a multiple of kvHeads \(5\), got 64/,
    );
    expect(() => resolveNsaConfig({ ...base, vHeadDim: 96 })).toThrow(
      /config.vHeadDim: expected a power of two, got 96/,
    );
    expect(() => resolveNsaConfig({ ...base, stride: 12 })).toThrow(/config.stride: expected a power of two/);
    expect(() => resolveNsaConfig({ ...base, kernelSize: 40 })).toThrow(
      /config.kernelSize: expected a multiple of stride \(16\)/,
    );
    expect(() => resolveNsaConfig({ ...base, blockSize: 16 })).toThrow(
      /config.blockSize: expected at least kernelSize \(32\)/,
    );
    expect(() => resolveNsaConfig({ ...base, topN: 2 })).toThrow(
      /config.topN: expected at least numInitBlocks \+ numLocalBlocks \(3\)/,
    );
    expect(() => resolveNsaConfig({ ...base, headDim: 0 })).toThrow(
      /config.headDim: expected a positive integer, got 0/,
    );
    expect(() => resolveNsaConfig({ ...base, windowSize: -1 })).toThrow(
      /config.windowSize: expected a non-negative integer/,
    );
  });
});

describe('resolveNsaConfigFromReference', () => {
  it('maps the reference names onto the config and leaves the rest to the defaults', () => {
    const dims = { heads: 4, kvHeads: 2, headDim: 16, vHeadDim: 8 };
    const settings = { kernelSize: 8, stride: 4, selectSize: 16, topN: 3, initBlocks: 0, localBlocks: 1 };
    expect(resolveNsaConfigFromReference(dims, settings)).toEqual(
      resolveNsaConfig({
        ...dims,
        kernelSize: 8,
        stride: 4,
        blockSize: 16,
        topN: 3,
        numInitBlocks: 0,
        numLocalBlocks: 1,
      }),
    );
    expect(resolveNsaConfigFromReference(dims, {})).toEqual(resolveNsaConfig(dims));
  });
});

describe('block counts', () => {
  it('follow M = floor((n - l) / s) + 1 and NB = ceil(n / L)', () => {
    const c = resolveNsaConfig({ heads: 16, kvHeads: 1, headDim: 64 });
    expect([31, 32, 47, 48, 4096].map((n) => compressedBlockCount(n, c))).toEqual([0, 1, 1, 2, 255]);
    expect([1, 64, 65, 4096].map((n) => selectionBlockCount(n, c))).toEqual([1, 1, 2, 64]);
  });
});

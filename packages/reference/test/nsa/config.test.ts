import { describe, expect, it } from 'vitest';
import { NSA_DEFAULTS, nsaForward, resolveNsaConfig } from '../../src/index.js';

describe('resolveNsaConfig', () => {
  it('fills in the reference defaults and a scale of dqk^-0.5', () => {
    expect(resolveNsaConfig({}, 64)).toEqual({
      kernelSize: 32,
      stride: 16,
      selectSize: 64,
      topN: 16,
      windowSize: 512,
      initBlocks: 1,
      localBlocks: 2,
      scale: 0.125,
    });
    expect(resolveNsaConfig({ stride: 8, scale: 0.5 }, 64)).toMatchObject({
      stride: 8,
      kernelSize: 32,
      scale: 0.5,
    });
    expect(Object.isFrozen(NSA_DEFAULTS)).toBe(true);
    // Sizes passed along in the same options object stay out of the config; undefined means default.
    const options = { batch: 1, n: 8, hq: 2, hkv: 1, dqk: 4, dv: 4, topN: undefined };
    expect(resolveNsaConfig(options, 64)).toEqual(resolveNsaConfig({}, 64));
  });

  it('accepts the Qwen variant, which forces only the current block', () => {
    expect(resolveNsaConfig({ initBlocks: 0, localBlocks: 1 }, 128)).toMatchObject({
      initBlocks: 0,
      localBlocks: 1,
    });
  });

  it.each([
    [{ stride: 12, kernelSize: 36, selectSize: 72 }, 'config.stride: expected a power of two, got 12'],
    [{ kernelSize: 40 }, 'config.kernelSize: expected a multiple of stride (16), got 40'],
    [{ selectSize: 72 }, 'config.selectSize: expected a multiple of stride (16), got 72'],
    [{ selectSize: 16 }, 'config.selectSize: expected at least kernelSize (32), got 16'],
    [{ topN: 2 }, 'config.topN: expected at least initBlocks + localBlocks (3), got 2'],
    [{ kernelSize: 0 }, 'config.kernelSize: expected a positive integer, got 0'],
    [{ topN: 1.5 }, 'config.topN: expected a positive integer, got 1.5'],
    [{ windowSize: -1 }, 'config.windowSize: expected a non-negative integer, got -1'],
    [{ scale: Number.NaN }, 'config.scale: expected a finite number, got NaN'],
  ])('rejects %o, naming the field, the expectation and the value', (config, message) => {
    expect(() => resolveNsaConfig(config, 64)).toThrow(message);
  });

  it('is applied by the forward before any tensor is read', () => {
    const shape = { batch: 1, n: 1, hq: 1, hkv: 1, dqk: 1, dv: 1 };
    const inputs = { q: [0], k: [0], v: [0], gates: [0, 0, 0] };
    expect(() => nsaForward(inputs, { ...shape, stride: 3 })).toThrow(/config.stride/);
    expect(() => nsaForward({ ...inputs, q: [0, 0] }, shape)).toThrow(/q has 2 elements/);
    expect(() => nsaForward(inputs, { ...shape, hq: 3, hkv: 2 })).toThrow(
      /hq \(3\) must be a multiple of hkv \(2\)/,
    );
  });
});

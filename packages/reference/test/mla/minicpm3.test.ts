import { describe, expect, it } from 'vitest';
import {
  absorbMlaWeights,
  MINICPM3_MLA_DIMS,
  MINICPM3_ROPE,
  mlaCacheBytesPerToken,
  mlaLayer,
  mlaLayerAbsorbed,
  standardKvCacheBytesPerToken,
} from '../../src/index.js';
import { expectClose, randomHidden, randomWeights } from './helpers.js';

describe('cache bytes per token (spec §4.1)', () => {
  it('MiniCPM3: 576 B latent + rope key against 12,800 B of per-head K/V per layer, 22.2× less', () => {
    const latent = mlaCacheBytesPerToken(MINICPM3_MLA_DIMS);
    const standard = standardKvCacheBytesPerToken(MINICPM3_MLA_DIMS);
    expect(latent).toBe(576);
    expect(standard).toBe(12_800);
    // Over the 62 layers: 35,712 B against 793,600 B.
    expect([62 * latent, 62 * standard]).toEqual([35_712, 793_600]);
    expect(standard / latent).toBeCloseTo(22.2, 1);
    expect(mlaCacheBytesPerToken(MINICPM3_MLA_DIMS, 4)).toBe(1152);
  });

  it('DeepSeek-V3 in FlashMLA: 512 latent + 64 rope values, 1152 B in bf16', () => {
    expect(mlaCacheBytesPerToken({ kvLoraRank: 512, qkRopeHeadDim: 64 })).toBe(1152);
  });
});

describe('MiniCPM3 dims', () => {
  it('absorbed == unabsorbed for a 3-token prefill and a decode step (40 heads, rank 256, rope 32)', () => {
    const dims = MINICPM3_MLA_DIMS;
    const weights = randomWeights(dims, 90);
    const absorbed = absorbMlaWeights(weights, dims);
    let cache: ReturnType<typeof mlaLayer>['cache'] | undefined;
    for (const [tokens, seed] of [
      [3, 91],
      [1, 92],
    ] as const) {
      const hidden = randomHidden(dims, tokens, seed);
      const options = { dims, rope: MINICPM3_ROPE, newLengths: [tokens], ...(cache && { cache }) };
      const plain = mlaLayer(hidden, weights, options);
      const fast = mlaLayerAbsorbed(hidden, absorbed, options);
      expect(plain.out).toHaveLength(tokens * 2560);
      expect(plain.out.every(Number.isFinite)).toBe(true);
      expectClose(fast.out, plain.out);
      cache = plain.cache;
    }
    expect([cache![0]!.cKv.length, cache![0]!.kPe.length]).toEqual([4 * 256, 4 * 32]);
  });
});

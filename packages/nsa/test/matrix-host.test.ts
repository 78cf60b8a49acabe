import { type Gpu, randomNormal, WebAttnError } from '@webattn/core';
import { nullMatrixGpu } from '@webattn/core/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  disposeNsaForward,
  disposeNsaGradients,
  nsaBackward,
  nsaForward,
  resolveNsaConfig,
} from '../src/index.js';
import type { NsaLayout } from '../src/layout.js';
import { checkSelectionFits, selectMatrixConfig } from '../src/select/select.js';
import {
  SELECTED_MATRIX_TILES,
  SELECTED_ROLE_SPLIT,
  selectedLazyConfig,
  selectedMatrixConfig,
} from '../src/selected/selected.js';

// The null backend compiles and dispatches without computing: running the whole tensor-core
// forward and backward on it checks the host code around those kernels (uniform parameters,
// bindings, dispatch sizes) here, which otherwise only `webattn verify nsa` on a GPU reaches.
describe('the tensor-core forward and backward dispatch on the null backend', () => {
  let gpu: Gpu;
  beforeAll(async () => {
    gpu = await nullMatrixGpu();
  });
  afterAll(() => gpu.destroy());

  // At d = 16 (dv = 32) the forward's scores stay whole and dK and dV run apart (the fused kernel
  // needs d = dv); at d = 64 the forward splits its scores over two parts of d and one kernel
  // computes dK and dV.
  it.each([
    [16, 32],
    [64, 64],
  ])(
    'every kernel of nsaForward and nsaBackward, selected branch on tensor cores, d = %i, dv = %i',
    async (d, dv) => {
      const [n, hq, hkv] = [200, 16, 1];
      const config = resolveNsaConfig({
        heads: hq,
        kvHeads: hkv,
        headDim: d,
        vHeadDim: dv,
        topN: 4,
        blockSize: 32,
        windowSize: 40,
      });
      // The shapes must take the tensor-core kernels within the null backend's 16 KiB.
      for (const kernel of ['forward', 'dq', 'dk', 'dv'] as const) {
        expect(selectedMatrixConfig(gpu.caps, config, undefined, kernel), kernel).toBeDefined();
      }
      const split = d === 64;
      // The forward runs the flash-shaped kernel at the widest tile that divides the 32-key blocks
      // and splits dv into whole fragments: 32 keys over two subgroups (dv = 32 and 64).
      expect(selectedLazyConfig(gpu.caps, config)?.tile).toBe(32);
      // Where a tile is a whole block, each tile's keys are loaded during the tile before.
      expect(selectedLazyConfig(gpu.caps, config)?.prefetchKeys).toBe(true);
      expect(selectedMatrixConfig(gpu.caps, config)?.scoreParts).toBe(split ? 2 : undefined);
      expect(selectedMatrixConfig(gpu.caps, config, undefined, 'dkdv-roles') !== undefined).toBe(split);
      // The kernels with a workgroup per (token, KV head) walk one KV head's tokens first.
      for (const kernel of ['forward', 'dq', 'dq-roles', 'dk', 'dv', 'dkdv-roles'] as const) {
        const c = selectedMatrixConfig(gpu.caps, config, undefined, kernel);
        if (c) expect(c.kvHeadMajor === true, kernel).toBe(['forward', 'dq', 'dq-roles'].includes(kernel));
      }
      // The values never matter here: nothing runs.
      const f16 = (shape: number[], seed: number) => randomNormal(gpu, shape, seed, { dtype: 'f16' });
      using q = await f16([1, n, hq, d], 1);
      using k = await f16([1, n, hkv, d], 2);
      using v = await f16([1, n, hkv, dv], 3);
      using g = await f16([1, n, hq, 3], 4);
      using dO = await f16([1, n, hq, dv], 5);
      const before = gpu.memory().liveBuffers;
      const forward = await nsaForward(gpu, config, q, k, v, g, { tier: 'subgroup-matrix' });
      const grads = await nsaBackward(forward, dO);
      expect(grads.dq.shape).toEqual(q.shape);
      expect(grads.dk.shape).toEqual(k.shape);
      expect(grads.dv.shape).toEqual(v.shape);
      disposeNsaGradients(grads);
      disposeNsaForward(forward);
      expect(gpu.memory().liveBuffers).toBe(before);
    },
  );

  it("the fused dK/dV kernel's shape respects the adapter's invocation limit (four column splits: 512)", () => {
    const config = resolveNsaConfig({ heads: 64, kvHeads: 4, headDim: 128, vHeadDim: 128 });
    const capsWith = (invocations: number) => ({
      ...gpu.caps,
      limits: {
        ...gpu.caps.limits,
        maxComputeWorkgroupStorageSize: 48 * 1024,
        maxComputeInvocationsPerWorkgroup: invocations,
      },
    });
    const splits = SELECTED_ROLE_SPLIT.dkdvColumnSplits;
    const tiles = [...SELECTED_MATRIX_TILES];
    try {
      // 32-key tiles alone, so that only the invocations decide: four column splits take 512.
      SELECTED_MATRIX_TILES.splice(0, Infinity, 32);
      SELECTED_ROLE_SPLIT.dkdvColumnSplits = 4;
      expect(selectedMatrixConfig(capsWith(1024), config, undefined, 'dkdv-roles')?.tile).toBe(32);
      expect(selectedMatrixConfig(capsWith(256), config, undefined, 'dkdv-roles')).toBeUndefined();
      SELECTED_ROLE_SPLIT.dkdvColumnSplits = 2;
      expect(selectedMatrixConfig(capsWith(256), config, undefined, 'dkdv-roles')?.tile).toBe(32);
      // Every tile: 16 keys (15.1 KiB) under the 16 KiB step win over 32 (28.6 KiB).
      SELECTED_MATRIX_TILES.splice(0, Infinity, ...tiles);
      expect(selectedMatrixConfig(capsWith(1024), config, undefined, 'dkdv-roles')?.tile).toBe(16);
      // With four splits, 16 keys take 256 invocations.
      SELECTED_ROLE_SPLIT.dkdvColumnSplits = 4;
      expect(selectedMatrixConfig(capsWith(128), config, undefined, 'dkdv-roles')).toBeUndefined();
    } finally {
      SELECTED_ROLE_SPLIT.dkdvColumnSplits = splits;
      SELECTED_MATRIX_TILES.splice(0, Infinity, ...tiles);
    }
  });

  it('the role-split dQ and dK/dV kernels take their own load widths (SELECTED_ROLE_SPLIT.wideLoads)', () => {
    const config = resolveNsaConfig({ heads: 64, kvHeads: 4, headDim: 128, vHeadDim: 128 });
    const caps = { ...gpu.caps, limits: { ...gpu.caps.limits, maxComputeWorkgroupStorageSize: 48 * 1024 } };
    const matrix = { M: 16, N: 16, K: 16 };
    const widths = { ...SELECTED_ROLE_SPLIT.wideLoads };
    const wide = (kernel: 'dq-roles' | 'dkdv-roles') =>
      selectedMatrixConfig(caps, config, matrix, kernel)?.wideLoads === true;
    try {
      // The defaults: 16 bytes for dQ, 8 for dK/dV (faster each on the H200).
      expect([wide('dq-roles'), wide('dkdv-roles')]).toEqual([true, false]);
      SELECTED_ROLE_SPLIT.wideLoads = { dq: false, dkdv: true };
      expect([wide('dq-roles'), wide('dkdv-roles')]).toEqual([false, true]);
    } finally {
      SELECTED_ROLE_SPLIT.wideLoads = widths;
    }
  });

  it('the backward kernels take the widest tile under the lowest step of workgroup memory', () => {
    const config = resolveNsaConfig({ heads: 64, kvHeads: 4, headDim: 128, vHeadDim: 128 });
    const caps = { ...gpu.caps, limits: { ...gpu.caps.limits, maxComputeWorkgroupStorageSize: 48 * 1024 } };
    // The role-split dQ kernel: 64 keys take 42.6 KiB, 32 keys 21.6, 16 keys 11.1.
    expect(selectedMatrixConfig(caps, config, undefined, 'dq-roles')?.tile).toBe(16);
    // The forward keeps the widest tile that fits.
    expect(selectedMatrixConfig(caps, config, undefined, 'forward')?.tile).toBe(64);
  });
});

describe('the selection length limit', () => {
  let gpu: Gpu;
  beforeAll(async () => {
    gpu = await nullMatrixGpu();
  });
  afterAll(() => gpu.destroy());

  // The scalar selection holds a score per selection block of the longest sequence in workgroup
  // memory; the tensor-core one keeps its top-n in registers, so its length is not capped there.
  it('caps the scalar selection only: a million tokens fit the tensor-core selection under 48 KiB', () => {
    const limits = { ...gpu.caps.limits, maxComputeWorkgroupStorageSize: 48 * 1024 };
    const caps = { ...gpu.caps, limits };
    const device = { caps } as Gpu;
    const config = resolveNsaConfig({ heads: 64, kvHeads: 4, headDim: 128, vHeadDim: 128 });
    const blocks = (1 << 20) / config.blockSize;
    const layout = { maxSelectionBlocks: blocks } as NsaLayout;
    expect(selectMatrixConfig(caps, config, blocks)?.streamingPicks).toBe(true);
    expect(() => checkSelectionFits(device, layout, config, 'subgroup-matrix')).not.toThrow();
    for (const tier of ['portable', 'subgroups', 'f16'] as const) {
      let error: unknown;
      try {
        checkSelectionFits(device, layout, config, tier);
      } catch (e) {
        error = e;
      }
      expect(error, tier).toBeInstanceOf(WebAttnError);
      expect((error as WebAttnError).code).toBe('limit-exceeded');
      expect((error as WebAttnError).message).toContain(`${blocks} selection blocks`);
    }
    // Without matrix shapes the tensor-core tier would run the scalar kernel: capped.
    const plain = { caps: { ...caps, subgroupMatrixConfigs: [] } } as unknown as Gpu;
    expect(() => checkSelectionFits(plain, layout, config, 'subgroup-matrix')).toThrow(/selection blocks/);
    // A sequence within the scalar kernel's memory passes on every tier.
    const short = { maxSelectionBlocks: 1024 } as NsaLayout;
    for (const tier of ['portable', 'subgroups', 'f16', 'subgroup-matrix'] as const) {
      expect(() => checkSelectionFits(device, short, config, tier), tier).not.toThrow();
    }
  });
});

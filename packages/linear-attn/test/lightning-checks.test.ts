import { type Gpu, matrixSubgroupSize, Tensor, WebAttnError } from '@webattn/core';
import { nullGpu, testGpu } from '@webattn/core/testing';
import {
  compare,
  l2Normalize,
  randn,
  lightningAttention as refForward,
  toleranceFor,
} from '@webattn/reference';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  chunkOutputMatrixWgsl,
  chunkOutputWgsl,
  chunkStateMatrixWgsl,
  chunkStateWgsl,
  disposeLightningContext,
  lightningAttention,
  lightningAttentionBackward,
  lightningDecodeWgsl,
  scanWgsl,
} from '../src/index.js';
import { runLightningForward } from '../src/lightning/lightning-forward.js';
import { l2NormalizeBackwardWgsl, l2NormalizeWgsl } from '../src/lightning/normalize.wgsl.js';
import { chunkOutputSharedBytes, planLightning } from '../src/lightning/options.js';
import { statePassMatrixWgsl, statePassSharedBytes } from '../src/lightning/state-pass-matrix.wgsl.js';

describe('every lightning and decode kernel compiles on the null backend, f32 and f16', () => {
  let gpu: Gpu;
  beforeAll(async () => {
    gpu = await nullGpu();
  });
  afterAll(() => gpu.destroy());

  for (const dtype of ['f32', 'f16'] as const) {
    it(dtype, async () => {
      const kernels: [string, string][] = [
        ...[false, true].flatMap((splitStates) =>
          ([1, 4] as const).flatMap((width): [string, string][] => [
            [
              `scan split=${splitStates} width=${width}`,
              scanWgsl({ reverse: false, hasStart: true, writeEnd: true, splitStates, width }),
            ],
            [
              `reverse scan split=${splitStates} width=${width}`,
              scanWgsl({ reverse: true, hasStart: false, writeEnd: false, splitStates, width }),
            ],
          ]),
        ),
        ['normalize', l2NormalizeWgsl(dtype)],
        ['normalize backward', l2NormalizeBackwardWgsl(dtype)],
        ...[false, true].flatMap((inPlace) =>
          [false, true].map((checkFinite): [string, string] => [
            `decode inPlace=${inPlace} check=${checkFinite}`,
            lightningDecodeWgsl({ dtype, inPlace, checkFinite }),
          ]),
        ),
      ];
      // Chunk 128 needs more than WebGPU's default 16 KiB of workgroup memory (the null device's).
      const sizes = [32, 64, 128].filter(
        (c) => chunkOutputSharedBytes(c) <= gpu.caps.limits.maxComputeWorkgroupStorageSize,
      );
      expect(sizes).toContain(64);
      for (const chunkSize of sizes) {
        for (const backward of [false, true]) {
          kernels.push([
            `chunk state C=${chunkSize} bwd=${backward}`,
            chunkStateWgsl({ dtype, chunkSize, backward }),
          ]);
        }
        for (const [reverse, transposeState] of [
          [false, false],
          [false, true],
          [true, true],
          [true, false],
        ] as const) {
          kernels.push([
            `chunk output C=${chunkSize} reverse=${reverse} transpose=${transposeState}`,
            chunkOutputWgsl({ dtype, chunkSize, reverse, transposeState, checkFinite: dtype === 'f16' }),
          ]);
        }
      }
      for (const [name, code] of kernels) {
        await expect(gpu.pipelines.get(code, name), name).resolves.toBeDefined();
      }
    });
  }

  it('tensor-core output and chunk-state kernels (16x16x16 f16 -> f32), every direction, with and without the f16 check', async () => {
    const sizes = matrixSubgroupSize(gpu.caps);
    for (const [reverse, transposeState] of [
      [false, false],
      [false, true],
      [true, true],
      [true, false],
    ] as const) {
      for (const checkFinite of [false, true]) {
        const name = `chunk output tensor-core reverse=${reverse} transpose=${transposeState} check=${checkFinite}`;
        const code = chunkOutputMatrixWgsl({ dtype: 'f16', reverse, transposeState, checkFinite, ...sizes });
        await expect(gpu.pipelines.get(code, name), name).resolves.toBeDefined();
      }
    }
    // Chunk 64 needs more than WebGPU's default 16 KiB of workgroup memory (the null device's).
    const passSizes = [32, 64].filter(
      (c) => statePassSharedBytes(c) <= gpu.caps.limits.maxComputeWorkgroupStorageSize,
    );
    expect(passSizes).toContain(32);
    for (const backward of [false, true]) {
      for (const chunkSize of passSizes) {
        for (const [checkFinite, hasStart, writeEnd, splitStates] of [
          [false, false, false, false],
          [true, true, true, false],
          [true, false, true, true],
          [false, true, false, true],
        ] as const) {
          const name = `state pass tensor-core C=${chunkSize} bwd=${backward} check=${checkFinite} start=${hasStart} end=${writeEnd} split=${splitStates}`;
          const code = statePassMatrixWgsl({
            chunkSize,
            backward,
            checkFinite,
            hasStart,
            writeEnd,
            splitStates,
            ...sizes,
          });
          await expect(gpu.pipelines.get(code, name), name).resolves.toBeDefined();
        }
      }
    }
    for (const backward of [false, true]) {
      for (const checkFinite of [false, true]) {
        for (const chunkSize of [32, 64, 128]) {
          const name = `chunk state tensor-core C=${chunkSize} bwd=${backward} check=${checkFinite}`;
          const code = chunkStateMatrixWgsl({ chunkSize, backward, checkFinite, ...sizes });
          await expect(gpu.pipelines.get(code, name), name).resolves.toBeDefined();
        }
      }
    }
  });
});

describe('lightningAttention rejects bad input before dispatching', () => {
  let gpu: Gpu;
  beforeAll(async () => {
    gpu = await testGpu();
  });
  afterAll(() => gpu.destroy());

  it('names the argument, the expected and the actual value', async () => {
    const make = (shape: number[], dtype: 'f32' | 'f16' = 'f32') =>
      Tensor.from(
        gpu,
        randn(
          shape.reduce((a, b) => a * b, 1),
          1,
        ),
        shape,
        dtype,
      );
    using q = make([1, 8, 4, 16]);
    using k = make([1, 8, 2, 16]);
    using v = make([1, 8, 2, 8]);
    using k3 = make([1, 8, 3, 16]);
    using v3 = make([1, 8, 3, 8]);
    using kShort = make([1, 7, 2, 16]);
    using state = make([1, 4, 16, 8]);
    using badState = make([2, 4, 16, 8]);
    using q3 = make([8, 4, 16]);
    const decays = [0.9, 0.9, 0.9, 0.9];
    const before = gpu.memory().liveBuffers;
    const cases: [string, () => Promise<unknown>, RegExp, string][] = [
      [
        'no decays',
        () => lightningAttention(gpu, q, k, v, {}),
        /exactly one of decays and slopes/,
        'invalid-argument',
      ],
      [
        'both',
        () => lightningAttention(gpu, q, k, v, { decays, slopes: decays }),
        /exactly one of decays and slopes, got both/,
        'invalid-argument',
      ],
      [
        'decays length',
        () => lightningAttention(gpu, q, k, v, { decays: [0.5] }),
        /decays: expected 4 values/,
        'shape-mismatch',
      ],
      [
        'decay > 1',
        () => lightningAttention(gpu, q, k, v, { decays: [0.5, 1.5, 0.5, 0.5] }),
        /decays\[1\]: expected a value in \[0, 1\], got 1.5/,
        'invalid-argument',
      ],
      [
        'NaN decay',
        () => lightningAttention(gpu, q, k, v, { decays: [0.5, 0.5, Number.NaN, 0.5] }),
        /decays\[2\]/,
        'invalid-argument',
      ],
      [
        'negative slope',
        () => lightningAttention(gpu, q, k, v, { slopes: [0.5, -1, 0.5, 0.5] }),
        /slopes\[1\]: expected a finite value >= 0, got -1/,
        'invalid-argument',
      ],
      [
        'k length',
        () => lightningAttention(gpu, q, kShort, v, { decays }),
        /k: expected shape \[1, 8, 2, 16\]/,
        'shape-mismatch',
      ],
      [
        'heads',
        () => lightningAttention(gpu, q, k3, v3, { decays }),
        /4 heads, not a multiple of k's and v's 3/,
        'heads-not-divisible',
      ],
      ['rank', () => lightningAttention(gpu, q3, k, v, { decays }), /q: expected rank 4/, 'shape-mismatch'],
      [
        'scale',
        () => lightningAttention(gpu, q, k, v, { decays, scale: Number.POSITIVE_INFINITY }),
        /scale: expected a finite number/,
        'invalid-argument',
      ],
      [
        'state binding',
        () => lightningAttention(gpu, q, k, v, { decays, stateBindingBytes: 100 }),
        /stateBindingBytes: expected an integer from one chunk's states \(2048\) to this device's maxStorageBufferBindingSize \(\d+\), got 100/,
        'invalid-argument',
      ],
      [
        'states over two bindings',
        // Eight one-token sequences are eight chunks; one chunk per binding holds two.
        () =>
          lightningAttention(gpu, q, k, v, {
            decays,
            cuSeqlens: [0, 1, 2, 3, 4, 5, 6, 7, 8],
            stateBindingBytes: 2048,
          }),
        /the per-chunk states need 16384 bytes \(8 chunks x 4 heads x 16 x 8 f32\), over 2 bindings of 2048 bytes/,
        'limit-exceeded',
      ],
      [
        'chunk',
        () => lightningAttention(gpu, q, k, v, { decays, chunkSize: 48 }),
        /chunkSize: expected one of 32, 64, 128, got 48/,
        'invalid-argument',
      ],
      [
        'initial state shape',
        () => lightningAttention(gpu, q, k, v, { decays, initialState: badState }),
        /initialState: expected shape \[1, 4, 16, 8\], got \[2, 4, 16, 8\]/,
        'shape-mismatch',
      ],
      [
        'cuSeqlens end',
        () => lightningAttention(gpu, q, k, v, { decays, cuSeqlens: [0, 3, 7] }),
        /cuSeqlens: expected to end at n \(8\), got 7/,
        'shape-mismatch',
      ],
      [
        'cuSeqlens order',
        () => lightningAttention(gpu, q, k, v, { decays, cuSeqlens: [0, 5, 3, 8] }),
        /cuSeqlens\[2\]: expected a non-decreasing integer, got 3 after 5/,
        'invalid-argument',
      ],
      [
        'cuSeqlens start',
        () => lightningAttention(gpu, q, k, v, { decays, cuSeqlens: [1, 8] }),
        /cuSeqlens: expected to start with 0/,
        'invalid-argument',
      ],
      [
        'tier',
        () => lightningAttention(gpu, q, k, v, { decays, tier: 'f16' }),
        /tier 'f16'/,
        'missing-feature',
      ],
    ];
    for (const [name, call, message, code] of cases) {
      const error = await call().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error, name).toBeInstanceOf(WebAttnError);
      expect((error as WebAttnError).message, name).toMatch(message);
      expect((error as WebAttnError).code, name).toBe(code);
    }
    expect(gpu.memory().liveBuffers).toBe(before);
    // The initial state must be f32 and dO must match o.
    const result = await lightningAttention(gpu, q, k, v, { decays, initialState: state });
    using wrongDo = make([1, 8, 4, 16]);
    await expect(lightningAttentionBackward(result.ctx, wrongDo)).rejects.toThrow(
      /dO: expected shape \[1, 8, 4, 8\]/,
    );
    await expect(lightningAttentionBackward(result.ctx, v)).rejects.toThrow(/dO: expected shape/);
    result.o.dispose();
    result.finalState.dispose();
    disposeLightningContext(result.ctx);
    await expect(lightningAttentionBackward(result.ctx, wrongDo)).rejects.toThrow(/context was disposed/);
  });
});

describe('overflow of f16 outputs is an error, never a silent inf', () => {
  let gpu: Gpu;
  beforeAll(async () => {
    gpu = await testGpu();
  });
  afterAll(() => gpu.destroy());

  // SwiftShader has no shader-f16, so the check (the same WGSL for both dtypes: flags any f32 value
  // that rounds past f16's largest finite value) runs here on f32 storage with the flag forced on.
  it('raises a WebAttnError where the unnormalised op leaves f16 range, and normalizeQk avoids it', async () => {
    const n = 256;
    const d = 32;
    // q·k ~ 100 · sqrt(32) per score, times |v| ~ 10, summed over up to 256 keys with a decay near 1: past 65504.
    const q0 = randn(n * d, 11, 10);
    const k0 = randn(n * d, 12, 10);
    const v0 = randn(n * d, 13, 10);
    using q = Tensor.from(gpu, q0, [1, n, 1, d]);
    using k = Tensor.from(gpu, k0, [1, n, 1, d]);
    using v = Tensor.from(gpu, v0, [1, n, 1, d]);
    const before = gpu.memory().liveBuffers;
    const plan = planLightning('test', gpu, q, k, v, { decays: [0.9999], scale: 1 });
    const ref = refForward(
      { q: q0, k: k0, v: v0, decays: [0.9999] },
      { batch: 1, n, hq: 1, hkv: 1, dk: d, dv: d, scale: 1 },
    );
    expect(Math.max(...Array.from(ref.o, Math.abs))).toBeGreaterThan(65504);
    const error = await runLightningForward(gpu, { ...plan, checkFinite: true }, q, k, v).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(WebAttnError);
    expect((error as WebAttnError).message).toMatch(/o left f16's range.*normalizeQk: true/);
    expect(gpu.memory().liveBuffers).toBe(before);

    const planNorm = planLightning('test', gpu, q, k, v, { decays: [0.9999], scale: 1, normalizeQk: true });
    const result = await runLightningForward(gpu, { ...planNorm, checkFinite: true }, q, k, v);
    const refNorm = refForward(
      { q: l2Normalize(q0, d), k: l2Normalize(k0, d), v: v0, decays: [0.9999] },
      { batch: 1, n, hq: 1, hkv: 1, dk: d, dv: d, scale: 1 },
    );
    const o = await result.o.read();
    expect(compare(refNorm.o, o, toleranceFor('f32', 16)).ok).toBe(true);
    expect(Math.max(...Array.from(o, Math.abs))).toBeLessThan(65504);
    result.o.dispose();
    result.finalState.dispose();
    disposeLightningContext(result.ctx);
    expect(gpu.memory().liveBuffers).toBe(before);
  });
});

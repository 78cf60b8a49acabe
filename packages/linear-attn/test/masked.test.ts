import { type Gpu, Tensor } from '@webattn/core';
import { testGpu } from '@webattn/core/testing';
import {
  compare,
  randn,
  maskedLinearAttentionBackward as referenceBackward,
  maskedLinearAttention as referenceForward,
  seededUniform,
  toleranceFor,
} from '@webattn/reference';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type MaskedImplementation,
  maskedLinearAttention,
  maskedLinearAttentionBackward,
} from '../src/index.js';

type MaskKind = 'random01' | 'zeros' | 'lower' | 'real';

interface Case {
  name: string;
  batch: number;
  n: number;
  hq: number;
  hkv: number;
  dk: number;
  dv: number;
  maskBatch: number;
  maskHeads: number;
  mask: MaskKind;
  scale?: number;
}

function makeMask(kind: MaskKind, mb: number, mh: number, n: number, seed: number): Float32Array {
  const m = new Float32Array(mb * mh * n * n);
  const rand = seededUniform(seed);
  for (let s = 0; s < mb * mh; s++) {
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        const at = (s * n + i) * n + j;
        if (kind === 'random01') m[at] = rand() < 0.5 ? 0 : 1;
        else if (kind === 'lower') m[at] = j <= i ? 1 : 0;
        else if (kind === 'real') m[at] = j <= i ? 0.9 ** (i - j) : 0;
      }
    }
  }
  return m;
}

const CASES: Case[] = [
  {
    name: 'n = 1',
    batch: 1,
    n: 1,
    hq: 2,
    hkv: 2,
    dk: 8,
    dv: 8,
    maskBatch: 1,
    maskHeads: 1,
    mask: 'random01',
  },
  {
    name: 'n off the tile, MQA one kv head, mask [1,1,n,n] random 0/1',
    batch: 2,
    n: 21,
    hq: 4,
    hkv: 1,
    dk: 16,
    dv: 12,
    maskBatch: 1,
    maskHeads: 1,
    mask: 'random01',
  },
  {
    name: 'GQA 2, mask [b,1,n,n] lower-triangular',
    batch: 2,
    n: 19,
    hq: 4,
    hkv: 2,
    dk: 8,
    dv: 16,
    maskBatch: 2,
    maskHeads: 1,
    mask: 'lower',
  },
  {
    name: 'mask [1,h,n,n] decayed (real weights), scale 0.25',
    batch: 2,
    n: 17,
    hq: 2,
    hkv: 1,
    dk: 12,
    dv: 8,
    maskBatch: 1,
    maskHeads: 2,
    mask: 'real',
    scale: 0.25,
  },
  {
    name: 'mask [b,h,n,n] random 0/1, dv > 32 per lane split',
    batch: 2,
    n: 33,
    hq: 2,
    hkv: 2,
    dk: 20,
    dv: 132,
    maskBatch: 2,
    maskHeads: 2,
    mask: 'random01',
  },
  {
    name: 'mask of zeros',
    batch: 1,
    n: 9,
    hq: 2,
    hkv: 1,
    dk: 8,
    dv: 8,
    maskBatch: 1,
    maskHeads: 1,
    mask: 'zeros',
  },
];

const IMPLEMENTATIONS: MaskedImplementation[] = ['naive', 'blocked', 'fused'];

function expectClose(name: string, expected: Float32Array, actual: Float32Array): void {
  let magnitude = 1;
  for (const x of expected) magnitude = Math.max(magnitude, Math.abs(x));
  const result = compare(expected, actual, toleranceFor('f32', magnitude));
  expect(result.ok, `${name}: ${JSON.stringify(result)}`).toBe(true);
}

describe('masked linear attention against the reference (f32, SwiftShader)', () => {
  let gpu: Gpu;
  beforeAll(async () => {
    gpu = await testGpu();
  });
  afterAll(() => gpu.destroy());

  for (const c of CASES) {
    it(c.name, async () => {
      const { batch, n, hq, hkv, dk, dv, maskBatch, maskHeads } = c;
      const scale = c.scale ?? 1;
      const q = randn(batch * n * hq * dk, 1);
      const k = randn(batch * n * hkv * dk, 2);
      const v = randn(batch * n * hkv * dv, 3);
      const dO = randn(batch * n * hq * dv, 4);
      const m = makeMask(c.mask, maskBatch, maskHeads, n, 5);
      const options = { batch, n, hq, hkv, dk, dv, maskBatch, maskHeads };
      const qScaled = q.map((x) => x * scale);
      const refO = referenceForward(qScaled, k, v, m, options);
      const refG = referenceBackward(qScaled, k, v, m, dO, options);
      const refDq = refG.dq.map((x) => x * scale);
      if (c.mask === 'zeros') expect(refO.every((x) => x === 0)).toBe(true);

      const before = gpu.memory().liveBuffers;
      using tq = Tensor.from(gpu, q, [batch, n, hq, dk]);
      using tk = Tensor.from(gpu, k, [batch, n, hkv, dk]);
      using tv = Tensor.from(gpu, v, [batch, n, hkv, dv]);
      using tm = Tensor.from(gpu, m, [maskBatch, maskHeads, n, n]);
      using tdo = Tensor.from(gpu, dO, [batch, n, hq, dv]);
      const outputs: Record<string, Float32Array[]> = {};
      for (const implementation of IMPLEMENTATIONS) {
        const { o, ctx } = await maskedLinearAttention(gpu, tq, tk, tv, tm, { scale, implementation });
        const g = await maskedLinearAttentionBackward(ctx, tdo);
        const got = [
          await o.read(),
          await g.dq.read(),
          await g.dk.read(),
          await g.dv.read(),
          await g.dm.read(),
        ];
        for (const t of [o, g.dq, g.dk, g.dv, g.dm]) t.dispose();
        const want = [refO, refDq, refG.dk, refG.dv, refG.dm];
        ['o', 'dq', 'dk', 'dv', 'dm'].forEach((name, i) => {
          expectClose(`${implementation} ${name}`, want[i]!, got[i]!);
        });
        outputs[implementation] = got;
      }
      // naive == blocked up to the order of f32 sums.
      for (let i = 0; i < 5; i++) {
        expectClose(`naive vs blocked #${i}`, outputs.naive![i]!, outputs.blocked![i]!);
      }
      for (const t of [tq, tk, tv, tm, tdo]) t.dispose();
      expect(gpu.memory().liveBuffers).toBe(before);
    });
  }

  it('is deterministic: dm of a broadcast mask is the same bits twice', async () => {
    const [batch, n, hq, hkv, d] = [2, 13, 4, 2, 8];
    using tq = Tensor.from(gpu, randn(batch * n * hq * d, 7), [batch, n, hq, d]);
    using tk = Tensor.from(gpu, randn(batch * n * hkv * d, 8), [batch, n, hkv, d]);
    using tv = Tensor.from(gpu, randn(batch * n * hkv * d, 9), [batch, n, hkv, d]);
    using tm = Tensor.from(gpu, makeMask('random01', 1, 1, n, 10), [1, 1, n, n]);
    using tdo = Tensor.from(gpu, randn(batch * n * hq * d, 11), [batch, n, hq, d]);
    const runs: Float32Array[] = [];
    for (let r = 0; r < 2; r++) {
      const { o, ctx } = await maskedLinearAttention(gpu, tq, tk, tv, tm, { implementation: 'blocked' });
      const g = await maskedLinearAttentionBackward(ctx, tdo);
      runs.push(await g.dm.read());
      for (const t of [o, g.dq, g.dk, g.dv, g.dm]) t.dispose();
    }
    expect(Array.from(runs[0]!)).toEqual(Array.from(runs[1]!));
  });
});

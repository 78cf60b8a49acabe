/**
 * `webattn bench flash`: the dense attention of the seed tables (b=1, hq=64, hkv=4, d=128, causal),
 * forward and backward, per storage dtype, with the materialised-scores attention for contrast where
 * its score matrix fits in one binding.
 */
import {
  flashAttention,
  flashAttentionBackward,
  type Gpu,
  randomNormal,
  type Tensor,
  type Tier,
  tierDtype,
} from '@webattn/core';
import { naiveAttention, naiveScoreBytes } from '../naive/naive-attention.js';
import type { SuiteOptions } from './suites.js';
import { ownKernelTiers } from './tiers.js';
import type { Implementation, PreparedRun, TableSpec } from './types.js';

const GPU_SIZES = [4096, 8192, 16384];
const CPU_SIZES = [64, 128, 256];

interface AttentionShape {
  hq: number;
  hkv: number;
  d: number;
}

/** The seed's shape on a GPU; fewer heads on a CPU adapter so a CI run stays short. */
function shapeFor(cpu: boolean): AttentionShape {
  return cpu ? { hq: 4, hkv: 1, d: 128 } : { hq: 64, hkv: 4, d: 128 };
}

async function inputs(gpu: Gpu, s: AttentionShape, n: number, tier: Tier) {
  const dtype = tierDtype(tier);
  return {
    q: await randomNormal(gpu, [1, n, s.hq, s.d], 1, { dtype }),
    k: await randomNormal(gpu, [1, n, s.hkv, s.d], 2, { dtype }),
    v: await randomNormal(gpu, [1, n, s.hkv, s.d], 3, { dtype }),
  };
}

function flashColumn(tier: Tier): string {
  return tier === 'subgroup-matrix' ? 'flash tensor-core f16' : `flash ${tierDtype(tier)}`;
}

function flashForward(s: AttentionShape, tier: Tier): Implementation {
  return {
    name: flashColumn(tier),
    tier,
    async prepare(gpu, n): Promise<PreparedRun> {
      const { q, k, v } = await inputs(gpu, s, n, tier);
      let last: Tensor[] = [];
      return {
        async run() {
          for (const t of last) t.dispose();
          const r = await flashAttention(gpu, q, k, v, { causal: true, tier });
          last = [r.o, r.lse];
        },
        dispose: () => {
          for (const t of [q, k, v, ...last]) t.dispose();
        },
      };
    },
  };
}

function flashBackward(s: AttentionShape, tier: Tier): Implementation {
  return {
    name: flashColumn(tier),
    tier,
    async prepare(gpu, n): Promise<PreparedRun> {
      const { q, k, v } = await inputs(gpu, s, n, tier);
      const forward = await flashAttention(gpu, q, k, v, { causal: true, tier });
      const dO = await randomNormal(gpu, forward.o.shape, 4, { dtype: forward.o.dtype });
      let last: Tensor[] = [];
      return {
        async run() {
          for (const t of last) t.dispose();
          const g = await flashAttentionBackward(forward.ctx, dO);
          last = [g.dq, g.dk, g.dv];
        },
        dispose: () => {
          for (const t of [q, k, v, dO, forward.o, forward.lse, ...last]) t.dispose();
        },
      };
    },
  };
}

function naiveForward(s: AttentionShape, tier: Tier): Implementation {
  return {
    name: `naive ${tierDtype(tier)} (scores in memory)`,
    tier,
    async prepare(gpu, n): Promise<PreparedRun | undefined> {
      // One head's scores must fit a binding; the heads then take as many passes as they need.
      if (naiveScoreBytes(1, 1, n, n) > gpu.caps.limits.maxStorageBufferBindingSize) return undefined;
      const { q, k, v } = await inputs(gpu, s, n, tier);
      let last: Tensor | undefined;
      return {
        async run() {
          last?.dispose();
          last = await naiveAttention(gpu, q, k, v, true);
        },
        dispose: () => {
          for (const t of [q, k, v, last]) t?.dispose();
        },
      };
    },
  };
}

/** Forward and backward tables, one flash column per storage dtype the adapter runs. */
export function flashTables(gpu: Gpu, options: SuiteOptions): TableSpec[] {
  const s = shapeFor(options.cpu);
  const tiers = ownKernelTiers(gpu, options);
  const sizes = options.sizes ?? (options.cpu ? CPU_SIZES : GPU_SIZES);
  const shape = `b=1, hq=${s.hq}, hkv=${s.hkv}, d=${s.d}, causal`;
  const forwardFlops = (n: number) => 2 * 2 * ((n * n) / 2) * s.d * s.hq;
  return [
    {
      id: 'flash-fwd',
      title: `attention forward (${shape})`,
      sizeLabel: 'n',
      sizes,
      implementations: [
        ...tiers.map((t) => flashForward(s, t)),
        // The naive kernel has no tensor-core form: the tensor-core tier's contrast is the f16 one.
        ...[...new Set(tiers.map((t) => (t === 'subgroup-matrix' ? 'f16' : t)))].map((t) =>
          naiveForward(s, t),
        ),
      ],
      flops: forwardFlops,
    },
    {
      id: 'flash-bwd',
      title: `attention backward (${shape})`,
      sizeLabel: 'n',
      sizes,
      implementations: tiers.map((t) => flashBackward(s, t)),
      flops: (n) => 2.5 * forwardFlops(n),
    },
  ];
}

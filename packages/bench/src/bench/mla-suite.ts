/**
 * `webattn bench mla`: (a) decode at MiniCPM3's dims (40 heads, r = 256, dr = 32, dv = 64) through
 * the paged latent cache, batch 1/8/32/64 x cache 1024/4096/16384, beside what eager attention does
 * (core's flash attention over the expanded per-head K/V cache, hkv = h = 40, d = 96, dv = 64), with
 * the effective bandwidth of the latent-cache bytes read against the streaming probe; (b) prefill,
 * ms and TFLOPS; (c) generation through a whole layer, in mla-generation-suite.ts. Inputs are filled
 * on the GPU (core's randomNormal), so no size needs host memory.
 */
import {
  type Dtype,
  flashAttention,
  type Gpu,
  randomNormal,
  type Tensor,
  type Tier,
  tierDtype,
} from '@webattn/core';
import { MlaCache, mlaAttention, mlaAttentionPaged, planMlaLaunch } from '@webattn/mla';
import { MINICPM3_MLA_DIMS, mlaCacheBytesPerToken, standardKvCacheBytesPerToken } from '@webattn/reference';
import { mlaGenerationTable } from './mla-generation-suite.js';
import type { SuiteOptions } from './suites.js';
import { ownKernelTiers } from './tiers.js';
import type { Implementation, PreparedRun, TableSpec } from './types.js';

const GPU_BATCHES = [1, 8, 32, 64];
const CPU_BATCHES = [1, 2];
const GPU_CACHES = [1024, 4096, 16384];
const CPU_CACHES = [64, 256];
const GPU_PREFILL = [1024, 2048, 4096, 8192, 16384];
const CPU_PREFILL = [32, 64];

interface Dims {
  heads: number;
  r: number;
  dr: number;
  dn: number;
  dv: number;
}

/** MiniCPM3's attention dims; fewer heads on a CPU adapter so a CI run stays short. */
function dimsFor(cpu: boolean): Dims {
  const d = MINICPM3_MLA_DIMS;
  return {
    heads: cpu ? 8 : d.heads,
    r: d.kvLoraRank,
    dr: d.qkRopeHeadDim,
    dn: d.qkNopeHeadDim,
    dv: d.vHeadDim,
  };
}

const tierName = (tier: Tier) => (tier === 'subgroup-matrix' ? 'tensor-core f16' : tierDtype(tier));

const fits = (gpu: Gpu, elements: number, dtype: Dtype) =>
  elements * (dtype === 'f16' ? 2 : 4) <= gpu.caps.limits.maxStorageBufferBindingSize;

/**
 * How the fastest tier's decode is tiled at each cache size (kernel, rows per workgroup, key tile,
 * splits and workgroups), so a table's bandwidth can be read against the launch's parallelism.
 */
function tilingNote(gpu: Gpu, d: Dims, batch: number, caches: readonly number[], tier: Tier): string {
  const cells = caches.map((n) => {
    const { plan, matrix } = planMlaLaunch(
      gpu,
      { batch, nq: 1, heads: d.heads, r: d.r, dr: d.dr, maxLength: n },
      tier,
    );
    const workgroups = batch * plan.rowBlocks * plan.splits;
    return `cache ${n}: ${matrix ? 'tensor-core' : 'row'} kernel, ${plan.rows} rows x ${plan.keyTile} keys per tile, ${plan.splits} split${plan.splits === 1 ? '' : 's'} of ${plan.keysPerSplit} keys, ${workgroups} workgroup${workgroups === 1 ? '' : 's'}`;
  });
  return `Tiling of mla ${tierName(tier)}: ${cells.join('; ')}.`;
}

/** Absorbed decode through the paged latent cache: one query per sequence, `cache` keys each. */
function mlaDecodeColumn(d: Dims, batch: number, tier: Tier): Implementation {
  return {
    name: `mla ${tierName(tier)}`,
    tier,
    async prepare(gpu, n): Promise<PreparedRun | undefined> {
      const dtype = tierDtype(tier);
      if (!fits(gpu, batch * n * d.r, dtype)) return undefined;
      const cache = new MlaCache(gpu, {
        kvLoraRank: d.r,
        qkRopeHeadDim: d.dr,
        pages: batch * Math.ceil(n / 64),
        dtype,
      });
      const ids = Array.from({ length: batch }, () => cache.create());
      {
        using c = await randomNormal(gpu, [batch, n, d.r], 1, { dtype });
        using k = await randomNormal(gpu, [batch, n, d.dr], 2, { dtype });
        await cache.append(ids, c, k);
      }
      const q = await randomNormal(gpu, [batch, 1, d.heads, d.r], 3, { dtype });
      const qp = await randomNormal(gpu, [batch, 1, d.heads, d.dr], 4, { dtype });
      const w = await randomNormal(gpu, [d.heads, d.r, d.dv], 5, { dtype });
      const scale = (d.dn + d.dr) ** -0.5;
      let last: Tensor | undefined;
      return {
        async run() {
          last?.dispose();
          last = await mlaAttentionPaged(gpu, q, qp, cache, ids, w, { scale, tier });
        },
        dispose() {
          last?.dispose();
          for (const t of [q, qp, w]) t.dispose();
          cache.dispose();
        },
      };
    },
  };
}

/** What eager attention does: per-head K and V expanded from the latent, attention per head. */
function unabsorbedDecodeColumn(d: Dims, batch: number, tier: Tier): Implementation {
  return {
    name: `unabsorbed ${tierName(tier)}`,
    tier,
    async prepare(gpu, n): Promise<PreparedRun | undefined> {
      const dtype = tierDtype(tier);
      const dqk = d.dn + d.dr;
      if (!fits(gpu, batch * n * d.heads * dqk, dtype)) return undefined;
      const q = await randomNormal(gpu, [batch, 1, d.heads, dqk], 6, { dtype });
      const k = await randomNormal(gpu, [batch, n, d.heads, dqk], 7, { dtype });
      const v = await randomNormal(gpu, [batch, n, d.heads, d.dv], 8, { dtype });
      let last: Tensor[] = [];
      return {
        async run() {
          for (const t of last) t.dispose();
          const r = await flashAttention(gpu, q, k, v, { tier, scale: dqk ** -0.5 });
          last = [r.o, r.lse];
        },
        dispose() {
          for (const t of [q, k, v, ...last]) t.dispose();
        },
      };
    },
  };
}

/** Absorbed prefill of one sequence of `n` tokens over a dense latent cache (the flash path on tensor cores). */
function mlaPrefillColumn(d: Dims, tier: Tier): Implementation {
  return {
    name: `mla prefill ${tierName(tier)}`,
    tier,
    async prepare(gpu, n): Promise<PreparedRun | undefined> {
      const dtype = tierDtype(tier);
      if (!fits(gpu, n * d.heads * (d.r + d.dr), dtype)) return undefined;
      const x = {
        q: await randomNormal(gpu, [1, n, d.heads, d.r], 9, { dtype }),
        qp: await randomNormal(gpu, [1, n, d.heads, d.dr], 10, { dtype }),
        c: await randomNormal(gpu, [1, n, d.r], 11, { dtype }),
        k: await randomNormal(gpu, [1, n, d.dr], 12, { dtype }),
        w: await randomNormal(gpu, [d.heads, d.r, d.dv], 13, { dtype }),
      };
      const scale = (d.dn + d.dr) ** -0.5;
      let last: Tensor | undefined;
      return {
        async run() {
          last?.dispose();
          last = await mlaAttention(gpu, x.q, x.qp, x.c, x.k, x.w, [n], { scale, tier });
        },
        dispose() {
          last?.dispose();
          for (const t of Object.values(x)) t.dispose();
        },
      };
    },
  };
}

/** Decode tables (one per batch size), the prefill table and the generation table. */
export function mlaTables(gpu: Gpu, options: SuiteOptions): TableSpec[] {
  const d = dimsFor(options.cpu);
  const tiers = ownKernelTiers(gpu, options);
  const best = tiers.at(-1);
  if (!best) return [];
  const caches = options.sizes ?? (options.cpu ? CPU_CACHES : GPU_CACHES);
  const batches = options.cpu ? CPU_BATCHES : GPU_BATCHES;
  const cacheBytes = mlaCacheBytesPerToken({ kvLoraRank: d.r, qkRopeHeadDim: d.dr });
  const kvBytes = standardKvCacheBytesPerToken({
    heads: d.heads,
    qkNopeHeadDim: d.dn,
    qkRopeHeadDim: d.dr,
    vHeadDim: d.dv,
  });
  const shape = `h=${d.heads}, r=${d.r}, dr=${d.dr}, dv=${d.dv}, one query per sequence`;
  const memoryNote = `Cache per token and layer (f16): latent ${cacheBytes} B against ${kvBytes} B for the expanded per-head K/V cache, ${(kvBytes / cacheBytes).toFixed(1)}x less memory. The first column is the baseline: ratios above 1 are the absorbed decode's speedup.`;
  const decode: TableSpec[] = batches.map((batch) => ({
    id: `mla-decode-b${batch}`,
    title: `MLA decode, batch ${batch} (${shape}), paged latent cache vs unabsorbed K/V`,
    sizeLabel: 'cache',
    sizes: caches,
    implementations: [
      unabsorbedDecodeColumn(d, batch, best),
      ...tiers.map((t) => mlaDecodeColumn(d, batch, t)),
      ...tiers.filter((t) => t !== best).map((t) => unabsorbedDecodeColumn(d, batch, t)),
    ],
    bytes: (n) => batch * n * (d.r + d.dr) * (tierDtype(best) === 'f16' ? 2 : 4),
    bytesLabel: 'latent-cache bytes read',
    hostTimes: true,
    notes: () => [memoryNote, tilingNote(gpu, d, batch, caches, best)],
  }));
  const prefillSizes = options.sizes ?? (options.cpu ? CPU_PREFILL : GPU_PREFILL);
  const prefill: TableSpec = {
    id: 'mla-prefill',
    title: `MLA prefill, one sequence, causal (h=${d.heads}, r=${d.r}, dr=${d.dr}, dv=${d.dv})`,
    sizeLabel: 'n',
    sizes: prefillSizes,
    implementations: tiers.map((t) => mlaPrefillColumn(d, t)),
    // Causal-useful FLOPs: q·k over r + dr and p·c_kv over r per visible pair, then the W_UV epilogue.
    flops: (n) => 2 * d.heads * ((n * (n + 1)) / 2) * (2 * d.r + d.dr) + 2 * n * d.heads * d.r * d.dv,
  };
  return [...decode, prefill, mlaGenerationTable(options.cpu, options.sizes, tiers, tierName)];
}

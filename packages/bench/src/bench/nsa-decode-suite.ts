/**
 * The NSA decode table of `webattn bench nsa`: one decode step for a batch of sequences of n cached
 * tokens each (NsaCache + nsaDecode), beside dense attention's decode step over the same keys
 * (core's flash attention, one query per sequence aligned to its end), per tier.
 */
import { flashAttention, type Gpu, randomNormal, type Tensor, type Tier, tierDtype } from '@webattn/core';
import { NsaCache, type NsaConfig, type NsaDecodeResult, nsaDecode } from '@webattn/nsa';
import type { Implementation, PreparedRun, TableSpec } from './types.js';

const tierName = (tier: Tier) => (tier === 'subgroup-matrix' ? 'tensor-core f16' : tierDtype(tier));

/** The step's inputs: every sequence's n cached keys and values, and its newest query and gates. */
async function decodeInputs(gpu: Gpu, c: NsaConfig, batch: number, n: number, tier: Tier) {
  const dtype = tierDtype(tier);
  const total = batch * n;
  return {
    k: await randomNormal(gpu, [total, c.kvHeads, c.headDim], 11, { dtype }),
    v: await randomNormal(gpu, [total, c.kvHeads, c.vHeadDim], 12, { dtype }),
    q: await randomNormal(gpu, [batch, c.heads, c.headDim], 13, { dtype }),
    g: await randomNormal(gpu, [batch, c.heads, 3], 14, { dtype }),
  };
}

function nsaDecodeColumn(c: NsaConfig, batch: number, tier: Tier): Implementation {
  return {
    name: `nsa ${tierName(tier)}`,
    tier,
    async prepare(gpu, n): Promise<PreparedRun> {
      const x = await decodeInputs(gpu, c, batch, n, tier);
      const cache = NsaCache.create(gpu, c, { batch, capacity: n, dtype: tierDtype(tier) });
      await cache.append(x.k, x.v, new Array<number>(batch).fill(n));
      let last: NsaDecodeResult | undefined;
      const free = () => {
        last?.o.dispose();
        last?.selection.dispose();
      };
      return {
        async run() {
          free();
          last = await nsaDecode(gpu, cache, x.q, x.g, { tier });
        },
        dispose: () => {
          free();
          cache.dispose();
          for (const t of Object.values(x)) t.dispose();
        },
      };
    },
  };
}

function denseDecodeColumn(c: NsaConfig, batch: number, tier: Tier): Implementation {
  return {
    name: `dense flash ${tierName(tier)}`,
    tier,
    async prepare(gpu, n): Promise<PreparedRun> {
      const x = await decodeInputs(gpu, c, batch, n, tier);
      const sequences = Array.from({ length: batch + 1 }, (_, b) => b);
      const options = {
        causal: true,
        tier,
        cuSeqlensQ: sequences,
        cuSeqlensK: sequences.map((b) => b * n),
      };
      let last: Tensor[] = [];
      return {
        async run() {
          for (const t of last) t.dispose();
          const r = await flashAttention(gpu, x.q, x.k, x.v, options);
          last = [r.o, r.lse];
        },
        dispose: () => {
          for (const t of [...Object.values(x), ...last]) t.dispose();
        },
      };
    },
  };
}

/** The decode table: NSA and dense per tier, rows the cached tokens per sequence. */
export function nsaDecodeTable(
  c: NsaConfig,
  tiers: readonly Tier[],
  sizes: number[],
  batch: number,
  shape: string,
): TableSpec {
  return {
    id: 'nsa-decode',
    title: `NSA decode step, batch ${batch}, one new token per sequence (${shape})`,
    sizeLabel: 'cached tokens',
    sizes,
    implementations: tiers.flatMap((t) => [nsaDecodeColumn(c, batch, t), denseDecodeColumn(c, batch, t)]),
    hostTimes: true,
  };
}

/**
 * `webattn bench linear`, masked form: the seed's `O = ((Q Kᵀ) ⊙ M) V` with its random 0/1 mask
 * `[1, 1, n, n]`, naive (materialised) vs blocked (tiled) vs fused (tensor cores where the tier has
 * them), forward and backward, per tier; and the seed's memory table: the peak bytes of the buffers
 * each implementation allocates (its intermediates and outputs, not the inputs), relative to naive.
 */
import { type Gpu, randomBernoulli, randomNormal, type Tensor, type Tier, tierDtype } from '@webattn/core';
import {
  type MaskedImplementation,
  type MaskedLinearAttentionResult,
  maskedLinearAttention,
  maskedLinearAttentionBackward,
} from '@webattn/linear-attn';
import { peakAllocatedBytes } from './memory.js';
import type { SuiteOptions } from './suites.js';
import { fastestTiers } from './tiers.js';
import type { Implementation, PreparedRun, TableSpec } from './types.js';

const GPU_SIZES = [1024, 2048, 4096, 8192];
const CPU_SIZES = [64, 128];

/** Heads and head dim of a masked-attention column. */
export interface MaskedBenchShape {
  heads: number;
  kvHeads: number;
  d: number;
}

/** b = 1, 8 heads of 128 on a GPU (the naive scores, `[8, n, n]` f32, still bind at n = 4096); tiny on a CPU. */
function shapeFor(cpu: boolean): MaskedBenchShape {
  return cpu ? { heads: 2, kvHeads: 2, d: 32 } : { heads: 8, kvHeads: 8, d: 128 };
}

async function inputs(gpu: Gpu, s: MaskedBenchShape, n: number, tier: Tier) {
  const dtype = tierDtype(tier);
  // Scaled so that f16 sums of n products stay far from overflow.
  const scale = 1 / Math.sqrt(s.d * n);
  return {
    q: await randomNormal(gpu, [1, n, s.heads, s.d], 1, { dtype, scale }),
    k: await randomNormal(gpu, [1, n, s.kvHeads, s.d], 2, { dtype }),
    v: await randomNormal(gpu, [1, n, s.kvHeads, s.d], 3, { dtype }),
    // The seed's random 0/1 mask, filled on the device (n x n entries).
    mask: await randomBernoulli(gpu, [1, 1, n, n], 7, { dtype }),
    dO: await randomNormal(gpu, [1, n, s.heads, s.d], 4, { dtype, scale }),
  };
}

/** Whether the `[1, 1, n, n]` mask fits one binding: every implementation reads it whole. */
function maskFits(gpu: Gpu, n: number, tier: Tier): boolean {
  return n * n * (tierDtype(tier) === 'f16' ? 2 : 4) <= gpu.caps.limits.maxStorageBufferBindingSize;
}

/** Whether the naive kernels' `[b, h, n, n]` f32 scores fit one binding. */
function naiveFits(gpu: Gpu, s: MaskedBenchShape, n: number): boolean {
  return s.heads * n * n * 4 <= gpu.caps.limits.maxStorageBufferBindingSize;
}

const tierName = (tier: Tier) => (tier === 'subgroup-matrix' ? 'tensor-core f16' : tier);

/** Peak bytes per (pass, implementation, tier, n), filled while the columns prepare. */
export type MaskedMemoryLog = Map<string, number>;
const memoryKey = (pass: string, impl: string, tier: Tier, n: number) => `${pass}|${impl}|${tier}|${n}`;

/**
 * One implementation of the masked form at one tier, timing `pass`; its peak allocated bytes go to
 * `memory`. Sizes whose mask (or, for naive, whose scores) would not fit one binding are left out.
 */
export function maskedColumn(
  s: MaskedBenchShape,
  tier: Tier,
  implementation: MaskedImplementation,
  pass: 'forward' | 'backward',
  memory: MaskedMemoryLog,
): Implementation {
  return {
    name: `${implementation} ${tierName(tier)}`,
    tier,
    async prepare(gpu, n): Promise<PreparedRun | undefined> {
      if (!maskFits(gpu, n, tier)) return undefined;
      if (implementation === 'naive' && !naiveFits(gpu, s, n)) return undefined;
      const x = await inputs(gpu, s, n, tier);
      // The bench measures kernels: the f16 finite check (a readback) stays off.
      const options = { implementation, tier, checkFinite: false };
      const forward = () => maskedLinearAttention(gpu, x.q, x.k, x.v, x.mask, options);
      let held: MaskedLinearAttentionResult | undefined;
      let last: Tensor[] = [];
      const free = () => {
        for (const t of last) t.dispose();
        last = [];
      };
      if (pass === 'forward') {
        const bytes = await peakAllocatedBytes(gpu, async () => {
          last = [(await forward()).o];
          await gpu.sync();
        });
        memory.set(memoryKey(pass, implementation, tier, n), bytes);
      } else {
        held = await forward();
        const ctx = held.ctx;
        const bytes = await peakAllocatedBytes(gpu, async () => {
          last = Object.values(await maskedLinearAttentionBackward(ctx, x.dO));
          await gpu.sync();
        });
        memory.set(memoryKey(pass, implementation, tier, n), bytes);
      }
      return {
        async run() {
          free();
          if (pass === 'forward') last = [(await forward()).o];
          else last = Object.values(await maskedLinearAttentionBackward(held!.ctx, x.dO));
        },
        dispose: () => {
          free();
          held?.o.dispose();
          for (const t of Object.values(x)) t.dispose();
        },
      };
    },
  };
}

/** The memory table as markdown lines: MiB per implementation, and each relative to naive. */
function memoryNotes(
  title: string,
  pass: string,
  tiers: readonly Tier[],
  sizes: readonly number[],
  memory: MaskedMemoryLog,
): () => string[] {
  return () => {
    const impls: MaskedImplementation[] = ['naive', 'blocked', 'fused'];
    const columns = tiers.flatMap((t) => impls.map((i) => [i, t] as const));
    const names = columns.map(([i, t]) => `${i} ${tierName(t)}`);
    const lines = [
      title,
      '',
      `| n | ${names.map((c) => `${c} MiB`).join(' | ')} | ${names.map((c) => `${c} / naive`).join(' | ')} |`,
      `|${[...names, ...names, 'n'].map(() => ' ---: |').join('')}`,
    ];
    for (const n of sizes) {
      const bytes = columns.map(([i, t]) => memory.get(memoryKey(pass, i, t, n)));
      const mib = bytes.map((b) => (b === undefined ? '—' : (b / 2 ** 20).toPrecision(3)));
      const ratios = columns.map(([, t], c) => {
        const base = memory.get(memoryKey(pass, 'naive', t, n));
        const b = bytes[c];
        return base && b !== undefined ? `${(b / base).toFixed(2)}x` : '—';
      });
      lines.push(`| ${[n, ...mib, ...ratios].join(' | ')} |`);
    }
    return lines;
  };
}

/** Forward and backward tables of the masked form, with the peak-memory table under each. */
export function maskedLinearTables(gpu: Gpu, options: SuiteOptions): TableSpec[] {
  const s = shapeFor(options.cpu);
  const tiers = fastestTiers(gpu, options);
  const sizes = options.sizes ?? (options.cpu ? CPU_SIZES : GPU_SIZES);
  const shape = `b=1, h=${s.heads}, d=${s.d}, random 0/1 mask [1, 1, n, n]`;
  const memory: MaskedMemoryLog = new Map();
  const impls: MaskedImplementation[] = ['naive', 'blocked', 'fused'];
  return (['forward', 'backward'] as const).map((pass) => ({
    id: `linear-masked-${pass === 'forward' ? 'fwd' : 'bwd'}`,
    title: `Masked linear attention ${pass}, naive vs blocked vs fused (${shape})`,
    sizeLabel: 'n',
    sizes,
    implementations: tiers.flatMap((t) => impls.map((i) => maskedColumn(s, t, i, pass, memory))),
    notes: memoryNotes(
      `Peak bytes allocated by the masked ${pass} (intermediates and outputs, not the inputs), and their ratio to naive (the seed's 1x / 0.7x / 0.3x table):`,
      pass,
      tiers,
      sizes,
      memory,
    ),
  }));
}

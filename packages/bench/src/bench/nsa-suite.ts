/**
 * `webattn bench nsa`: the NSA forward with the reference defaults (kernel 32, stride 16, blocks of
 * 64, top 16, window 512) on the seed tables' shape (b=1, hq=64, hkv=4, d=128), beside core's dense
 * causal flash attention on the same inputs, per tier.
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
import {
  disposeNsaForward,
  disposeNsaGradients,
  type NsaConfig,
  type NsaGradients,
  nsaBackward,
  nsaForward,
  nsaForwardTensors,
  resolveNsaConfig,
} from '@webattn/nsa';
import { peakAllocatedBytes } from './memory.js';
import { nsaDecodeTable } from './nsa-decode-suite.js';
import type { SuiteOptions } from './suites.js';
import { ownKernelTiers } from './tiers.js';
import type { Implementation, PreparedRun, TableSpec } from './types.js';

const GPU_SIZES = [4096, 8192, 16384];
const CPU_SIZES = [256, 512];

/** The seed's shape on a GPU; fewer heads on a CPU adapter so a CI run stays short. */
function configFor(cpu: boolean): NsaConfig {
  return resolveNsaConfig(
    cpu ? { heads: 4, kvHeads: 1, headDim: 64 } : { heads: 64, kvHeads: 4, headDim: 128 },
  );
}

async function inputs(gpu: Gpu, c: NsaConfig, n: number, tier: Tier) {
  const dtype = tierDtype(tier);
  return {
    q: await randomNormal(gpu, [1, n, c.heads, c.headDim], 1, { dtype }),
    k: await randomNormal(gpu, [1, n, c.kvHeads, c.headDim], 2, { dtype }),
    v: await randomNormal(gpu, [1, n, c.kvHeads, c.vHeadDim], 3, { dtype }),
    g: await randomNormal(gpu, [1, n, c.heads, 3], 4, { dtype }),
  };
}

const tierName = (tier: Tier) => (tier === 'subgroup-matrix' ? 'tensor-core f16' : tierDtype(tier));

function nsaColumn(c: NsaConfig, tier: Tier): Implementation {
  return {
    name: `nsa ${tierName(tier)}`,
    tier,
    async prepare(gpu, n): Promise<PreparedRun> {
      const x = await inputs(gpu, c, n, tier);
      let last: Parameters<typeof disposeNsaForward>[0] | undefined;
      return {
        async run() {
          if (last) disposeNsaForward(last);
          last = await nsaForward(gpu, c, x.q, x.k, x.v, x.g, { tier });
        },
        dispose: () => {
          if (last) disposeNsaForward(last);
          for (const t of Object.values(x)) t.dispose();
        },
      };
    },
  };
}

function denseColumn(c: NsaConfig, tier: Tier): Implementation {
  return {
    name: `dense flash ${tierName(tier)}`,
    tier,
    async prepare(gpu, n): Promise<PreparedRun> {
      const x = await inputs(gpu, c, n, tier);
      let last: Tensor[] = [];
      return {
        async run() {
          for (const t of last) t.dispose();
          const r = await flashAttention(gpu, x.q, x.k, x.v, { causal: true, tier });
          last = [r.o, r.lse];
        },
        dispose: () => {
          for (const t of [...Object.values(x), ...last]) t.dispose();
        },
      };
    },
  };
}

/**
 * Per (implementation, n), filled while the columns prepare: the peak bytes allocated by a forward
 * plus backward, and the bytes the forward leaves for the backward (o and the saved tensors).
 */
type MemoryLog = Map<string, { peak: number; saved: number }>;

function nsaBackwardColumn(c: NsaConfig, tier: Tier, memory: MemoryLog): Implementation {
  const name = `nsa ${tierName(tier)}`;
  return {
    name,
    tier,
    async prepare(gpu, n): Promise<PreparedRun> {
      const x = await inputs(gpu, c, n, tier);
      // Everything a training step allocates beyond its inputs: the forward's saved tensors and
      // output, the backward's scratch and gradients.
      let forward: Awaited<ReturnType<typeof nsaForward>> | undefined;
      let last: NsaGradients | undefined;
      const peak = await peakAllocatedBytes(gpu, async () => {
        forward = await nsaForward(gpu, c, x.q, x.k, x.v, x.g, { tier });
        last = await nsaBackward(forward, forward.o);
        await gpu.sync();
      });
      const saved = nsaForwardTensors(forward!).reduce((sum, t) => sum + t.byteLength, 0);
      memory.set(`${name}|${n}`, { peak, saved });
      return {
        async run() {
          if (last) disposeNsaGradients(last);
          last = await nsaBackward(forward!, forward!.o);
        },
        dispose: () => {
          if (last) disposeNsaGradients(last);
          if (forward) disposeNsaForward(forward);
          for (const t of Object.values(x)) t.dispose();
        },
      };
    },
  };
}

function denseBackwardColumn(c: NsaConfig, tier: Tier, memory: MemoryLog): Implementation {
  const name = `dense flash ${tierName(tier)}`;
  return {
    name,
    tier,
    async prepare(gpu, n): Promise<PreparedRun> {
      const x = await inputs(gpu, c, n, tier);
      let forward: Awaited<ReturnType<typeof flashAttention>> | undefined;
      let last: Tensor[] = [];
      const peak = await peakAllocatedBytes(gpu, async () => {
        forward = await flashAttention(gpu, x.q, x.k, x.v, { causal: true, tier });
        last = Object.values(await flashAttentionBackward(forward.ctx, forward.o));
        await gpu.sync();
      });
      memory.set(`${name}|${n}`, { peak, saved: forward!.o.byteLength + forward!.lse.byteLength });
      return {
        async run() {
          for (const t of last) t.dispose();
          last = Object.values(await flashAttentionBackward(forward!.ctx, forward!.o));
        },
        dispose: () => {
          for (const t of [...Object.values(x), ...last]) t.dispose();
          forward?.o.dispose();
          forward?.lse.dispose();
        },
      };
    },
  };
}

/** The forward's stages, told apart by their kernels' labels. */
const STAGES: [string, (label: string) => boolean][] = [
  ['compress', (l) => l.startsWith('nsa compress')],
  ['compressed attention', (l) => l.startsWith('flash forward') && l.endsWith('key blocks')],
  ['score + top-n', (l) => l === 'nsa select'],
  ['selected attention', (l) => l === 'nsa selected attention'],
  ['window', (l) => l.startsWith('flash forward') && !l.endsWith('key blocks')],
  ['combine', (l) => l === 'nsa combine'],
];

/** One column per stage of the forward on the fastest tier, each timed from its kernels' timestamps. */
function stageColumns(c: NsaConfig, tier: Tier): Implementation[] {
  return STAGES.map(([name, kernels]) => ({ ...nsaColumn(c, tier), name, kernels }));
}

const isFlashBackward = (l: string) => l.startsWith('flash backward');

/** The backward's stages: the compressed branch includes the compression's backward. */
const BACKWARD_STAGES: [string, (label: string) => boolean][] = [
  ['combine', (l) => l.startsWith('nsa combine backward')],
  ['selected attention', (l) => l.startsWith('nsa selected attention') || l.startsWith('nsa selection ')],
  ['window', (l) => isFlashBackward(l) && !l.endsWith('key blocks')],
  [
    'compressed attention + compression',
    (l) =>
      (isFlashBackward(l) && l.endsWith('key blocks')) ||
      (l.startsWith('nsa compress') && l.includes('backward')),
  ],
  ['gradient sums', (l) => l === 'nsa gradient sum'],
];

/** One column per stage of the backward on the fastest tier. */
function backwardStageColumns(c: NsaConfig, tier: Tier): Implementation[] {
  // These columns' memory is the backward column's; their log is not reported.
  const memory: MemoryLog = new Map();
  return BACKWARD_STAGES.map(([name, kernels]) => ({ ...nsaBackwardColumn(c, tier, memory), name, kernels }));
}

const MiB = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;

/**
 * Lines under the backward table: each column's peak memory for a forward plus backward (the
 * caller's inputs and dO plus what the step allocates), and the NSA issue's measure of it: that
 * peak over the bytes of q, k, v, o and the tensors the forward saves for the backward.
 */
function memoryNotes(c: NsaConfig, tiers: Tier[], sizes: number[], memory: MemoryLog): () => string[] {
  return () => {
    const lines = [
      'Peak GPU memory of a forward plus backward (inputs, dO and everything the step allocates), per n, and that peak over q, k, v, o and the tensors the forward saves:',
    ];
    for (const n of sizes) {
      for (const tier of tiers) {
        const element = tierDtype(tier) === 'f16' ? 2 : 4;
        const qkv = n * element * (c.heads * c.headDim + c.kvHeads * (c.headDim + c.vHeadDim));
        // q, k, v, the gate logits and dO.
        const inputs = qkv + n * element * (3 * c.heads + c.heads * c.vHeadDim);
        const cells = [`nsa ${tierName(tier)}`, `dense flash ${tierName(tier)}`].flatMap((name) => {
          const m = memory.get(`${name}|${n}`);
          if (!m) return [];
          const peak = inputs + m.peak;
          return [
            `${name} ${MiB(peak)} (${MiB(inputs)} inputs and dO + ${MiB(m.peak)} allocated), ${(peak / (qkv + m.saved)).toFixed(2)}x q, k, v, o and saved (${MiB(qkv + m.saved)})`,
          ];
        });
        if (cells.length) lines.push(`- n = ${n}: ${cells.join('; ')}`);
      }
    }
    return lines;
  };
}

/** Forward and backward tables: NSA and dense flash per tier with kernels of its own. */
export function nsaTables(gpu: Gpu, options: SuiteOptions): TableSpec[] {
  const c = configFor(options.cpu);
  const tiers = ownKernelTiers(gpu, options);
  const shape = `b=1, hq=${c.heads}, hkv=${c.kvHeads}, d=${c.headDim}, kernel ${c.kernelSize}, stride ${c.stride}, blocks ${c.blockSize}, top ${c.topN}, window ${c.windowSize}`;
  const sizes = options.sizes ?? (options.cpu ? CPU_SIZES : GPU_SIZES);
  const memory: MemoryLog = new Map();
  return [
    {
      id: 'nsa-fwd',
      title: `NSA forward (${shape})`,
      sizeLabel: 'n',
      sizes,
      // PyTorch's dense attention at the seed's shape (the GPU config is the flash tables').
      ...(!options.cpu && { externalFrom: 'flash-fwd' }),
      implementations: tiers.flatMap((t) => [nsaColumn(c, t), denseColumn(c, t)]),
    },
    {
      id: 'nsa-fwd-stages',
      title: `NSA forward by stage, ${tierName(tiers.at(-1) ?? 'portable')} (${shape})`,
      sizeLabel: 'n',
      sizes,
      implementations: tiers.length ? stageColumns(c, tiers.at(-1)!) : [],
      stages: true,
    },
    {
      id: 'nsa-bwd',
      title: `NSA backward (${shape})`,
      sizeLabel: 'n',
      sizes,
      ...(!options.cpu && { externalFrom: 'flash-bwd' }),
      implementations: tiers.flatMap((t) => [
        nsaBackwardColumn(c, t, memory),
        denseBackwardColumn(c, t, memory),
      ]),
      notes: memoryNotes(c, tiers, sizes, memory),
    },
    {
      id: 'nsa-bwd-stages',
      title: `NSA backward by stage, ${tierName(tiers.at(-1) ?? 'portable')} (${shape})`,
      sizeLabel: 'n',
      sizes,
      implementations: tiers.length ? backwardStageColumns(c, tiers.at(-1)!) : [],
      stages: true,
    },
    nsaDecodeTable(c, tiers, sizes, options.cpu ? 2 : 8, shape.replace(/^b=1, /, '')),
  ];
}

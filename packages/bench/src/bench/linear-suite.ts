/**
 * `webattn bench linear`, decayed form: TransnormerLLM's lightning attention chunkwise (linear in n)
 * against the masked blocked kernel and core's dense causal flash attention at the same shapes,
 * forward and backward, for b = 1, d = 128 and 16 and 32 heads, and the seed's 12 heads of 64 and
 * one head of 768, n = 4096..65536 on a GPU; and the recurrent decode step for a batch of sequences
 * (one token each), whose time per step divided by the batch is the time per token.
 */
import {
  flashAttention,
  flashAttentionBackward,
  type Gpu,
  randomNormal,
  Tensor,
  type Tier,
  tierDtype,
} from '@webattn/core';
import {
  alibiSlopes,
  disposeLightningContext,
  type LightningAttentionResult,
  lightningAttention,
  lightningAttentionBackward,
  lightningDecode,
} from '@webattn/linear-attn';
import { maskedColumn } from './masked-linear-suite.js';
import type { SuiteOptions } from './suites.js';
import { fastestTiers } from './tiers.js';
import type { Implementation, PreparedRun, TableSpec } from './types.js';

const GPU_SIZES = [4096, 16384, 65536];
const CPU_SIZES = [64, 256];
const GPU_DECODE_BATCHES = [1, 16, 64];
const CPU_DECODE_BATCHES = [1, 4];

interface Shape {
  heads: number;
  d: number;
}

const tierName = (tier: Tier) => (tier === 'subgroup-matrix' ? 'tensor-core f16' : tierDtype(tier));

/** q, k, v and dO at unit scale; the default scale 1/sqrt(d) and ALiBi decays keep f16 outputs O(10). */
async function inputs(gpu: Gpu, s: Shape, n: number, tier: Tier) {
  const dtype = tierDtype(tier);
  const shape = [1, n, s.heads, s.d];
  return {
    q: await randomNormal(gpu, shape, 1, { dtype }),
    k: await randomNormal(gpu, shape, 2, { dtype }),
    v: await randomNormal(gpu, shape, 3, { dtype }),
    dO: await randomNormal(gpu, shape, 4, { dtype, scale: 0.1 }),
  };
}

function lightningColumn(s: Shape, tier: Tier, pass: 'forward' | 'backward'): Implementation {
  return {
    name: `lightning ${tierName(tier)}`,
    tier,
    async prepare(gpu, n): Promise<PreparedRun> {
      const x = await inputs(gpu, s, n, tier);
      // The bench measures kernels: the f16 finite check (a readback) stays off.
      const options = { slopes: alibiSlopes(s.heads), tier, checkFinite: false };
      let held: LightningAttentionResult | undefined;
      let last: Tensor[] = [];
      const free = () => {
        for (const t of last) t.dispose();
        last = [];
      };
      const forward = async () => {
        const r = await lightningAttention(gpu, x.q, x.k, x.v, options);
        disposeLightningContext(r.ctx);
        return [r.o, r.finalState];
      };
      if (pass === 'backward') held = await lightningAttention(gpu, x.q, x.k, x.v, options);
      return {
        async run() {
          free();
          if (pass === 'forward') last = await forward();
          else {
            const g = await lightningAttentionBackward(held!.ctx, x.dO);
            last = [g.dq, g.dk, g.dv];
          }
        },
        dispose: () => {
          free();
          if (held) {
            held.o.dispose();
            held.finalState.dispose();
            disposeLightningContext(held.ctx);
          }
          for (const t of Object.values(x)) t.dispose();
        },
      };
    },
  };
}

/** The forward's stages, told apart by their kernels' labels (see linear-attn's kernels.ts). */
const FORWARD_STAGES: [string, (label: string) => boolean][] = [
  ['chunk states', (l) => l.startsWith('lightning chunk states')],
  ['scan', (l) => l === 'lightning scan'],
  ['fused state pass', (l) => l.startsWith('lightning states pass')],
  ['output', (l) => l.startsWith('lightning o')],
];

/** The backward's stages: dq reads the forward's states again, dk and dv the reverse scan's. */
const BACKWARD_STAGES: [string, (label: string) => boolean][] = [
  ['chunk states', (l) => l.startsWith('lightning chunk')],
  ['scans', (l) => l.endsWith('scan')],
  ['fused state passes', (l) => l.includes('states pass')],
  ['dq', (l) => l.startsWith('lightning dq')],
  ['dk', (l) => l.startsWith('lightning dk')],
  ['dv', (l) => l.startsWith('lightning dv')],
];

/** One column per stage of a pass on one tier, each timed from its kernels' timestamps. */
function lightningStageColumns(s: Shape, tier: Tier, pass: 'forward' | 'backward'): Implementation[] {
  const stages = pass === 'forward' ? FORWARD_STAGES : BACKWARD_STAGES;
  return stages.map(([name, kernels]) => ({ ...lightningColumn(s, tier, pass), name, kernels }));
}

function flashColumn(s: Shape, tier: Tier, pass: 'forward' | 'backward'): Implementation {
  return {
    name: `dense flash ${tierName(tier)}`,
    tier,
    async prepare(gpu, n): Promise<PreparedRun> {
      const x = await inputs(gpu, s, n, tier);
      const held =
        pass === 'backward' ? await flashAttention(gpu, x.q, x.k, x.v, { causal: true, tier }) : undefined;
      let last: Tensor[] = [];
      return {
        async run() {
          for (const t of last) t.dispose();
          if (pass === 'forward') {
            const r = await flashAttention(gpu, x.q, x.k, x.v, { causal: true, tier });
            last = [r.o, r.lse];
          } else {
            const g = await flashAttentionBackward(held!.ctx, x.dO);
            last = [g.dq, g.dk, g.dv];
          }
        },
        dispose: () => {
          for (const t of [...last, ...Object.values(x)]) t.dispose();
          held?.o.dispose();
          held?.lse.dispose();
        },
      };
    },
  };
}

function decodeColumn(s: Shape, tier: Tier): Implementation {
  return {
    name: `decode ${tierName(tier)}`,
    tier,
    async prepare(gpu, batch): Promise<PreparedRun> {
      const dtype = tierDtype(tier);
      const token = [batch, s.heads, s.d];
      const q = await randomNormal(gpu, token, 1, { dtype });
      const k = await randomNormal(gpu, token, 2, { dtype });
      const v = await randomNormal(gpu, token, 3, { dtype });
      const state = Tensor.zeros(gpu, [batch, s.heads, s.d, s.d]);
      const options = { slopes: alibiSlopes(s.heads), tier, inPlace: true, checkFinite: false };
      let last: Tensor | undefined;
      return {
        async run() {
          last?.dispose();
          last = (await lightningDecode(gpu, q, k, v, state, options)).o;
        },
        dispose: () => {
          for (const t of [q, k, v, state, last]) t?.dispose();
        },
      };
    },
  };
}

/**
 * The masked form's blocked kernel at the same shape (the seed's random 0/1 mask, which costs it the
 * same as a causal one: it skips no tile), at the sizes where the `[1, 1, n, n]` mask fits a binding.
 */
function maskedBlockedColumn(s: Shape, tier: Tier, pass: 'forward' | 'backward'): Implementation {
  const column = maskedColumn({ heads: s.heads, kvHeads: s.heads, d: s.d }, tier, 'blocked', pass, new Map());
  return { ...column, name: `masked blocked ${tierName(tier)}` };
}

/** 16 and 32 heads of 128 (the bars' shapes), then the seed's 12 heads of 64 and one head of 768. */
const GPU_SHAPES: Shape[] = [
  { heads: 16, d: 128 },
  { heads: 32, d: 128 },
  { heads: 12, d: 64 },
  { heads: 1, d: 768 },
];
/** The shape of the tables by stage and of the decode step. */
const GPU_STAGE_SHAPE: Shape = { heads: 32, d: 128 };
const CPU_SHAPE: Shape = { heads: 2, d: 32 };

/**
 * Lightning (chunkwise) vs the masked blocked kernel and dense causal flash attention, forward and
 * backward, at the GPU shapes (2 heads of 32 on a CPU adapter); both passes by stage and the decode
 * step at 32 heads of 128.
 */
export function lightningTables(gpu: Gpu, options: SuiteOptions): TableSpec[] {
  const tiers = fastestTiers(gpu, options);
  const sizes = options.sizes ?? (options.cpu ? CPU_SIZES : GPU_SIZES);
  const shapes = options.cpu ? [CPU_SHAPE] : GPU_SHAPES;
  const tables: TableSpec[] = [];
  for (const s of shapes) {
    // Causal flash: 2 matmuls of n²/2 · d per head forward. Lightning: O(n · d²), not comparable as FLOPs.
    for (const pass of ['forward', 'backward'] as const) {
      tables.push({
        id: `linear-lightning-${pass === 'forward' ? 'fwd' : 'bwd'}-h${s.heads}`,
        title: `Lightning attention ${pass} (chunkwise, 64-token chunks; per-chunk states over two bindings where one cannot hold them) vs the masked blocked kernel and dense causal flash attention (b=1, h=${s.heads}, d=${s.d}, ALiBi decays)`,
        sizeLabel: 'n',
        sizes,
        implementations: tiers.flatMap((t) => [
          lightningColumn(s, t, pass),
          maskedBlockedColumn(s, t, pass),
          flashColumn(s, t, pass),
        ]),
        notes: () => [
          `The ratio columns against the first show how much faster the linear-time kernel is; the bars: lightning forward+backward t(65536) / t(16384) <= 4.5, and lightning forward at n = 65536 >= 10x faster than dense flash.`,
        ],
      });
    }
  }
  const widest = options.cpu ? CPU_SHAPE : GPU_STAGE_SHAPE;
  const fastest = tiers.at(-1);
  for (const pass of ['forward', 'backward'] as const) {
    tables.push({
      id: `linear-lightning-${pass === 'forward' ? 'fwd' : 'bwd'}-stages`,
      title: `Lightning attention ${pass} by stage, ${tierName(fastest ?? 'portable')} (b=1, h=${widest.heads}, d=${widest.d}, ALiBi decays)`,
      sizeLabel: 'n',
      sizes,
      implementations: fastest ? lightningStageColumns(widest, fastest, pass) : [],
      stages: true,
      notes: () => [
        "GPU time of each stage's kernels; what the whole pass takes beyond their sum is time the GPU waited between them.",
      ],
    });
  }
  const decode = options.cpu ? CPU_SHAPE : GPU_STAGE_SHAPE;
  tables.push({
    id: 'linear-lightning-decode',
    title: `Lightning decode step, one token per sequence (h=${decode.heads}, d=${decode.d}, state f32 updated in place)`,
    sizeLabel: 'batch',
    sizes: options.sizes ? [1, 64] : options.cpu ? CPU_DECODE_BATCHES : GPU_DECODE_BATCHES,
    implementations: tiers.map((t) => decodeColumn(decode, t)),
    stages: true,
    // The step streams each sequence's f32 state in and out: memory-bound.
    bytes: (batch) => batch * decode.heads * decode.d * decode.d * 4 * 2,
    bytesLabel: 'f32 state bytes read and written',
    notes: () => [
      'Each step advances every sequence of the batch by one token: microseconds per token = ms x 1000 / batch (at batch 64, the issue asks for this number).',
    ],
  });
  return tables;
}

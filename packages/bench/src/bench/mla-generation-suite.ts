/**
 * `webattn bench mla`, table (c), the seed's generation-shaped table: for a shape (bs, in, out), bs
 * sequences prefill `in` tokens through one MLA attention layer with its cache, then take `out`
 * decode steps of one token each; total ms per shape. The absorbed layer (MlaAttention over the
 * paged latent cache) against the eager one (EagerMlaLayer over a dense per-head K/V cache), at
 * MiniCPM3's layer dims. Hidden states are filled on the GPU (core's randomNormal).
 */
import { type Gpu, randomNormal, type Tensor, type Tier, tierDtype } from '@webattn/core';
import {
  MlaAttention,
  MlaCache,
  type MlaLayerConfig,
  type MlaLayerDims,
  type MlaLayerWeights,
} from '@webattn/mla';
import {
  MINICPM3_MLA_DIMS,
  MINICPM3_ROPE,
  mlaSoftmaxScale,
  randn,
  ropeFrequencies,
} from '@webattn/reference';
import { EagerMlaLayer } from './mla-eager-layer.js';
import type { Implementation, PreparedRun, TableSpec } from './types.js';

/** The seed's `in` values; bs is 8 up to 512 and 4 above. */
const GPU_PROMPTS = [64, 256, 512, 1024, 2048];
const CPU_PROMPTS = [8];
/** Decode steps per run on a GPU: the seed runs min(in, 512); 64 keeps the table well under a minute. */
const GPU_STEP_CAP = 64;
const PAGE_SIZE = 64;

/** One row: `batch` sequences, `prompt` tokens each prefilled, then `steps` decode steps. */
export interface GenerationShape {
  batch: number;
  prompt: number;
  steps: number;
}

/** The shape of the row for `prompt` tokens: the seed's sweep on a GPU, a tiny one on a CPU adapter. */
export function generationShape(prompt: number, cpu: boolean): GenerationShape {
  if (cpu) return { batch: 2, prompt, steps: 2 };
  return { batch: prompt <= 512 ? 8 : 4, prompt, steps: Math.min(prompt, 512, GPU_STEP_CAP) };
}

/**
 * MiniCPM3's layer; on a CPU adapter 4 heads and a narrower model (SwiftShader's matmuls dominate a
 * run there), with its head and cache dims kept.
 */
export function generationDims(cpu: boolean): MlaLayerDims {
  const d = MINICPM3_MLA_DIMS;
  return cpu ? { ...d, hiddenSize: 256, heads: 4, qLoraRank: 128 } : { ...d };
}

/**
 * Random weights in the HF layouts, each matrix scaled by `1 / √columns` and each norm weight near 1,
 * so activations stay near unit size and finite in f16.
 */
export function generationWeights(d: MlaLayerDims, seed: number): MlaLayerWeights {
  const q = d.qLoraRank ?? d.hiddenSize;
  const matrix = (rows: number, columns: number, k: number) =>
    randn(rows * columns, seed + k, columns ** -0.5);
  const norm = (size: number, k: number) => randn(size, seed + k, 0.1).map((x) => 1 + x);
  return {
    qAProj: matrix(q, d.hiddenSize, 1),
    qALayernorm: norm(q, 2),
    qBProj: matrix(d.heads * (d.qkNopeHeadDim + d.qkRopeHeadDim), q, 3),
    kvAProjWithMqa: matrix(d.kvLoraRank + d.qkRopeHeadDim, d.hiddenSize, 4),
    kvALayernorm: norm(d.kvLoraRank, 5),
    kvBProj: matrix(d.heads * (d.qkNopeHeadDim + d.vHeadDim), d.kvLoraRank, 6),
    oProj: matrix(d.hiddenSize, d.heads * d.vHeadDim, 7),
  };
}

/** The layer config both columns share: MiniCPM3's rope and softmax scale, the tier's dtype. */
export function generationConfig(dims: MlaLayerDims, tier: Tier): MlaLayerConfig {
  return {
    dims,
    rope: {
      style: MINICPM3_ROPE.style,
      frequencies: (n) => ropeFrequencies(dims.qkRopeHeadDim, MINICPM3_ROPE, n),
    },
    scale: mlaSoftmaxScale(dims, MINICPM3_ROPE),
    dtype: tierDtype(tier),
    tier,
  };
}

/** A layer with its cache, as {@link generate} drives it. */
export interface GenerationLayer {
  /** Opens `batch` empty sequences. */
  start(): void;
  /** One call with `perSequence` new tokens of every sequence, packed sequence-major. */
  forward(hidden: Tensor, perSequence: number): Promise<Tensor>;
  /** Releases the sequences. */
  finish(): void;
  dispose(): void;
}

/** A constructor of one column's layer for a shape. */
export type GenerationLayerFactory = (
  gpu: Gpu,
  weights: MlaLayerWeights,
  config: MlaLayerConfig,
  shape: GenerationShape,
) => GenerationLayer;

/** The absorbed layer over a paged latent cache with room for the whole generation. */
export const absorbedGenerationLayer: GenerationLayerFactory = (gpu, weights, config, shape) => {
  const layer = new MlaAttention(gpu, weights, config);
  const cache = new MlaCache(gpu, {
    kvLoraRank: config.dims.kvLoraRank,
    qkRopeHeadDim: config.dims.qkRopeHeadDim,
    pages: shape.batch * Math.ceil((shape.prompt + shape.steps) / PAGE_SIZE),
    pageSize: PAGE_SIZE,
    dtype: config.dtype ?? 'f32',
  });
  let ids: number[] = [];
  return {
    start() {
      ids = Array.from({ length: shape.batch }, () => cache.create());
    },
    forward: (hidden, perSequence) =>
      layer.forward(
        hidden,
        cache,
        ids,
        ids.map(() => perSequence),
      ),
    finish() {
      for (const id of ids) cache.free(id);
      ids = [];
    },
    dispose() {
      layer.dispose();
      cache.dispose();
    },
  };
};

/** The eager layer over a dense K/V cache with room for the whole generation. */
export const eagerGenerationLayer: GenerationLayerFactory = (gpu, weights, config, shape) => {
  const layer = new EagerMlaLayer(gpu, weights, config, {
    batch: shape.batch,
    maxLength: shape.prompt + shape.steps,
  });
  return {
    start: () => layer.reset(),
    forward: (hidden, perSequence) => layer.forward(hidden, perSequence),
    finish() {},
    dispose: () => layer.dispose(),
  };
};

/**
 * One generation: fresh sequences, the prefill of `prompt` `[batch · shape.prompt, hiddenSize]`,
 * then `shape.steps` decode steps each fed `token` `[batch, hiddenSize]`. Returns the last call's
 * output (the caller disposes it); every other output is disposed as it is replaced.
 */
export async function generate(
  layer: GenerationLayer,
  shape: GenerationShape,
  prompt: Tensor,
  token: Tensor,
): Promise<Tensor> {
  layer.start();
  try {
    let out = await layer.forward(prompt, shape.prompt);
    for (let step = 0; step < shape.steps; step++) {
      out.dispose();
      out = await layer.forward(token, 1);
    }
    return out;
  } finally {
    layer.finish();
  }
}

/** The largest tensor either layer makes, in elements: the prefill's latent queries or the dense cache. */
function largestTensor(d: MlaLayerDims, s: GenerationShape): number {
  const tokens = s.batch * s.prompt;
  const cached = s.batch * (s.prompt + s.steps);
  return Math.max(tokens * d.heads * d.kvLoraRank, cached * d.heads * (d.qkNopeHeadDim + d.vHeadDim));
}

function generationColumn(
  name: string,
  make: GenerationLayerFactory,
  tier: Tier,
  dims: MlaLayerDims,
  weights: () => MlaLayerWeights,
  cpu: boolean,
): Implementation {
  return {
    name,
    tier,
    async prepare(gpu, size): Promise<PreparedRun | undefined> {
      const shape = generationShape(size, cpu);
      const config = generationConfig(dims, tier);
      const bytes = largestTensor(dims, shape) * (config.dtype === 'f16' ? 2 : 4);
      if (bytes > gpu.caps.limits.maxStorageBufferBindingSize) return undefined;
      const dtype = config.dtype ?? 'f32';
      const layer = make(gpu, weights(), config, shape);
      const prompt = await randomNormal(gpu, [shape.batch * shape.prompt, dims.hiddenSize], 21, { dtype });
      const token = await randomNormal(gpu, [shape.batch, dims.hiddenSize], 22, { dtype });
      return {
        async run() {
          (await generate(layer, shape, prompt, token)).dispose();
        },
        dispose() {
          prompt.dispose();
          token.dispose();
          layer.dispose();
        },
      };
    },
  };
}

/**
 * Table (c): rows `in` (`--sizes` replaces them), columns the eager layer on the best tier (the
 * baseline), the absorbed layer per tier, the eager layer on the other tiers. `tiers` and `tierName`
 * are the MLA suite's, so the columns match its other tables.
 */
export function mlaGenerationTable(
  cpu: boolean,
  sizes: number[] | undefined,
  tiers: readonly Tier[],
  tierName: (tier: Tier) => string,
): TableSpec {
  const dims = generationDims(cpu);
  // Host weights are made once per table, on first use, and shared by every column and row.
  let weights: MlaLayerWeights | undefined;
  const sharedWeights = () => {
    weights ??= generationWeights(dims, 1);
    return weights;
  };
  const column = (kind: 'mla' | 'unabsorbed', tier: Tier) =>
    generationColumn(
      `${kind} ${tierName(tier)}`,
      kind === 'mla' ? absorbedGenerationLayer : eagerGenerationLayer,
      tier,
      dims,
      sharedWeights,
      cpu,
    );
  const best = tiers.at(-1);
  const prompts = sizes ?? (cpu ? CPU_PROMPTS : GPU_PROMPTS);
  const rows = prompts.map((n) => generationShape(n, cpu));
  const steps = cpu ? 'out = 2 decode steps' : `out = min(in, 512) decode steps capped at ${GPU_STEP_CAP}`;
  return {
    id: 'mla-generation',
    title: `MLA generation through one layer (hidden ${dims.hiddenSize}, h=${dims.heads}, q rank ${dims.qLoraRank}, r=${dims.kvLoraRank}): bs sequences prefill \`in\` tokens, then ${steps}; ms = prefill + the ${cpu ? '' : 'capped '}decode steps, absorbed vs unabsorbed`,
    sizeLabel: 'in',
    sizes: prompts,
    implementations: best
      ? [
          column('unabsorbed', best),
          ...tiers.map((t) => column('mla', t)),
          ...tiers.filter((t) => t !== best).map((t) => column('unabsorbed', t)),
        ]
      : [],
    notes: () => [
      `Shapes (bs, in, out): ${rows.map((s) => `(${s.batch}, ${s.prompt}, ${s.steps})`).join(', ')}. The first column is the baseline: ratios above 1 are the absorbed layer's speedup.`,
    ],
  };
}

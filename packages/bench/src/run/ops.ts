/**
 * Ops `webattn run` can apply to tensors from a safetensors file. Each names its inputs, its config
 * keys and its outputs; the family packages add theirs as they land.
 */
import {
  flashAttention,
  flashAttentionBackward,
  type Gpu,
  type HostTensor,
  matmul,
  Tensor,
} from '@webattn/core';
import {
  disposeNsaForward,
  disposeNsaGradients,
  type NsaCompressors,
  nsaBackward,
  nsaForward,
  readSelection,
  resolveNsaConfig,
} from '@webattn/nsa';
import { linearAttnOp } from './linear-attn-op.js';
import { mlaOp } from './mla-op.js';
import { tierConfig } from './tier-config.js';

/** A tensor to write back: name, shape and values (floats written in the input's float precision). */
export interface OpOutput {
  name: string;
  shape: number[];
  /** Floats, or int32 indices (written as I32). */
  data: Float32Array | Int32Array;
  /** Written as f32 whatever the inputs' precision (e.g. lse, as flash_attn returns it). */
  alwaysF32?: boolean;
}

/** One op `webattn run` knows. */
export interface RunOp {
  name: string;
  summary: string;
  inputs: { required: string[]; optional: string[] };
  configKeys: string[];
  outputs: string;
  run(gpu: Gpu, inputs: Map<string, HostTensor>, config: Record<string, unknown>): Promise<OpOutput[]>;
}

function floatInput(inputs: Map<string, HostTensor>, name: string): HostTensor & { data: Float32Array } {
  const t = inputs.get(name);
  if (!t)
    throw new Error(
      `input tensor '${name}' is missing; the file has: ${[...inputs.keys()].join(', ') || 'none'}`,
    );
  if (!(t.data instanceof Float32Array))
    throw new Error(`input tensor '${name}': expected a floating dtype, got ${t.dtype}`);
  return t as HostTensor & { data: Float32Array };
}

const matmulOp: RunOp = {
  name: 'matmul',
  summary: 'C = A·B (or A·Bᵀ) with f32 accumulation',
  inputs: { required: ['a', 'b'], optional: [] },
  configKeys: ['transposeB (boolean)', 'tier'],
  outputs: 'c',
  async run(gpu, inputs, config) {
    const a = floatInput(inputs, 'a');
    const b = floatInput(inputs, 'b');
    // f16 files run f16 kernels; f32 and bf16 (widened on load) run in f32.
    const dtype = a.dtype === 'f16' && b.dtype === 'f16' ? 'f16' : 'f32';
    using ta = Tensor.from(gpu, a.data, a.shape, dtype);
    using tb = Tensor.from(gpu, b.data, b.shape, dtype);
    const tier = tierConfig(config);
    using c = await matmul(gpu, ta, tb, {
      transposeB: config.transposeB === true,
      ...(tier ? { tier } : {}),
    });
    return [{ name: 'c', shape: [...c.shape], data: await c.read() }];
  },
};

function windowConfig(config: Record<string, unknown>): [number, number] | undefined {
  const w = config.window;
  if (w === undefined || w === null) return undefined;
  if (!Array.isArray(w) || w.length !== 2 || !w.every((x) => Number.isInteger(x))) {
    throw new Error(
      `config.window: expected [left, right] integers (-1 = unbounded), got ${JSON.stringify(w)}`,
    );
  }
  return [w[0], w[1]];
}

const flashAttentionOp: RunOp = {
  name: 'flash-attn',
  summary:
    'dense attention, q [b, n, hq, d], k [b, nk, hkv, d], v [b, nk, hkv, dv] (token-major, like flash_attn_func)',
  inputs: { required: ['q', 'k', 'v'], optional: ['do'] },
  configKeys: ['causal (boolean)', 'window ([left, right])', 'scale (number)', 'tier'],
  outputs: 'o, lse; with do: dq, dk, dv',
  async run(gpu, inputs, config) {
    const [q, k, v] = (['q', 'k', 'v'] as const).map((name) => floatInput(inputs, name));
    const dtype = [q, k, v].every((t) => t!.dtype === 'f16') ? 'f16' : 'f32';
    using tq = Tensor.from(gpu, q!.data, q!.shape, dtype);
    using tk = Tensor.from(gpu, k!.data, k!.shape, dtype);
    using tv = Tensor.from(gpu, v!.data, v!.shape, dtype);
    if (config.scale !== undefined && typeof config.scale !== 'number') {
      throw new Error(`config.scale: expected a number, got ${JSON.stringify(config.scale)}`);
    }
    const window = windowConfig(config);
    const tier = tierConfig(config);
    const { o, lse, ctx } = await flashAttention(gpu, tq, tk, tv, {
      causal: config.causal === true,
      ...(window && { window }),
      ...(typeof config.scale === 'number' && { scale: config.scale }),
      ...(tier && { tier }),
    });
    using _o = o;
    using _lse = lse;
    const outputs: OpOutput[] = [
      { name: 'o', shape: [...o.shape], data: await o.read() },
      { name: 'lse', shape: [...lse.shape], data: await lse.read(), alwaysF32: true },
    ];
    if (inputs.has('do')) {
      const dOut = floatInput(inputs, 'do');
      using tdo = Tensor.from(gpu, dOut.data, dOut.shape, dtype);
      const grads = await flashAttentionBackward(ctx, tdo);
      for (const [name, t] of [
        ['dq', grads.dq],
        ['dk', grads.dk],
        ['dv', grads.dv],
      ] as const) {
        outputs.push({ name, shape: [...t.shape], data: await t.read() });
        t.dispose();
      }
    }
    return outputs;
  },
};

/** `[b, n, hkv, topN]` (the kernels' token-major layout) to the interop layout `[b, hkv, n, topN]`. */
function headMajorSelection(
  selection: Int32Array,
  b: number,
  n: number,
  hkv: number,
  topN: number,
): Int32Array {
  const out = new Int32Array(selection.length);
  for (let bi = 0; bi < b; bi++)
    for (let t = 0; t < n; t++)
      for (let g = 0; g < hkv; g++)
        for (let s = 0; s < topN; s++)
          out[((bi * hkv + g) * n + t) * topN + s] = selection[((bi * n + t) * hkv + g) * topN + s]!;
  return out;
}

/** The NSA config keys `run nsa` accepts, the module's names. */
const NSA_CONFIG_KEYS = [
  'kernelSize',
  'stride',
  'blockSize',
  'topN',
  'numInitBlocks',
  'numLocalBlocks',
  'windowSize',
  'scale',
] as const;

const nsaOp: RunOp = {
  name: 'nsa',
  summary:
    'Native Sparse Attention, q [b, n, hq, d], k [b, n, hkv, d], v [b, n, hkv, dv], g [b, n, hq, 3] gate logits; mean compression, the weighted one where k_weight [l] and k_pe [l, d] (v_weight, v_pe [l, dv]) are given, or config.compressor (linear, swiglu, sigmoid-mul) with k_weight [out, l·d] and v_weight [out, l·dv]',
  inputs: { required: ['q', 'k', 'v', 'g'], optional: ['do', 'k_weight', 'k_pe', 'v_weight', 'v_pe'] },
  configKeys: [
    ...NSA_CONFIG_KEYS.map((k) => `${k} (number)`),
    'compressor (linear, swiglu, sigmoid-mul)',
    'tier',
  ],
  outputs:
    "o, topk (int32 [b, hkv, n, topN], -1 = unused); with do: dq, dk, dv, dg, and the compressors' gradients dk_weight, dv_weight (and dk_pe, dv_pe for the weighted one)",
  async run(gpu, inputs, config) {
    const [q, k, v, g] = (['q', 'k', 'v', 'g'] as const).map((name) => floatInput(inputs, name));
    const [b, n, hq, d] = q!.shape as [number, number, number, number];
    const [, , hkv] = k!.shape as [number, number, number, number];
    const dv = v!.shape[3]!;
    const overrides: Record<string, number> = {};
    const learned = ['linear', 'swiglu', 'sigmoid-mul'] as const;
    const method = config.compressor;
    if (method !== undefined && !learned.includes(method as (typeof learned)[number])) {
      throw new Error(
        `config.compressor: expected one of ${learned.join(', ')}, got ${JSON.stringify(method)}`,
      );
    }
    for (const [key, value] of Object.entries(config)) {
      if (key === 'tier' || key === 'compressor') continue;
      if (!(NSA_CONFIG_KEYS as readonly string[]).includes(key)) {
        throw new Error(
          `config.${key}: not an NSA config key; expected one of ${NSA_CONFIG_KEYS.join(', ')}, compressor, tier`,
        );
      }
      if (typeof value !== 'number')
        throw new Error(`config.${key}: expected a number, got ${JSON.stringify(value)}`);
      overrides[key] = value;
    }
    const nsaConfig = resolveNsaConfig({ heads: hq, kvHeads: hkv, headDim: d, vHeadDim: dv, ...overrides });
    const dtype = [q, k, v, g].every((t) => t!.dtype === 'f16') ? 'f16' : 'f32';
    const [tq, tk, tv, tg] = [q, k, v, g].map((t) => Tensor.from(gpu, t!.data, t!.shape, dtype));
    const tier = tierConfig(config);
    const params: Tensor[] = [];
    const compressors: NsaCompressors = {};
    for (const side of ['k', 'v'] as const) {
      const [weight, pe] = [`${side}_weight`, `${side}_pe`].map((name) => {
        if (!inputs.has(name)) return undefined;
        const t = floatInput(inputs, name);
        const tensor = Tensor.from(gpu, t.data, t.shape, dtype);
        params.push(tensor);
        return tensor;
      });
      if (method !== undefined) {
        if (pe) throw new Error(`${side}_pe: not used by the ${String(method)} compressor; remove it`);
        if (!weight) throw new Error(`${side}_weight: required by config.compressor ${String(method)}`);
        compressors[side] = { method: method as (typeof learned)[number], weight };
        continue;
      }
      if ((weight === undefined) !== (pe === undefined)) {
        throw new Error(
          `${side}_weight and ${side}_pe: expected both for weighted compression, got only one`,
        );
      }
      if (weight && pe) compressors[side] = { weight, pe };
    }
    try {
      const result = await nsaForward(gpu, nsaConfig, tq!, tk!, tv!, tg!, {
        ...(tier && { tier }),
        compressors,
      });
      try {
        const selection = await readSelection(result.selection);
        const outputs: OpOutput[] = [
          { name: 'o', shape: [...result.o.shape], data: await result.o.read() },
          {
            name: 'topk',
            shape: [b, hkv, n, nsaConfig.topN],
            data: headMajorSelection(selection, b, n, hkv, nsaConfig.topN),
          },
        ];
        if (inputs.has('do')) {
          const dOut = floatInput(inputs, 'do');
          using tdo = Tensor.from(gpu, dOut.data, dOut.shape, dtype);
          const grads = await nsaBackward(result, tdo);
          try {
            const named: [string, Tensor | undefined][] = [
              ['dq', grads.dq],
              ['dk', grads.dk],
              ['dv', grads.dv],
              ['dg', grads.dg],
              ['dk_weight', grads.kCompressor?.weight],
              ['dk_pe', grads.kCompressor?.pe],
              ['dv_weight', grads.vCompressor?.weight],
              ['dv_pe', grads.vCompressor?.pe],
            ];
            for (const [name, t] of named) {
              if (t) outputs.push({ name, shape: [...t.shape], data: await t.read() });
            }
          } finally {
            disposeNsaGradients(grads);
          }
        }
        return outputs;
      } finally {
        disposeNsaForward(result);
      }
    } finally {
      for (const t of [tq, tk, tv, tg, ...params]) t!.dispose();
    }
  },
};

/** Every op, by name. */
export const RUN_OPS: ReadonlyMap<string, RunOp> = new Map(
  [matmulOp, flashAttentionOp, nsaOp, linearAttnOp, mlaOp].map((op) => [op.name, op]),
);

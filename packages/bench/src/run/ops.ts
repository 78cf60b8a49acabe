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
  TIERS,
  type Tier,
} from '@webattn/core';

/** A tensor to write back: name, shape and f32 values (written in the input's float precision). */
export interface OpOutput {
  name: string;
  shape: number[];
  data: Float32Array;
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

function tierConfig(config: Record<string, unknown>): Tier | undefined {
  const tier = config.tier;
  if (tier === undefined) return undefined;
  if (!TIERS.includes(tier as Tier))
    throw new Error(`config.tier: expected one of ${TIERS.join(', ')}, got ${JSON.stringify(tier)}`);
  return tier as Tier;
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

/** Every op, by name. */
export const RUN_OPS: ReadonlyMap<string, RunOp> = new Map(
  [matmulOp, flashAttentionOp].map((op) => [op.name, op]),
);

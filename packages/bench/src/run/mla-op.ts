/**
 * `webattn run mla`: the absorbed MLA attention at kernel level (`@webattn/mla`'s `mlaAttention`):
 * q_latent `[b, nq, h, r]`, q_pe `[b, nq, h, dr]`, c_kv `[b, nk, r]`, k_pe `[b, nk, dr]`,
 * w_uv `[h, r, dv]` and lengths (int32 or int64 `[b]`, keys per sequence; the nq queries are the
 * last nq of them), config `{"scale": ...}`; output o `[b, nq, h, dv]`.
 */
import { type HostTensor, Tensor, TIERS, type Tier } from '@webattn/core';
import { type MlaKernelChoice, mlaAttention } from '@webattn/mla';
import type { RunOp } from './ops.js';

const FLOATS = ['q_latent', 'q_pe', 'c_kv', 'k_pe', 'w_uv'] as const;

function input(inputs: Map<string, HostTensor>, name: string): HostTensor {
  const t = inputs.get(name);
  if (!t) {
    throw new Error(
      `input tensor '${name}' is missing; the file has: ${[...inputs.keys()].join(', ') || 'none'}`,
    );
  }
  return t;
}

function lengthsOf(inputs: Map<string, HostTensor>): number[] {
  const t = input(inputs, 'lengths');
  if (t.data instanceof Float32Array) {
    throw new Error(`input tensor 'lengths': expected an integer dtype (i32 or i64), got ${t.dtype}`);
  }
  if (t.shape.length !== 1) {
    throw new Error(`input tensor 'lengths': expected shape [b], got [${t.shape.join(', ')}]`);
  }
  return Array.from(t.data as ArrayLike<number | bigint>, Number);
}

const CONFIG_KEYS = ['scale', 'tier', 'splits', 'kernel'];

/** The `mla` op of `webattn run`. */
export const mlaOp: RunOp = {
  name: 'mla',
  summary:
    'absorbed MLA attention over a latent cache: q_latent [b, nq, h, r], q_pe [b, nq, h, dr], c_kv [b, nk, r], k_pe [b, nk, dr], w_uv [h, r, dv], lengths int32 [b] (the nq queries end each sequence)',
  inputs: { required: [...FLOATS, 'lengths'], optional: [] },
  configKeys: ['scale (number, required)', 'tier', 'splits (number)', "kernel ('auto' | 'latent' | 'flash')"],
  outputs: 'o [b, nq, h, dv]',
  async run(gpu, inputs, config) {
    for (const key of Object.keys(config)) {
      if (!CONFIG_KEYS.includes(key)) {
        throw new Error(`config.${key}: not an mla config key; expected one of ${CONFIG_KEYS.join(', ')}`);
      }
    }
    if (typeof config.scale !== 'number') {
      throw new Error(
        `config.scale: expected a number (e.g. 96 ** -0.5 for MiniCPM3), got ${JSON.stringify(config.scale)}`,
      );
    }
    const tier = config.tier as Tier | undefined;
    if (tier !== undefined && !TIERS.includes(tier)) {
      throw new Error(`config.tier: expected one of ${TIERS.join(', ')}, got ${JSON.stringify(tier)}`);
    }
    if (config.splits !== undefined && typeof config.splits !== 'number') {
      throw new Error(`config.splits: expected a number, got ${JSON.stringify(config.splits)}`);
    }
    const floats = FLOATS.map((name) => {
      const t = input(inputs, name);
      if (!(t.data instanceof Float32Array)) {
        throw new Error(`input tensor '${name}': expected a floating dtype, got ${t.dtype}`);
      }
      return t as HostTensor & { data: Float32Array };
    });
    const dtype = floats.every((t) => t.dtype === 'f16') ? 'f16' : 'f32';
    const lengths = lengthsOf(inputs);
    const tensors = floats.map((t) => Tensor.from(gpu, t.data, t.shape, dtype));
    try {
      const [ql, qp, c, k, w] = tensors as [Tensor, Tensor, Tensor, Tensor, Tensor];
      using o = await mlaAttention(gpu, ql, qp, c, k, w, lengths, {
        scale: config.scale,
        ...(tier && { tier }),
        ...(typeof config.splits === 'number' && { splits: config.splits }),
        ...(config.kernel !== undefined && { kernel: config.kernel as MlaKernelChoice }),
      });
      return [{ name: 'o', shape: [...o.shape], data: await o.read() }];
    } finally {
      for (const t of tensors) t.dispose();
    }
  },
};

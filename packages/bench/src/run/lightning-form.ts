/**
 * The slopes form of `webattn run linear-attn`: TransnormerLLM's decayed (lightning) attention,
 * chunkwise, with per-head slopes `[hq]` (`λ_h = exp(-slope_h)`); o, the final state, and with `do`
 * the gradients dq, dk, dv.
 */
import { type HostTensor, Tensor, TIERS, type Tier } from '@webattn/core';
import {
  disposeLightningContext,
  LIGHTNING_CHUNK_SIZES,
  lightningAttention,
  lightningAttentionBackward,
} from '@webattn/linear-attn';
import type { LinearAttnForm } from './linear-attn-op.js';
import type { OpOutput } from './ops.js';

const KEYS = ['scale', 'chunkSize', 'normalizeQk', 'cuSeqlens', 'tier'];

function floatTensor(inputs: Map<string, HostTensor>, name: string): HostTensor & { data: Float32Array } {
  const t = inputs.get(name);
  if (!t) {
    throw new Error(
      `input tensor '${name}' is missing; the file has: ${[...inputs.keys()].join(', ') || 'none'}`,
    );
  }
  if (!(t.data instanceof Float32Array))
    throw new Error(`input tensor '${name}': expected a floating dtype, got ${t.dtype}`);
  return t as HostTensor & { data: Float32Array };
}

function checkConfig(config: Record<string, unknown>): void {
  for (const key of Object.keys(config)) {
    if (!KEYS.includes(key))
      throw new Error(`config.${key}: not a lightning attention key; expected one of ${KEYS.join(', ')}`);
  }
  if (config.scale !== undefined && typeof config.scale !== 'number') {
    throw new Error(`config.scale: expected a number, got ${JSON.stringify(config.scale)}`);
  }
  if (config.normalizeQk !== undefined && typeof config.normalizeQk !== 'boolean') {
    throw new Error(`config.normalizeQk: expected a boolean, got ${JSON.stringify(config.normalizeQk)}`);
  }
  if (
    config.chunkSize !== undefined &&
    !(LIGHTNING_CHUNK_SIZES as readonly unknown[]).includes(config.chunkSize)
  ) {
    throw new Error(
      `config.chunkSize: expected one of ${LIGHTNING_CHUNK_SIZES.join(', ')}, got ${JSON.stringify(config.chunkSize)}`,
    );
  }
  const cu = config.cuSeqlens;
  if (cu !== undefined && !(Array.isArray(cu) && cu.every((x) => Number.isInteger(x)))) {
    throw new Error(`config.cuSeqlens: expected an array of integers, got ${JSON.stringify(cu)}`);
  }
  if (config.tier !== undefined && !TIERS.includes(config.tier as Tier)) {
    throw new Error(`config.tier: expected one of ${TIERS.join(', ')}, got ${JSON.stringify(config.tier)}`);
  }
}

/** The slopes form: o and finalState (f32), and with `do` dq, dk, dv. */
export const slopesForm: LinearAttnForm = {
  selector: 'slopes',
  configKeys: [
    'scale (number, default 1/sqrt(dk))',
    `chunkSize (${LIGHTNING_CHUNK_SIZES.join(' | ')})`,
    'normalizeQk (boolean)',
    'cuSeqlens (number[], with b = 1)',
    'tier',
  ],
  async run(gpu, inputs, config) {
    checkConfig(config);
    const host = (['q', 'k', 'v'] as const).map((name) => floatTensor(inputs, name));
    const slopes = floatTensor(inputs, 'slopes');
    // f16 files run f16 kernels; f32 and bf16 (widened on load) run in f32.
    const dtype = host.every((t) => t.dtype === 'f16') ? 'f16' : 'f32';
    const [tq, tk, tv] = host.map((t) => Tensor.from(gpu, t.data, t.shape, dtype)) as [
      Tensor,
      Tensor,
      Tensor,
    ];
    try {
      const result = await lightningAttention(gpu, tq, tk, tv, {
        slopes: slopes.data,
        ...(typeof config.scale === 'number' && { scale: config.scale }),
        ...(typeof config.chunkSize === 'number' && { chunkSize: config.chunkSize }),
        ...(config.normalizeQk === true && { normalizeQk: true }),
        ...(Array.isArray(config.cuSeqlens) && { cuSeqlens: config.cuSeqlens as number[] }),
        ...(config.tier !== undefined && { tier: config.tier as Tier }),
      });
      try {
        const outputs: OpOutput[] = [
          { name: 'o', shape: [...result.o.shape], data: await result.o.read() },
          {
            name: 'final_state',
            shape: [...result.finalState.shape],
            data: await result.finalState.read(),
            alwaysF32: true,
          },
        ];
        if (inputs.has('do')) {
          const dOut = floatTensor(inputs, 'do');
          using tdo = Tensor.from(gpu, dOut.data, dOut.shape, dtype);
          const grads = await lightningAttentionBackward(result.ctx, tdo);
          try {
            for (const [name, t] of [
              ['dq', grads.dq],
              ['dk', grads.dk],
              ['dv', grads.dv],
            ] as const) {
              outputs.push({ name, shape: [...t.shape], data: await t.read() });
            }
          } finally {
            for (const t of Object.values(grads)) t?.dispose();
          }
        }
        return outputs;
      } finally {
        result.o.dispose();
        result.finalState.dispose();
        disposeLightningContext(result.ctx);
      }
    } finally {
      for (const t of [tq, tk, tv]) t.dispose();
    }
  },
};

/**
 * `webattn run linear-attn`: q `[b, n, hq, dk]`, k `[b, n, hkv, dk]`, v `[b, n, hkv, dv]` (token-major)
 * with either a mask `m` `[1|b, 1|hq, n, n]` (the seed's masked form) or `slopes` `[hq]` (the decayed
 * lightning form), and optionally `do` for the gradients. This file handles the masked form; the
 * slopes form plugs in through {@link LINEAR_ATTN_FORMS}.
 */
import { type Gpu, type HostTensor, Tensor } from '@webattn/core';
import {
  MASKED_IMPLEMENTATIONS,
  type MaskedImplementation,
  maskedLinearAttention,
  maskedLinearAttentionBackward,
} from '@webattn/linear-attn';
import { slopesForm } from './lightning-form.js';
import type { OpOutput, RunOp } from './ops.js';
import { tierConfig } from './tier-config.js';

/** One form of the op: the tensor that selects it and how it runs. */
export interface LinearAttnForm {
  /** The input tensor that selects this form (`m` or `slopes`). */
  selector: string;
  /** Config keys this form reads. */
  configKeys: string[];
  run(gpu: Gpu, inputs: Map<string, HostTensor>, config: Record<string, unknown>): Promise<OpOutput[]>;
}

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

const MASKED_KEYS = ['scale', 'implementation', 'tier'];

/** The masked form: o, and with `do` the gradients dq, dk, dv and dm (the mask's, summed over its broadcast dims). */
export const maskedForm: LinearAttnForm = {
  selector: 'm',
  configKeys: ['scale (number, default 1)', `implementation (${MASKED_IMPLEMENTATIONS.join(' | ')})`, 'tier'],
  async run(gpu, inputs, config) {
    for (const key of Object.keys(config)) {
      if (!MASKED_KEYS.includes(key)) {
        throw new Error(
          `config.${key}: not a masked linear attention key; expected one of ${MASKED_KEYS.join(', ')}`,
        );
      }
    }
    if (config.scale !== undefined && typeof config.scale !== 'number') {
      throw new Error(`config.scale: expected a number, got ${JSON.stringify(config.scale)}`);
    }
    const implementation = config.implementation as MaskedImplementation | undefined;
    if (implementation !== undefined && !MASKED_IMPLEMENTATIONS.includes(implementation)) {
      throw new Error(
        `config.implementation: expected one of ${MASKED_IMPLEMENTATIONS.join(', ')}, got ${JSON.stringify(implementation)}`,
      );
    }
    const host = (['q', 'k', 'v', 'm'] as const).map((name) => floatTensor(inputs, name));
    // f16 files run f16 kernels; f32 and bf16 (widened on load) run in f32.
    const dtype = host.every((t) => t.dtype === 'f16') ? 'f16' : 'f32';
    const [tq, tk, tv, tm] = host.map((t) => Tensor.from(gpu, t.data, t.shape, dtype)) as [
      Tensor,
      Tensor,
      Tensor,
      Tensor,
    ];
    const tier = tierConfig(config);
    try {
      const { o, ctx } = await maskedLinearAttention(gpu, tq, tk, tv, tm, {
        ...(typeof config.scale === 'number' && { scale: config.scale }),
        ...(implementation && { implementation }),
        ...(tier && { tier }),
      });
      using _o = o;
      const outputs: OpOutput[] = [{ name: 'o', shape: [...o.shape], data: await o.read() }];
      if (inputs.has('do')) {
        const dOut = floatTensor(inputs, 'do');
        using tdo = Tensor.from(gpu, dOut.data, dOut.shape, dtype);
        const grads = await maskedLinearAttentionBackward(ctx, tdo);
        try {
          for (const [name, t] of Object.entries(grads)) {
            outputs.push({ name, shape: [...t.shape], data: await t.read() });
          }
        } finally {
          for (const t of Object.values(grads)) t.dispose();
        }
      }
      return outputs;
    } finally {
      for (const t of [tq, tk, tv, tm]) t.dispose();
    }
  },
};

/** The forms of `linear-attn`, by selecting tensor. */
export const LINEAR_ATTN_FORMS: LinearAttnForm[] = [maskedForm, slopesForm];

/** `webattn run linear-attn`. */
export const linearAttnOp: RunOp = {
  name: 'linear-attn',
  summary:
    'TransnormerLLM linear attention, q [b, n, hq, dk], k [b, n, hkv, dk], v [b, n, hkv, dv] (token-major), with a mask m [1|b, 1|hq, n, n] (O = ((Q Kᵀ) ⊙ M) V, no softmax) or slopes [hq]',
  inputs: { required: ['q', 'k', 'v'], optional: ['m', 'slopes', 'do'] },
  configKeys: [...new Set(LINEAR_ATTN_FORMS.flatMap((f) => f.configKeys))],
  outputs: 'o (and final_state for the slopes form); with do: dq, dk, dv, and dm for the masked form',
  async run(gpu, inputs, config) {
    const forms = LINEAR_ATTN_FORMS.filter((f) => inputs.has(f.selector));
    const known = ['m', 'slopes'];
    if (forms.length !== 1) {
      const given = known.filter((name) => inputs.has(name));
      throw new Error(
        `linear-attn: expected exactly one of the tensors ${known.join(', ')}${given.length ? `, got ${given.join(' and ')}` : ', got neither'}${LINEAR_ATTN_FORMS.length < known.length ? ` (this build runs: ${LINEAR_ATTN_FORMS.map((f) => f.selector).join(', ')})` : ''}`,
      );
    }
    return forms[0]!.run(gpu, inputs, config);
  },
};

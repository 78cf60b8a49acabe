/**
 * `NsaAttention`, the module form of NSA (spec section 1.1): it holds the gate projection
 * `attn_gate = Linear(headDim, 3)` (shared by every query head, applied to q) and optionally the
 * compressors' parameters, and runs {@link nsaForward} / {@link nsaBackward} with the gate logits
 * it computes, adding the gate's share to dq and returning every parameter's gradient.
 */
import { check, dispatch, type Gpu, memoizeWgsl, Tensor, type Tier } from '@webattn/core';
import type { CompressionGradients, NsaCompressors } from '../compress/compress.js';
import type { NsaConfig } from '../config.js';
import { disposeNsaGradients, nsaBackward } from '../nsa-backward.js';
import { disposeNsaForward, type NsaForwardResult, nsaForward } from '../nsa-forward.js';
import {
  GATE_PARAMS,
  GATE_WORKGROUP,
  gateInputBackwardWgsl,
  gateLogitsWgsl,
  gateParamsBackwardWgsl,
} from './gate.wgsl.js';

// Each kernel's WGSL is written once per configuration (see memoizeWgsl).
const gateInputBackwardCode = memoizeWgsl(gateInputBackwardWgsl);
const gateLogitsCode = memoizeWgsl(gateLogitsWgsl);
const gateParamsBackwardCode = memoizeWgsl(gateParamsBackwardWgsl);

/** The module's parameters, the caller's tensors in q's dtype. */
export interface NsaAttentionParameters {
  /** `attn_gate.weight`, `[3, headDim]`. */
  gateWeight: Tensor;
  /** `attn_gate.bias`, `[3]`. */
  gateBias: Tensor;
  /** The keys' and values' compressors; mean pooling where absent. */
  compressors?: NsaCompressors;
}

/** What {@link NsaAttention.forward} returns: the output and what the backward needs (free with `dispose`). */
export interface NsaAttentionOutput {
  /** `[...tokens, heads, vHeadDim]`. */
  o: Tensor;
  /** The functional forward's result, with the gate logits it was given. */
  forward: NsaForwardResult;
  /** Frees every tensor of the forward (not the caller's inputs or parameters). */
  dispose(): void;
}

/** Gradients of the module's inputs and parameters. */
export interface NsaAttentionGradients {
  dq: Tensor;
  dk: Tensor;
  dv: Tensor;
  dGateWeight: Tensor;
  dGateBias: Tensor;
  kCompressor?: CompressionGradients;
  vCompressor?: CompressionGradients;
}

/** Frees every tensor of a module backward's result. */
export function disposeNsaAttentionGradients(grads: NsaAttentionGradients): void {
  for (const t of [grads.dq, grads.dk, grads.dv, grads.dGateWeight, grads.dGateBias]) t.dispose();
  for (const g of [grads.kCompressor, grads.vCompressor]) {
    g?.weight.dispose();
    g?.pe?.dispose();
  }
}

/** The NSA module: gate projection and compressors around the functional forward and backward. */
export class NsaAttention {
  constructor(
    readonly gpu: Gpu,
    readonly config: NsaConfig,
    readonly parameters: NsaAttentionParameters,
  ) {
    const expected: [string, Tensor, number[]][] = [
      ['parameters.gateWeight', parameters.gateWeight, [3, config.headDim]],
      ['parameters.gateBias', parameters.gateBias, [3]],
    ];
    for (const [name, t, shape] of expected) {
      check(
        t.shape.join() === shape.join(),
        'shape-mismatch',
        () => `${name}: expected shape [${shape.join(', ')}], got [${t.shape.join(', ')}]`,
      );
    }
  }

  private rows(q: Tensor): number {
    return q.size / this.config.headDim;
  }

  /** The output for q, k, v (shapes as {@link nsaForward}); packed batches pass `cuSeqlens`. */
  async forward(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    options: { cuSeqlens?: ArrayLike<number>; tier?: Tier } = {},
  ): Promise<NsaAttentionOutput> {
    const { gateWeight, gateBias, compressors } = this.parameters;
    for (const [name, t] of [
      ['parameters.gateWeight', gateWeight],
      ['parameters.gateBias', gateBias],
    ] as const) {
      check(
        t.dtype === q.dtype,
        'dtype-mismatch',
        () => `${name}: expected dtype ${q.dtype} (q's), got ${t.dtype}`,
      );
    }
    check(
      q.shape[q.shape.length - 1] === this.config.headDim,
      'shape-mismatch',
      () => `q: expected a last dim of ${this.config.headDim} (headDim), got [${q.shape.join(', ')}]`,
    );
    const rows = this.rows(q);
    const gate = Tensor.empty(this.gpu, [...q.shape.slice(0, -1), 3], q.dtype);
    try {
      await dispatch(this.gpu, {
        label: 'nsa gate logits',
        code: gateLogitsCode(q.dtype),
        buffers: [q, gateWeight, gateBias, gate],
        params: { layout: GATE_PARAMS, values: { rows, dim: this.config.headDim } },
        workgroups: Math.ceil((rows * 3) / GATE_WORKGROUP),
      });
      const forward = await nsaForward(this.gpu, this.config, q, k, v, gate, {
        ...(options.cuSeqlens && { cuSeqlens: options.cuSeqlens }),
        ...(options.tier && { tier: options.tier }),
        ...(compressors && { compressors }),
      });
      return {
        o: forward.o,
        forward,
        dispose: () => {
          disposeNsaForward(forward);
          gate.dispose();
        },
      };
    } catch (error) {
      gate.dispose();
      throw error;
    }
  }

  /** Every gradient, given the forward's output and dO (o's shape and dtype). */
  async backward(output: NsaAttentionOutput, dO: Tensor): Promise<NsaAttentionGradients> {
    const { ctx } = output.forward;
    const { gateWeight } = this.parameters;
    const dim = this.config.headDim;
    const rows = this.rows(ctx.q);
    const grads = await nsaBackward(output.forward, dO);
    const dq = Tensor.empty(this.gpu, ctx.q.shape, ctx.q.dtype);
    const dGateWeight = Tensor.empty(this.gpu, [3, dim], gateWeight.dtype);
    const dGateBias = Tensor.empty(this.gpu, [3], gateWeight.dtype);
    try {
      await dispatch(this.gpu, {
        label: 'nsa gate backward q',
        code: gateInputBackwardCode(ctx.q.dtype),
        buffers: [grads.dq, grads.dg, gateWeight, dq],
        params: { layout: GATE_PARAMS, values: { rows, dim } },
        workgroups: Math.ceil((rows * dim) / GATE_WORKGROUP),
      });
      await dispatch(this.gpu, {
        label: 'nsa gate backward parameters',
        code: gateParamsBackwardCode(ctx.q.dtype),
        buffers: [ctx.q, grads.dg, dGateWeight, dGateBias],
        params: { layout: GATE_PARAMS, values: { rows, dim } },
        // One reducing workgroup per weight and per bias.
        workgroups: 3 * dim + 3,
      });
    } catch (error) {
      for (const t of [dq, dGateWeight, dGateBias]) t.dispose();
      disposeNsaGradients(grads);
      throw error;
    }
    grads.dq.dispose();
    grads.dg.dispose();
    return {
      dq,
      dk: grads.dk,
      dv: grads.dv,
      dGateWeight,
      dGateBias,
      ...(grads.kCompressor && { kCompressor: grads.kCompressor }),
      ...(grads.vCompressor && { vCompressor: grads.vCompressor }),
    };
  }
}

/**
 * The NSA backward (spec section 7): the combine's gradients split dO over the branches and give
 * d(gate logits); core's flash backward differentiates the compressed branch (then the
 * compression: a gather, and its parameters' gradients) and the window branch; the selected branch
 * has kernels of its own. No gradient flows through the selection. Deterministic: no float atomics
 * anywhere.
 */
import { check, flashAttentionBackward, Tensor } from '@webattn/core';
import { sumTensors } from './backward/sum.js';
import { combineBackward } from './combine/combine.js';
import { type CompressionGradients, compressionBackward, type NsaCompression } from './compress/compress.js';
import type { NsaForwardResult } from './nsa-forward.js';
import { selectedAttentionBackward } from './selected/selected.js';

/** Gradients of the NSA inputs, each shaped like its input and in its dtype. */
export interface NsaGradients {
  dq: Tensor;
  dk: Tensor;
  dv: Tensor;
  /** Of the gate logits (before the sigmoid). */
  dg: Tensor;
  /** Of the keys' compressor's parameters, when the forward had one. */
  kCompressor?: CompressionGradients;
  /** Of the values' compressor's parameters, when the forward had one. */
  vCompressor?: CompressionGradients;
}

/** Frees every tensor of a backward's result. */
export function disposeNsaGradients(grads: NsaGradients): void {
  for (const t of [grads.dq, grads.dk, grads.dv, grads.dg]) t.dispose();
  for (const g of [grads.kCompressor, grads.vCompressor]) {
    g?.weight.dispose();
    g?.pe?.dispose();
  }
}

/**
 * Gradients of every input of the forward that produced `forward`, given dO (o's shape and dtype).
 * The forward's tensors and the caller's inputs must still be alive.
 */
export async function nsaBackward(forward: NsaForwardResult, dO: Tensor): Promise<NsaGradients> {
  const { ctx } = forward;
  const { gpu, config, layout } = ctx;
  check(
    dO.shape.join() === forward.o.shape.join(),
    'shape-mismatch',
    () => `dO: expected shape [${forward.o.shape.join(', ')}] (o's), got [${dO.shape.join(', ')}]`,
  );
  check(
    dO.dtype === forward.o.dtype,
    'dtype-mismatch',
    () => `dO: expected dtype ${forward.o.dtype} (o's), got ${dO.dtype}`,
  );
  const tables = {
    tensor: ctx.tables,
    tokenTable: ctx.tokenTable,
    blockTable: ctx.blockTable,
    blocks: ctx.blocks,
  };
  const parts: Tensor[] = [];
  const part = (t: Tensor) => {
    parts.push(t);
    return t;
  };
  const outputs: Tensor[] = [];
  try {
    const split = await combineBackward(
      gpu,
      ctx.gate,
      {
        ...(forward.compressed && { compressed: forward.compressed.o }),
        selected: forward.selected.o,
        window: forward.window.o,
      },
      dO,
    );
    outputs.push(split.gate);
    for (const t of [split.selected, split.window, split.compressed]) if (t) part(t);
    const selected = await selectedAttentionBackward(
      gpu,
      {
        q: ctx.q,
        k: ctx.k,
        v: ctx.v,
        selection: forward.selection,
        o: forward.selected.o,
        lse: forward.selected.lse,
        dO: split.selected,
      },
      tables,
      layout,
      config,
      ctx.tier,
    );
    const window = await flashAttentionBackward(ctx.window, split.window);
    const dq = [part(selected.dq), part(window.dq)];
    const dk = [part(selected.dk), part(window.dk)];
    const dv = [part(selected.dv), part(window.dv)];
    const paramGrads: { k?: CompressionGradients; v?: CompressionGradients } = {};
    // Zero gradients for parameters that no compressed block used.
    const zeros = (params: NsaCompression): CompressionGradients => ({
      weight: Tensor.zeros(gpu, params.weight.shape, params.weight.dtype),
      ...('pe' in params && { pe: Tensor.zeros(gpu, params.pe.shape, params.pe.dtype) }),
    });
    const tablesWithStarts = { ...tables, starts: ctx.blockStarts };
    if (ctx.compressed && split.compressed) {
      const cmp = await flashAttentionBackward(ctx.compressed, split.compressed);
      dq.push(part(cmp.dq));
      part(cmp.dk);
      part(cmp.dv);
      const { k: kParams, v: vParams } = ctx.compressors;
      const kGrads = await compressionBackward(gpu, ctx.k, cmp.dk, layout, config, tablesWithStarts, kParams);
      dk.push(part(kGrads.dx));
      if (kGrads.params) paramGrads.k = kGrads.params;
      const vGrads = await compressionBackward(gpu, ctx.v, cmp.dv, layout, config, tablesWithStarts, vParams);
      dv.push(part(vGrads.dx));
      if (vGrads.params) paramGrads.v = vGrads.params;
    } else {
      if (ctx.compressors.k) paramGrads.k = zeros(ctx.compressors.k);
      if (ctx.compressors.v) paramGrads.v = zeros(ctx.compressors.v);
    }
    for (const g of [paramGrads.k, paramGrads.v]) if (g) outputs.push(g.weight, ...(g.pe ? [g.pe] : []));
    const grads: NsaGradients = {
      dq: await sumTensors(gpu, dq),
      dk: await sumTensors(gpu, dk),
      dv: await sumTensors(gpu, dv),
      dg: split.gate,
      ...(paramGrads.k && { kCompressor: paramGrads.k }),
      ...(paramGrads.v && { vCompressor: paramGrads.v }),
    };
    return grads;
  } catch (error) {
    for (const t of outputs) t.dispose();
    throw error;
  } finally {
    for (const t of parts) t.dispose();
  }
}

/**
 * The NSA backward (spec section 7): the combine's gradients split dO over the branches and give
 * d(gate logits); core's flash backward differentiates the compressed branch (then the
 * compression: a gather, and its parameters' gradients) and the window branch; the selected branch
 * has kernels of its own. No gradient flows through the selection. Deterministic: no float atomics
 * anywhere.
 *
 * Memory: a branch's upstream gradient and its dq are each as large as q, so the branches run one
 * after another, each upstream gradient made just before its branch and freed just after it, and
 * each branch's dq added to the running sum at once; the peak holds one sum, one branch's upstream
 * gradient and its backward's own tensors, instead of three of each.
 */
import { check, flashAttentionBackward, Tensor } from '@webattn/core';
import { sumTensors } from './backward/sum.js';
import { combineBranchBackward } from './combine/combine.js';
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
    const dgate = Tensor.empty(gpu, ctx.gate.shape, ctx.gate.dtype);
    outputs.push(dgate);
    // Each branch's upstream gradient, and its delta = <dBranch, branch> per row for the branch's
    // backward, which the combine's backward adds up as it writes the gradient: in the flash lse
    // layout for the compressed and window branches, token-major for the selected one.
    const upstream = async (
      branch: 'compressed' | 'selected' | 'window',
      output: { o: Tensor; lse: Tensor } | undefined,
    ) => {
      if (!output) {
        await combineBranchBackward(gpu, ctx.gate, dO, branch, undefined, dgate);
        return undefined;
      }
      const delta = part(Tensor.empty(gpu, output.lse.shape));
      const stride = branch === 'selected' ? 1 : layout.lseHeadStride;
      const grad = await combineBranchBackward(
        gpu,
        ctx.gate,
        dO,
        branch,
        { o: output.o, delta: { tensor: delta, stride } },
        dgate,
      );
      return { grad: part(grad!), delta };
    };
    const selectedUpstream = (await upstream('selected', forward.selected))!;
    const dSelected = selectedUpstream.grad;
    const selected = await selectedAttentionBackward(
      gpu,
      {
        q: ctx.q,
        k: ctx.k,
        v: ctx.v,
        selection: forward.selection,
        o: forward.selected.o,
        lse: forward.selected.lse,
        dO: dSelected,
        delta: selectedUpstream.delta,
      },
      tables,
      layout,
      config,
      ctx.tier,
    );
    dSelected.dispose();
    selectedUpstream.delta.dispose();
    // Each input's gradient is summed branch by branch, so only one branch's dq waits beside it.
    const sums = {
      dq: part(selected.dq),
      dk: part(selected.dk),
      dv: part(selected.dv),
    };
    const add = async (name: keyof typeof sums, term: Tensor) => {
      const sum = part(await sumTensors(gpu, [sums[name], term]));
      sums[name].dispose();
      term.dispose();
      sums[name] = sum;
    };
    const windowUpstream = (await upstream('window', forward.window))!;
    const window = await flashAttentionBackward(ctx.window, windowUpstream.grad, {
      delta: windowUpstream.delta,
    });
    windowUpstream.grad.dispose();
    windowUpstream.delta.dispose();
    await add('dq', part(window.dq));
    await add('dk', part(window.dk));
    await add('dv', part(window.dv));
    const paramGrads: { k?: CompressionGradients; v?: CompressionGradients } = {};
    // Zero gradients for parameters that no compressed block used.
    const zeros = (params: NsaCompression): CompressionGradients => ({
      weight: Tensor.zeros(gpu, params.weight.shape, params.weight.dtype),
      ...('pe' in params && { pe: Tensor.zeros(gpu, params.pe.shape, params.pe.dtype) }),
    });
    const tablesWithStarts = { ...tables, starts: ctx.blockStarts };
    // Without compressed blocks this only zeroes the branch's gate column.
    const compressedUpstream = await upstream('compressed', forward.compressed);
    if (ctx.compressed && compressedUpstream) {
      const cmp = await flashAttentionBackward(ctx.compressed, compressedUpstream.grad, {
        delta: compressedUpstream.delta,
      });
      compressedUpstream.grad.dispose();
      compressedUpstream.delta.dispose();
      await add('dq', part(cmp.dq));
      part(cmp.dk);
      part(cmp.dv);
      const { k: kParams, v: vParams } = ctx.compressors;
      const kGrads = await compressionBackward(gpu, ctx.k, cmp.dk, layout, config, tablesWithStarts, kParams);
      await add('dk', part(kGrads.dx));
      if (kGrads.params) paramGrads.k = kGrads.params;
      const vGrads = await compressionBackward(gpu, ctx.v, cmp.dv, layout, config, tablesWithStarts, vParams);
      await add('dv', part(vGrads.dx));
      if (vGrads.params) paramGrads.v = vGrads.params;
    } else {
      if (ctx.compressors.k) paramGrads.k = zeros(ctx.compressors.k);
      if (ctx.compressors.v) paramGrads.v = zeros(ctx.compressors.v);
    }
    for (const g of [paramGrads.k, paramGrads.v]) if (g) outputs.push(g.weight, ...(g.pe ? [g.pe] : []));
    // The sums become the caller's: out of the parts freed below, into the outputs.
    for (const t of Object.values(sums)) parts.splice(parts.indexOf(t), 1);
    outputs.push(...Object.values(sums));
    const grads: NsaGradients = {
      ...sums,
      dg: dgate,
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

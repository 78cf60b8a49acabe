/**
 * The NSA forward (spec sections 2-6): mean-compressed keys and values, compressed attention
 * (core's flash kernel with key blocks), block selection from its probabilities, attention over
 * the selected blocks, sliding-window attention (core's flash kernel with a window) and the gated
 * combine.
 */
import {
  check,
  type FlashAttentionContext,
  flashAttention,
  type Gpu,
  pickTier,
  Tensor,
  type Tier,
} from '@webattn/core';
import { combineBranches } from './combine/combine.js';
import { checkCompression, compress, type NsaCompressors } from './compress/compress.js';
import type { NsaConfig } from './config.js';
import { blockStarts, type NsaLayout, nsaLayout, sequenceTable, wordsTensor } from './layout.js';
import { checkSelectionFits, selectBlocks } from './select/select.js';
import { selectedAttention } from './selected/selected.js';

/** Options of {@link nsaForward}. */
export interface NsaForwardOptions {
  /** Sequence boundaries of a packed batch (`[total, heads, dim]` inputs), `[0, ..., total]`. */
  cuSeqlens?: ArrayLike<number>;
  /** Tier of the flash kernels the compressed and window branches run on; the fastest by default. */
  tier?: Tier;
  /** Weighted pooling parameters for the keys and/or values; mean pooling where absent. */
  compressors?: NsaCompressors;
}

/** One branch's output and its natural-log lse. */
export interface NsaBranch {
  /** `[...tokens, heads, dv]`, q's dtype. */
  o: Tensor;
  /** f32; the flash layout (`[b, heads, n]` dense, `[heads, total]` packed) for the compressed and window branches, `[tokens, heads]` for the selected one. */
  lse: Tensor;
}

/**
 * What the backward needs from the forward: the caller's inputs (kept alive by the caller until
 * then), the tables, the compressed keys and values and each branch's saved state.
 */
export interface NsaForwardContext {
  gpu: Gpu;
  config: NsaConfig;
  layout: NsaLayout;
  tier: Tier;
  q: Tensor;
  k: Tensor;
  v: Tensor;
  gate: Tensor;
  /** The sequence table (see the layout's sequenceTable) and where its parts start. */
  tables: Tensor;
  tokenTable: number;
  blockTable: number;
  /** Selection blocks of all sequences. */
  blocks: number;
  /** Each compressed block's first token. */
  blockStarts: Tensor;
  /** The weighted pooling parameters of the forward (the caller's tensors), if any. */
  compressors: NsaCompressors;
  /** Core's flash context of the compressed branch (its k and v are the compressed keys and values). */
  compressed?: FlashAttentionContext;
  window: FlashAttentionContext;
}

/** Everything {@link nsaForward} returns; the caller owns every tensor (see {@link disposeNsaForward}). */
export interface NsaForwardResult {
  /** The gated combination, `[...tokens, heads, dv]`. */
  o: Tensor;
  /**
   * Selected block indices per (token, KV head), `[...tokens, kvHeads, topN]`, as i32 bits (read them
   * with `readSelection`); slots past `min(topN, t / blockSize + 1)` hold -1.
   */
  selection: Tensor;
  /** The compressed branch, absent when no sequence has `kernelSize` tokens; its rows with no block are 0 with lse -inf. */
  compressed?: NsaBranch;
  selected: NsaBranch;
  window: NsaBranch;
  ctx: NsaForwardContext;
}

/**
 * Every tensor a forward result owns (not the caller's inputs): o and what the backward reads
 * (the branches' outputs and lse, the selection, the tables, the compressed keys and values).
 */
export function nsaForwardTensors(result: NsaForwardResult): Tensor[] {
  const { ctx } = result;
  const tensors = [
    result.o,
    result.selection,
    result.compressed?.o,
    result.compressed?.lse,
    result.selected.o,
    result.selected.lse,
    result.window.o,
    result.window.lse,
    ctx.tables,
    ctx.blockStarts,
    ctx.compressed?.k,
    ctx.compressed?.v,
  ];
  return tensors.filter((t): t is Tensor => t !== undefined);
}

/** Frees every tensor a forward result owns (not the caller's inputs). */
export function disposeNsaForward(result: NsaForwardResult): void {
  for (const t of nsaForwardTensors(result)) t.dispose();
}

function checkInputs(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  gate: Tensor,
  config: NsaConfig,
  layout: NsaLayout,
): void {
  const expected: [string, Tensor, number, number][] = [
    ['q', q, config.heads, config.headDim],
    ['k', k, config.kvHeads, config.headDim],
    ['v', v, config.kvHeads, config.vHeadDim],
    ['g', gate, config.heads, 3],
  ];
  for (const [name, t, heads, dim] of expected) {
    const want = [...layout.tokenDims, heads, dim];
    check(
      t.shape.join() === want.join(),
      'shape-mismatch',
      () => `${name}: expected shape [${want.join(', ')}], got [${t.shape.join(', ')}]`,
    );
    check(
      t.dtype === q.dtype,
      'dtype-mismatch',
      () => `${name}: expected dtype ${q.dtype} (q's), got ${t.dtype}`,
    );
  }
}

/**
 * Native Sparse Attention forward. q `[b, n, heads, headDim]`, k `[b, n, kvHeads, headDim]`,
 * v `[b, n, kvHeads, vHeadDim]`, gate logits g `[b, n, heads, 3]` (compressed, selected, window;
 * the sigmoid is applied here), or the same without b and with `cuSeqlens` for packed batches.
 * `config` comes from `resolveNsaConfig`. Validates everything before the first dispatch.
 */
export async function nsaForward(
  gpu: Gpu,
  config: NsaConfig,
  q: Tensor,
  k: Tensor,
  v: Tensor,
  gate: Tensor,
  options: NsaForwardOptions = {},
): Promise<NsaForwardResult> {
  const layout = nsaLayout(q, config, options.cuSeqlens);
  checkInputs(q, k, v, gate, config, layout);
  const compressors = options.compressors ?? {};
  if (compressors.k) checkCompression('k', compressors.k, k, config);
  if (compressors.v) checkCompression('v', compressors.v, v, config);
  const tier = pickTier(gpu.caps, q.dtype, options.tier, 'nsaForward');
  checkSelectionFits(gpu, layout, config, tier);
  const packed = layout.cuSeqlens ? { cuSeqlensQ: layout.cuSeqlens, cuSeqlensK: layout.cuSeqlens } : {};
  const table = sequenceTable(layout, config.blockSize);
  const owned: Tensor[] = [];
  const keep = (t: Tensor) => {
    owned.push(t);
    return t;
  };
  const placeholders: Tensor[] = [];
  try {
    const tables = keep(wordsTensor(gpu, table.words));
    const startWords = blockStarts(layout, config);
    const starts = keep(wordsTensor(gpu, startWords));
    const cmpK = await compress(gpu, k, layout, config, starts, compressors.k);
    const cmpV = await compress(gpu, v, layout, config, starts, compressors.v);
    let compressed: { branch: NsaBranch; ctx: FlashAttentionContext } | undefined;
    if (cmpK && cmpV) {
      keep(cmpK);
      keep(cmpV);
      const result = await flashAttention(gpu, q, cmpK, cmpV, {
        causal: true,
        scale: config.scale,
        keyBlocks: { size: config.kernelSize, stride: config.stride },
        tier,
        ...(layout.cuSeqlens && { cuSeqlensQ: layout.cuSeqlens, cuSeqlensK: layout.cuCmpSeqlens }),
      });
      compressed = { branch: { o: keep(result.o), lse: keep(result.lse) }, ctx: result.ctx };
    }
    // Without compressed blocks every score is 0 and selection keeps the forced and the lowest
    // blocks; the kernel still binds something in their place.
    const placeholder = (dtype: 'f32' | 'f16') => {
      const t = Tensor.zeros(gpu, [4], dtype);
      placeholders.push(t);
      return t;
    };
    const selection = keep(
      await selectBlocks(
        gpu,
        {
          q,
          cmpK: cmpK ?? placeholder(q.dtype),
          cmpLse: compressed?.branch.lse ?? placeholder('f32'),
          meta: tables,
          tokenTable: table.tokenTable,
        },
        layout,
        config,
        tier,
      ),
    );
    const sel = await selectedAttention(
      gpu,
      q,
      k,
      v,
      selection,
      { tensor: tables, tokenTable: table.tokenTable },
      layout,
      config,
      tier,
    );
    const selected = { o: keep(sel.o), lse: keep(sel.lse) };
    const win = await flashAttention(gpu, q, k, v, {
      causal: true,
      window: [config.windowSize, 0],
      scale: config.scale,
      tier,
      ...packed,
    });
    const window = { o: keep(win.o), lse: keep(win.lse) };
    const o = await combineBranches(gpu, gate, {
      ...(compressed && { compressed: compressed.branch.o }),
      selected: selected.o,
      window: window.o,
    });
    const ctx: NsaForwardContext = {
      gpu,
      config,
      layout,
      tier,
      q,
      k,
      v,
      gate,
      tables,
      tokenTable: table.tokenTable,
      blockTable: table.blockTable,
      blocks: table.blocks,
      blockStarts: starts,
      compressors,
      ...(compressed && { compressed: compressed.ctx }),
      window: win.ctx,
    };
    return { o, selection, ...(compressed && { compressed: compressed.branch }), selected, window, ctx };
  } catch (error) {
    for (const t of owned) t.dispose();
    throw error;
  } finally {
    for (const t of placeholders) t.dispose();
  }
}

/** Host side of the inverted selection (see inverse.wgsl.ts). */
import { dispatch, type Gpu, memoizeWgsl, Tensor } from '@webattn/core';
import type { NsaConfig } from '../config.js';
import type { NsaLayout } from '../layout.js';
import {
  INVERSE_PARAMS,
  inverseChunksWgsl,
  inverseCountWgsl,
  inverseFillWgsl,
  inverseOffsetsWgsl,
  inverseWorkgroups,
} from './inverse.wgsl.js';

// Each kernel's WGSL is written once per configuration (see memoizeWgsl).
const inverseChunksCode = memoizeWgsl(inverseChunksWgsl);
const inverseCountCode = memoizeWgsl(inverseCountWgsl);
const inverseFillCode = memoizeWgsl(inverseFillWgsl);
const inverseOffsetsCode = memoizeWgsl(inverseOffsetsWgsl);

/**
 * Tokens per chunk of a block's token list for the tensor-core dK/dV kernels: a block every token
 * selects (the first) splits over many workgroups instead of one walking every token. Mutable so
 * that `webattn verify` can force lists of many chunks at small sizes.
 */
export const SELECTED_KEYS_CHUNK: { tokens: number } = { tokens: 1024 };

/**
 * The inverted selection: `[offsets (blocks · kvHeads + 1) | entries | chunk starts (blocks ·
 * kvHeads + 1)]` as u32 bits, where the entries and the chunk starts begin, and a bound on the
 * chunks (the grid of the chunked kernels).
 */
export interface InverseSelection {
  tensor: Tensor;
  entries: number;
  chunkStart: number;
  /** Tokens per chunk. */
  chunk: number;
  maxChunks: number;
}

/**
 * For every (selection block, KV head), the positions of the tokens whose selection lists it, in
 * token order, and where each list's chunks of `chunk` tokens start. `tables` is the sequence
 * table with its block table (see the layout's sequenceTable).
 */
export async function invertSelection(
  gpu: Gpu,
  selection: Tensor,
  tables: { tensor: Tensor; tokenTable: number; blockTable: number; blocks: number },
  layout: NsaLayout,
  config: NsaConfig,
  chunk = SELECTED_KEYS_CHUNK.tokens,
): Promise<InverseSelection> {
  const slots = tables.blocks * config.kvHeads;
  // Every (token, KV head) lists at most topN blocks.
  const maxEntries = layout.tokens * config.kvHeads * config.topN;
  const chunkStart = slots + 1 + maxEntries;
  const params = {
    layout: INVERSE_PARAMS,
    values: {
      blocks: tables.blocks,
      kvHeads: config.kvHeads,
      blockSize: config.blockSize,
      tokenTable: tables.tokenTable,
      blockTable: tables.blockTable,
      chunkStart,
    },
  };
  using counts = Tensor.empty(gpu, [slots]);
  const inverse = Tensor.empty(gpu, [chunkStart + slots + 1]);
  try {
    await dispatch(gpu, {
      label: 'nsa selection count',
      code: inverseCountCode(config.topN),
      buffers: [selection, tables.tensor, counts],
      params,
      workgroups: inverseWorkgroups(tables.blocks, config.kvHeads),
    });
    await dispatch(gpu, {
      label: 'nsa selection offsets',
      code: inverseOffsetsCode(),
      buffers: [counts, inverse],
      params,
      workgroups: 1,
    });
    await dispatch(gpu, {
      label: 'nsa selection fill',
      code: inverseFillCode(config.topN),
      buffers: [selection, tables.tensor, inverse],
      params,
      workgroups: inverseWorkgroups(tables.blocks, config.kvHeads),
    });
    await dispatch(gpu, {
      label: 'nsa selection chunks',
      code: inverseChunksCode(chunk),
      buffers: [inverse],
      params,
      workgroups: 1,
    });
  } catch (error) {
    inverse.dispose();
    throw error;
  }
  // Each list is max(1, ceil(count / chunk)) chunks: at most one per list plus one per chunk of entries.
  return {
    tensor: inverse,
    entries: slots + 1,
    chunkStart,
    chunk,
    maxChunks: slots + Math.ceil(maxEntries / chunk),
  };
}

/** Host side of the inverted selection (see inverse.wgsl.ts). */
import { dispatch, type Gpu, Tensor } from '@webattn/core';
import type { NsaConfig } from '../config.js';
import type { NsaLayout } from '../layout.js';
import { INVERSE_PARAMS, inverseCountWgsl, inverseFillWgsl, inverseOffsetsWgsl } from './inverse.wgsl.js';

/** The inverted selection: `[offsets (blocks · kvHeads + 1) | entries]` as u32 bits, and where the entries start. */
export interface InverseSelection {
  tensor: Tensor;
  entries: number;
}

/**
 * For every (selection block, KV head), the positions of the tokens whose selection lists it, in
 * token order. `tables` is the sequence table with its block table (see the layout's
 * sequenceTable).
 */
export async function invertSelection(
  gpu: Gpu,
  selection: Tensor,
  tables: { tensor: Tensor; tokenTable: number; blockTable: number; blocks: number },
  layout: NsaLayout,
  config: NsaConfig,
): Promise<InverseSelection> {
  const slots = tables.blocks * config.kvHeads;
  const params = {
    layout: INVERSE_PARAMS,
    values: {
      blocks: tables.blocks,
      kvHeads: config.kvHeads,
      blockSize: config.blockSize,
      tokenTable: tables.tokenTable,
      blockTable: tables.blockTable,
    },
  };
  using counts = Tensor.empty(gpu, [slots]);
  // Every (token, KV head) lists at most topN blocks.
  const inverse = Tensor.empty(gpu, [slots + 1 + layout.tokens * config.kvHeads * config.topN]);
  try {
    await dispatch(gpu, {
      label: 'nsa selection count',
      code: inverseCountWgsl(config.topN),
      buffers: [selection, tables.tensor, counts],
      params,
      workgroups: slots,
    });
    await dispatch(gpu, {
      label: 'nsa selection offsets',
      code: inverseOffsetsWgsl(),
      buffers: [counts, inverse],
      params,
      workgroups: 1,
    });
    await dispatch(gpu, {
      label: 'nsa selection fill',
      code: inverseFillWgsl(config.topN),
      buffers: [selection, tables.tensor, inverse],
      params,
      workgroups: slots,
    });
  } catch (error) {
    inverse.dispose();
    throw error;
  }
  return { tensor: inverse, entries: slots + 1 };
}

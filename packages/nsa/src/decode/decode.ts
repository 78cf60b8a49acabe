/** One NSA decode step over an {@link NsaCache} (see decode.wgsl.ts). */
import { check, dispatch, type Gpu, Tensor } from '@webattn/core';
import { selectionBlockCount } from '../config.js';
import { wordsTensor } from '../layout.js';
import type { NsaCache } from './cache.js';
import {
  DECODE_PARAMS,
  DECODE_THREADS,
  decodeAttendWgsl,
  decodeCompressedWgsl,
  decodeSelectWgsl,
} from './decode.wgsl.js';

/** What {@link nsaDecode} returns; the caller owns both tensors. */
export interface NsaDecodeResult {
  /** `[batch, heads, vHeadDim]`, q's dtype. */
  o: Tensor;
  /** Selected blocks `[batch, kvHeads, topN]` as i32 bits (read with readSelection), -1 in unused slots. */
  selection: Tensor;
}

/**
 * The NSA output of the newest token of every sequence in `cache` (already appended to it): q
 * `[batch, heads, headDim]` and gate logits g `[batch, heads, 3]` of those tokens. Equals the last
 * row of the full forward over each sequence (mean compression, the cache's).
 */
export async function nsaDecode(gpu: Gpu, cache: NsaCache, q: Tensor, g: Tensor): Promise<NsaDecodeResult> {
  const { config } = cache;
  const expected: [string, Tensor, number][] = [
    ['q', q, config.headDim],
    ['g', g, 3],
  ];
  for (const [name, t, dim] of expected) {
    const want = [cache.batch, config.heads, dim];
    check(
      t.shape.join() === want.join(),
      'shape-mismatch',
      () => `${name}: expected shape [${want.join(', ')}], got [${t.shape.join(', ')}]`,
    );
    check(
      t.dtype === cache.k.dtype,
      'dtype-mismatch',
      () => `${name}: expected dtype ${cache.k.dtype} (the cache's), got ${t.dtype}`,
    );
  }
  const lengths = cache.lengths;
  lengths.forEach((n, b) => {
    check(
      n >= 1,
      'invalid-argument',
      () => `cache: sequence ${b} is empty; append its newest token before decoding`,
    );
  });
  const maxBlocks = selectionBlockCount(Math.max(...lengths), config);
  const scratch = (maxBlocks + 3 * DECODE_THREADS + config.topN) * 4;
  check(
    scratch <= gpu.caps.limits.maxComputeWorkgroupStorageSize,
    'limit-exceeded',
    () =>
      `cache: ${maxBlocks} selection blocks need ${scratch} bytes of workgroup storage for selection; this device has ${gpu.caps.limits.maxComputeWorkgroupStorageSize}`,
  );
  const kernel = {
    dtype: q.dtype,
    d: config.headDim,
    dv: config.vHeadDim,
    group: config.heads / config.kvHeads,
    topN: config.topN,
    maxBlocks,
    geometry: config,
  };
  const params = {
    layout: DECODE_PARAMS,
    values: {
      batch: cache.batch,
      heads: config.heads,
      kvHeads: config.kvHeads,
      group: config.heads / config.kvHeads,
      capacity: cache.capacity,
      cmpCapacity: cache.cmpCapacity,
      scale: config.scale,
      kernelSize: config.kernelSize,
      stride: config.stride,
      blockSize: config.blockSize,
      initBlocks: config.numInitBlocks,
      localBlocks: config.numLocalBlocks,
      windowSize: config.windowSize,
    },
  };
  const rows = cache.batch * config.heads;
  using lengthTensor = wordsTensor(gpu, Uint32Array.from(lengths));
  using oCmp = Tensor.empty(gpu, [cache.batch, config.heads, config.vHeadDim], q.dtype);
  using lse = Tensor.empty(gpu, [cache.batch, config.heads]);
  const selection = Tensor.empty(gpu, [cache.batch, config.kvHeads, config.topN]);
  const o = Tensor.empty(gpu, [cache.batch, config.heads, config.vHeadDim], q.dtype);
  try {
    await dispatch(gpu, {
      label: 'nsa decode compressed',
      code: decodeCompressedWgsl(kernel),
      buffers: [q, cache.cmpK, cache.cmpV, lengthTensor, oCmp, lse],
      params,
      workgroups: rows,
    });
    await dispatch(gpu, {
      label: 'nsa decode select',
      code: decodeSelectWgsl(kernel),
      buffers: [q, cache.cmpK, lse, lengthTensor, selection],
      params,
      workgroups: cache.batch * config.kvHeads,
    });
    await dispatch(gpu, {
      label: 'nsa decode selected and window',
      code: decodeAttendWgsl(kernel),
      buffers: [q, cache.k, cache.v, selection, lengthTensor, g, oCmp, o],
      params,
      workgroups: rows,
    });
  } catch (error) {
    selection.dispose();
    o.dispose();
    throw error;
  }
  return { o, selection };
}

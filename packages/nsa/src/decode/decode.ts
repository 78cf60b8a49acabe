/** One NSA decode step over an {@link NsaCache} (see decode.wgsl.ts). */
import { check, dispatch, flashAttention, type Gpu, memoizeWgsl, Tensor, type Tier } from '@webattn/core';
import { compressedBlockCount, selectionBlockCount } from '../config.js';
import { wordsTensor } from '../layout.js';
import type { NsaCache } from './cache.js';
import {
  DECODE_PARAMS,
  decodeCombineWgsl,
  decodeHeadsPerPart,
  decodeKernelConfig,
  decodeProbabilitiesWgsl,
  decodeProbabilitiesWorkgroups,
  decodeSelectedWgsl,
  decodeSelectSharedBytes,
  decodeSelectWgsl,
} from './decode.wgsl.js';

// Each kernel's WGSL is written once per configuration (see memoizeWgsl).
const decodeCombineCode = memoizeWgsl(decodeCombineWgsl);
const decodeProbabilitiesCode = memoizeWgsl(decodeProbabilitiesWgsl);
const decodeSelectCode = memoizeWgsl(decodeSelectWgsl);
const decodeSelectedCode = memoizeWgsl(decodeSelectedWgsl);

/** Options of {@link nsaDecode}. */
export interface NsaDecodeOptions {
  /** Tier of the compressed and window attention (core's flash forward); the fastest by default. */
  tier?: Tier;
}

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
export async function nsaDecode(
  gpu: Gpu,
  cache: NsaCache,
  q: Tensor,
  g: Tensor,
  options: NsaDecodeOptions = {},
): Promise<NsaDecodeResult> {
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
  const kernel = decodeKernelConfig(config, q.dtype, maxBlocks);
  const scratch = decodeSelectSharedBytes(kernel);
  check(
    scratch <= gpu.caps.limits.maxComputeWorkgroupStorageSize,
    'limit-exceeded',
    () =>
      `cache: ${maxBlocks} selection blocks need ${scratch} bytes of workgroup storage for selection; this device has ${gpu.caps.limits.maxComputeWorkgroupStorageSize}`,
  );
  const slots = config.topN + kernel.windowParts;
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
  const { batch } = cache;
  const rows = batch * config.heads;
  const heads = [batch, config.heads];
  // q as one query per sequence, for core's flash forward over the cache's rows.
  const query = Tensor.wrap(gpu, q.buffer, [batch, 1, config.heads, config.headDim], q.dtype);
  const attention = { scale: config.scale, causal: true, ...(options.tier && { tier: options.tier }) };
  using lengthTensor = wordsTensor(gpu, Uint32Array.from(lengths));
  using probabilities = Tensor.empty(gpu, [batch, config.kvHeads, cache.cmpCapacity]);
  using blockO = Tensor.empty(gpu, [rows, slots, config.vHeadDim]);
  using blockLse = Tensor.empty(gpu, [rows, slots]);
  const selection = Tensor.empty(gpu, [batch, config.kvHeads, config.topN]);
  const o = Tensor.empty(gpu, [...heads, config.vHeadDim], q.dtype);
  try {
    // The cached compressed blocks all end at or before the newest token: each sequence sees all
    // of its own. A sequence with none gets o = 0 (and lse -inf, which nothing reads).
    const compressed = await flashAttention(gpu, query, cache.cmpK, cache.cmpV, {
      ...attention,
      cacheSeqlens: lengths.map((n) => compressedBlockCount(n, config)),
    });
    using oCmp = compressed.o;
    using lse = compressed.lse;
    await dispatch(gpu, {
      label: 'nsa decode probabilities',
      code: decodeProbabilitiesCode(kernel),
      buffers: [q, cache.cmpK, lse, lengthTensor, probabilities],
      params,
      workgroups: decodeProbabilitiesWorkgroups(kernel, batch * config.kvHeads, cache.cmpCapacity),
    });
    await dispatch(gpu, {
      label: 'nsa decode select',
      code: decodeSelectCode(kernel),
      buffers: [probabilities, lengthTensor, selection],
      params,
      workgroups: batch * config.kvHeads,
    });
    await dispatch(gpu, {
      label: 'nsa decode selected and window',
      code: decodeSelectedCode(kernel),
      buffers: [q, cache.k, cache.v, selection, lengthTensor, blockO, blockLse],
      params,
      workgroups: (rows * slots) / decodeHeadsPerPart(kernel.group),
    });
    await dispatch(gpu, {
      label: 'nsa decode combine',
      code: decodeCombineCode(kernel),
      buffers: [blockO, blockLse, g, oCmp, o],
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

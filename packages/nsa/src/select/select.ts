/** Host side of block selection. */
import {
  type Capabilities,
  check,
  dispatch,
  type Gpu,
  matrixSubgroupSize,
  memoizeWgsl,
  preferredMatrixConfig,
  type SubgroupMatrixConfig,
  Tensor,
  type Tier,
} from '@webattn/core';
import type { NsaConfig } from '../config.js';
import type { NsaLayout } from '../layout.js';
import { SELECT_CHUNK, SELECT_PARAMS, SELECT_THREADS, selectWgsl } from './select.wgsl.js';
import {
  type SelectMatrixConfig,
  selectMatrixSharedBytes,
  selectMatrixThreads,
  selectMatrixUnsupported,
  selectMatrixWgsl,
} from './select-matrix.wgsl.js';

// Each kernel's WGSL is written once per configuration (see memoizeWgsl).
const selectMatrixCode = memoizeWgsl(selectMatrixWgsl);
const selectCode = memoizeWgsl(selectWgsl);

/**
 * Shapes of the tensor-core selection to try, in order: compressed keys per staged tile (whole
 * 16-key fragments) and consecutive tokens per workgroup; the first whose workgroup memory fits the
 * device wins. Six tokens (46.4 KiB up to 65,536 tokens at the reference config) took the H200's
 * selection from 46.5 to 37.5 ms at 65,536 tokens; five, or 48-key tiles, changed nothing
 * (docs/bench/h200-2026-11-30-third). Mutable for the diagnostic that times them
 * (scripts/diagnostics); not exported from the package.
 */
export const SELECT_MATRIX_SHAPES: { tile: number; tokens: number }[] = [
  { tile: 32, tokens: 6 },
  { tile: 32, tokens: 4 },
  { tile: 32, tokens: 2 },
  { tile: 32, tokens: 1 },
];

/**
 * Whether the tensor-core selection reads the compressed keys 16 bytes per load. Mutable so that a
 * diagnostic can time both; not exported from the package.
 */
export const SELECT_WIDE_LOADS: { enabled: boolean } = { enabled: true };

/**
 * Whether the tensor-core selection stages its compressed keys into an array of `vec4<f16>`
 * (SelectMatrixConfig.vectorStaging). Mutable so that a diagnostic can time both; not exported
 * from the package.
 */
export const SELECT_VECTOR_STAGING: { enabled: boolean } = { enabled: true };

/**
 * Whether the tensor-core selection stores its scores head-major, read four heads at a time
 * (SelectMatrixConfig.headMajorScores), where it gives each token one subgroup. Mutable so that a
 * diagnostic can time both; not exported from the package.
 */
export const SELECT_HEAD_MAJOR: { enabled: boolean } = { enabled: true };

/**
 * Whether the tensor-core selection keeps each token's top-n in registers while walking
 * (SelectMatrixConfig.streamingPicks) where the shape allows it: it drops the score per selection
 * block that each token held in workgroup memory. Mutable so that a diagnostic can time both; not
 * exported from the package.
 */
export const SELECT_STREAMING_PICKS: { enabled: boolean } = { enabled: true };

/**
 * The tensor-core selection's shape for this config, or undefined when the adapter has no matrix
 * shape (`assumeMatrix` stands in for one on the null backend) or the kernel does not fit.
 */
export function selectMatrixConfig(
  caps: Capabilities,
  config: Pick<NsaConfig, 'headDim' | 'topN' | 'heads' | 'kvHeads' | 'kernelSize' | 'stride' | 'blockSize'>,
  maxBlocks: number,
  assumeMatrix?: Pick<SubgroupMatrixConfig, 'M' | 'N' | 'K'>,
): SelectMatrixConfig | undefined {
  const matrix = preferredMatrixConfig(caps) ?? assumeMatrix;
  if (!matrix) return undefined;
  for (const { tile, tokens } of SELECT_MATRIX_SHAPES) {
    const c: SelectMatrixConfig = {
      d: config.headDim,
      topN: config.topN,
      geometry: config,
      group: config.heads / config.kvHeads,
      maxBlocks,
      matrix,
      ...matrixSubgroupSize(caps),
      tile,
      tokens,
      ...(SELECT_WIDE_LOADS.enabled && { wideLoads: true }),
      ...(SELECT_VECTOR_STAGING.enabled && { vectorStaging: true }),
    };
    // Head-major scores where the shape allows them and they fit, else row-major; each with the
    // top-n kept while walking where it can be.
    const headMajor: SelectMatrixConfig = { ...c, headMajorScores: true };
    const fits = (x: SelectMatrixConfig) =>
      selectMatrixSharedBytes(x) <= caps.limits.maxComputeWorkgroupStorageSize &&
      selectMatrixThreads(x) <= caps.limits.maxComputeInvocationsPerWorkgroup &&
      selectMatrixUnsupported(x) === undefined;
    for (const x of SELECT_HEAD_MAJOR.enabled ? [headMajor, c] : [c]) {
      const streaming: SelectMatrixConfig = { ...x, streamingPicks: true };
      if (SELECT_STREAMING_PICKS.enabled && fits(streaming)) return streaming;
      if (fits(x)) return x;
    }
  }
  return undefined;
}

/** The inputs selection reads: q, the compressed keys and the compressed branch's lse (dummies when there is none). */
export interface SelectInputs {
  q: Tensor;
  cmpK: Tensor;
  cmpLse: Tensor;
  meta: Tensor;
  tokenTable: number;
}

/**
 * Checks that the selection kernel `tier` runs fits the device: the tensor-core one, where it
 * applies, keeps each token's top-n in registers and fits by construction (selectMatrixConfig
 * takes only shapes that fit); the scalar one holds a score per selection block of the longest
 * sequence in workgroup memory, which caps the sequence's length.
 */
export function checkSelectionFits(gpu: Gpu, layout: NsaLayout, config: NsaConfig, tier: Tier): void {
  if (tier === 'subgroup-matrix' && selectMatrixConfig(gpu.caps, config, layout.maxSelectionBlocks)) return;
  const scratch = (layout.maxSelectionBlocks + SELECT_CHUNK) * 4 + SELECT_THREADS * 8 + config.topN * 4;
  check(
    scratch <= gpu.caps.limits.maxComputeWorkgroupStorageSize,
    'limit-exceeded',
    () =>
      `q: ${layout.maxSelectionBlocks} selection blocks in the longest sequence need ${scratch} bytes of workgroup storage for block selection on the ${tier} tier; this device has ${gpu.caps.limits.maxComputeWorkgroupStorageSize}`,
  );
}

/**
 * Selected blocks per (token, KV head), `[tokens, kvHeads, topN]` as i32 bits in an f32-typed
 * tensor (read them with {@link readSelection}); -1 marks unused slots.
 */
export async function selectBlocks(
  gpu: Gpu,
  inputs: SelectInputs,
  layout: NsaLayout,
  config: NsaConfig,
  tier: Tier,
): Promise<Tensor> {
  const matrix =
    tier === 'subgroup-matrix' ? selectMatrixConfig(gpu.caps, config, layout.maxSelectionBlocks) : undefined;
  const out = Tensor.empty(gpu, [...layout.tokenDims, config.kvHeads, config.topN]);
  await dispatch(gpu, {
    label: 'nsa select',
    code: matrix
      ? selectMatrixCode(matrix)
      : selectCode({
          dtype: inputs.q.dtype,
          topN: config.topN,
          geometry: config,
          maxBlocks: layout.maxSelectionBlocks,
          group: config.heads / config.kvHeads,
          dim: config.headDim,
          subgroups: tier === 'subgroups',
        }),
    buffers: [inputs.q, inputs.cmpK, inputs.cmpLse, inputs.meta, out],
    params: {
      layout: SELECT_PARAMS,
      values: {
        tokens: layout.tokens,
        heads: config.heads,
        kvHeads: config.kvHeads,
        group: config.heads / config.kvHeads,
        dim: config.headDim,
        scale: config.scale,
        kernelSize: config.kernelSize,
        stride: config.stride,
        blockSize: config.blockSize,
        initBlocks: config.numInitBlocks,
        localBlocks: config.numLocalBlocks,
        lseHeadStride: layout.lseHeadStride,
        tokenTable: inputs.tokenTable,
      },
    },
    workgroups: Math.ceil(layout.tokens / (matrix?.tokens ?? 1)) * config.kvHeads,
  });
  return out;
}

/** The selected block indices of a selection tensor, -1 for unused slots. */
export async function readSelection(selection: Tensor): Promise<Int32Array> {
  const words = await selection.read();
  return new Int32Array(words.buffer, words.byteOffset, words.length);
}

/**
 * @webattn/core: the WebGPU runtime every webattn package builds on: devices and their capabilities,
 * tensors, kernel plumbing, timing, safetensors I/O, and the kernels the families share.
 * @packageDocumentation
 */
export { BindGroupCache, type BufferBinding } from './bind-group-cache.js';
export { type BufferPool, type PoolStats, sizeClass } from './buffer-pool.js';
export {
  type Capabilities,
  type KernelLimits,
  type SubgroupMatrixConfig,
  TIERS,
  type Tier,
} from './capabilities.js';
export {
  type Bindable,
  type DispatchSpec,
  dispatch,
  splitWorkgroups,
  WORKGROUP_INDEX_WGSL,
} from './dispatch.js';
export { assertDtype, bytesPerElement, DTYPES, type Dtype } from './dtype.js';
export { check, WebAttnError, type WebAttnErrorCode } from './errors.js';
export { f16BitsToF32, f32ToF16Bits, fromBf16Bits, fromF16Bits, roundToF16, toF16Bits } from './f16.js';
export {
  flashDeltaWgsl,
  flashDkDvWgsl,
  flashDqWgsl,
  ROW_DOT_THREADS,
  rowDotWgsl,
} from './flash/backward.wgsl.js';
export {
  flashDkDvMatrixWgsl,
  flashDqMatrixWgsl,
  type MatrixBackwardConfig,
} from './flash/backward-matrix.wgsl.js';
export {
  MASKED,
  type StagedRows,
  type StagedRowsVec4,
  stageRowsVec4Prefetched,
  stageRowsVec4Set,
  stageRowsVec4Wgsl,
} from './flash/common.wgsl.js';
export { FLASH_DECODE_GROUPS } from './flash/decode-groups.js';
export {
  FLASH_ROWS,
  type FlashAttentionContext,
  type FlashAttentionGrads,
  type FlashAttentionOptions,
  type FlashAttentionResult,
  type FlashBackwardOptions,
  type FlashForwardVariant,
  flashAttention,
  flashAttentionBackward,
  flashForwardRows,
  flashForwardVariant,
  flashForwardVariantWgsl,
  matrixBackwardConfig,
  matrixForwardConfig,
  rowKernelConfig,
} from './flash/flash.js';
export { flashForwardWgsl, type RowKernelConfig } from './flash/forward.wgsl.js';
export {
  flashForwardMatrixWgsl,
  type MatrixForwardConfig,
  matrixForwardQueryInWorkgroup,
  matrixForwardSharedBytes,
  matrixForwardValueLoads,
} from './flash/forward-matrix.wgsl.js';
export {
  FLASH_LAZY_RESCALE,
  type ForwardTileShape,
  fragmentGridNames,
  lazyRescaleWgsl,
  lazyRowArraysWgsl,
  lazyTileMaxWgsl,
  rowSumWgsl,
  throughScoresWgsl,
  tileScoresWgsl,
  valueProductsWgsl,
  vectorProbabilitiesWgsl,
} from './flash/forward-tile.wgsl.js';
export type { MatrixKernelConfig } from './flash/matrix-kernel.js';
export type { FlashProblem, KeyBlocks, MaskSpec, ProblemOptions, SequenceSpan } from './flash/problem.js';
export {
  FLASH_SPLIT_KV,
  type KeySplits,
  planKeySplits,
  type SplitKvSettings,
} from './flash/split-kv.js';
export {
  type CreateGpuOptions,
  createGpu,
  Gpu,
  requestWebattnDevice,
  type TimestampRecorder,
} from './gpu.js';
export {
  launchMatmul,
  type MatmulOptions,
  type MatmulProblem,
  type MatmulVariant,
  matmul,
  matmulProblem,
  matmulVariantName,
  matmulVariants,
  matmulWgsl,
  matrixSubgroupSize,
  preferredMatrixConfig,
  SPLIT_K_MAX_ROWS,
  selectMatmulVariant,
} from './matmul/matmul.js';
export { memoizeWgsl } from './memoize-wgsl.js';
export type { NodeBackend } from './node-instance.js';
export { type ParamLayout, type ParamType, packParams, paramsStruct } from './params.js';
export type { PipelineCache } from './pipeline-cache.js';
export {
  type RandomBernoulliOptions,
  type RandomNormalOptions,
  randomBernoulli,
  randomNormal,
} from './random/random.js';
export {
  f32ToBf16Bits,
  HOST_DTYPES,
  type HostDtype,
  type HostTensor,
  type HostTensorInput,
  readSafetensors,
  type SafetensorsFile,
  toBf16Bits,
  writeSafetensors,
} from './safetensors/index.js';
export { STAGING_CHUNK_BYTES, type StagingStats } from './staging-belt.js';
export { shapeSize, Tensor, type TensorData } from './tensor.js';
export { pickTier, tierDtype } from './tiers.js';
export {
  type Measurement,
  type MeasureOptions,
  measure,
  medianOfSorted,
  type TimeSource,
  timeOnce,
} from './timing.js';
export {
  COMPONENTS,
  computeAttributesWgsl,
  enables,
  type PrefetchedStaging,
  packVec4uWgsl,
  prefetchedStagingSetsWgsl,
  rowVectorType,
  type StagingSet,
  shuffleFoldWgsl,
  storeVec4Wgsl,
  storeVectorsWgsl,
  storeWideWgsl,
  subgroupMainWgsl,
  subgroupMatrixTypes,
  unpackVec4uWgsl,
  unrolledStagingSetsWgsl,
  unrolledStagingWgsl,
  vec4uElements,
  wgslType,
} from './wgsl.js';
export {
  alignedWorkgroupLength,
  misalignedWorkgroupVariables,
  WORKGROUP_ALIGNMENT_BYTES,
} from './workgroup-alignment.js';
export {
  SM_WORKGROUP_MEMORY,
  WORKGROUP_MEMORY_STEPS,
  withinWorkgroupMemorySteps,
  workgroupsPerSm,
} from './workgroup-memory-steps.js';

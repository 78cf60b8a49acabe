/**
 * @webattn/mla: Multi-head Latent Attention on WebGPU: the absorbed attention over a latent KV cache
 * (dense or paged), decode and prefill, with all heads of a sequence packed into one tile so the
 * cache is read once per sequence.
 * @packageDocumentation
 */
export {
  MLA_FLASH_MIN_QUERIES,
  type MlaAttentionOptions,
  type MlaKernelChoice,
  mlaAttention,
} from './attention/attention.js';
export {
  MLA_ATTENTION_PARAMS,
  MLA_COMBINE_PARAMS,
  MLA_COMBINE_WORKGROUP,
  MLA_WORKGROUP,
  type MlaAttentionKernelConfig,
  type MlaCombineKernelConfig,
  type MlaKeySource,
  mlaAttentionSharedBytes,
  mlaAttentionWgsl,
  mlaCombineWgsl,
} from './attention/attention.wgsl.js';
export {
  MLA_LAZY_RESCALE,
  MLA_PAD_PARAMS,
  type MlaMatrixKernelConfig,
  mlaAttentionMatrixWgsl,
  mlaMatrixHoldsQuery,
  mlaMatrixSharedBytes,
  mlaMatrixUnsupported,
  mlaPadRowsWgsl,
} from './attention/attention-matrix.wgsl.js';
export {
  MLA_MATRIX_SUBGROUPS,
  MLA_MAX_SPLITS,
  MLA_MIN_SPLIT_KEYS,
  MLA_TARGET_WORKGROUPS,
  type MlaLaunchPlan,
  type MlaMatrixPlan,
  type MlaPlan,
  type MlaPlanInput,
  planMlaAttention,
  planMlaLaunch,
  planMlaMatrix,
} from './attention/plan.js';
export {
  MLA_APPEND_PARAMS,
  MLA_APPEND_WORKGROUP,
  type MlaAppendKernelConfig,
  mlaAppendWgsl,
} from './cache/append.wgsl.js';
export { MlaCache, type MlaCacheOptions } from './cache/cache.js';
export { mlaAttentionPaged } from './cache/paged-attention.js';
export { absorbedHeadDims, type MlaConfig, resolveMlaConfig } from './config.js';
export {
  absorbMla,
  type MlaAbsorbedLayerWeights,
  MlaAttention,
  type MlaLayerConfig,
  type MlaLayerDims,
  type MlaLayerRope,
  type MlaLayerWeights,
  mlaRopeTable,
} from './layer/layer.js';
export {
  MLA_LAYER_PARAMS,
  MLA_LAYER_WORKGROUP,
  MLA_NORM_WORKGROUP,
  type MlaColumns,
  mlaQueryLatentWgsl,
  mlaRmsNormWgsl,
  mlaRopeWgsl,
} from './layer/layer.wgsl.js';
export { type MlaProjections, mlaProjections } from './layer/projections.js';
export {
  MLA_CONCAT_Q_PARAMS,
  MLA_EPILOGUE_PARAMS,
  MLA_EPILOGUE_WORKGROUP,
  MLA_GATHER_KEYS_PARAMS,
  MLA_GATHER_WORKGROUP,
  mlaConcatQueryWgsl,
  mlaEpilogueWgsl,
  mlaGatherKeysWgsl,
} from './prefill/prefill.wgsl.js';

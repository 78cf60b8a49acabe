/**
 * @webattn/mla: Multi-head Latent Attention on WebGPU: the absorbed attention over a latent KV cache
 * (dense or paged), decode and prefill, with all heads of a sequence packed into one tile so the
 * cache is read once per sequence.
 * @packageDocumentation
 */
export { type MlaAttentionOptions, mlaAttention } from './attention/attention.js';
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
  MLA_MIN_SPLIT_KEYS,
  MLA_TARGET_WORKGROUPS,
  type MlaPlan,
  type MlaPlanInput,
  planMlaAttention,
} from './attention/plan.js';
export { absorbedHeadDims, type MlaConfig, resolveMlaConfig } from './config.js';

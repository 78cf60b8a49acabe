/**
 * @webattn/nsa: Native Sparse Attention on WebGPU: compressed, selected and sliding-window
 * branches, gated. The forward runs on every tier; the compressed and window branches use core's
 * flash kernels (tensor cores where the device has them).
 * @packageDocumentation
 */
export type {
  CompressionGradients,
  NsaCompression,
  NsaCompressors,
  WeightedCompression,
} from './compress/compress.js';
export type { LearnedCompression } from './compress/learned.js';
export type { LearnedMethod } from './compress/learned.wgsl.js';
export {
  compressedBlockCount,
  type NsaConfig,
  type NsaReferenceSettings,
  resolveNsaConfig,
  resolveNsaConfigFromReference,
  selectionBlockCount,
} from './config.js';
export { NsaCache, type NsaCacheOptions } from './decode/cache.js';
export { type NsaDecodeOptions, type NsaDecodeResult, nsaDecode } from './decode/decode.js';
export { type NsaLayout, type NsaSequence, nsaLayout } from './layout.js';
export {
  disposeNsaAttentionGradients,
  NsaAttention,
  type NsaAttentionGradients,
  type NsaAttentionOutput,
  type NsaAttentionParameters,
} from './module/nsa-attention.js';
export { disposeNsaGradients, type NsaGradients, nsaBackward } from './nsa-backward.js';
export {
  disposeNsaForward,
  type NsaBranch,
  type NsaForwardContext,
  type NsaForwardOptions,
  type NsaForwardResult,
  nsaForward,
  nsaForwardTensors,
} from './nsa-forward.js';
export { SELECTED_KEYS_CHUNK } from './select/inverse.js';
export { readSelection } from './select/select.js';

/**
 * @webattn/nsa: Native Sparse Attention on WebGPU: compressed, selected and sliding-window
 * branches, gated. The forward runs on every tier; the compressed and window branches use core's
 * flash kernels (tensor cores where the device has them).
 * @packageDocumentation
 */
export type {
  NsaCompressors,
  WeightedCompression,
  WeightedCompressionGradients,
} from './compress/compress.js';
export { compressedBlockCount, type NsaConfig, resolveNsaConfig, selectionBlockCount } from './config.js';
export { type NsaLayout, type NsaSequence, nsaLayout } from './layout.js';
export { disposeNsaGradients, type NsaGradients, nsaBackward } from './nsa-backward.js';
export {
  disposeNsaForward,
  type NsaBranch,
  type NsaForwardContext,
  type NsaForwardOptions,
  type NsaForwardResult,
  nsaForward,
} from './nsa-forward.js';
export { readSelection } from './select/select.js';

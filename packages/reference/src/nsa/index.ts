/**
 * Native Sparse Attention (NSA), the plain CPU reference of `@webattn/nsa`: forward, backward,
 * packed variable-length batches and decode, in f64, straight from the NSA spec (`shared/specs/nsa.md`).
 */
export { type NsaGradients, nsaBackward } from './backward.js';
export { compressedBlockCount, overlapWeight, selectionBlockCount } from './blocks.js';
export { type Branches, combineBackward, combineForward } from './combine.js';
export type {
  LearnedCompressor,
  MeanCompressor,
  NsaCompressor,
  NsaCompressorGradients,
  WeightedCompressor,
} from './compress.js';
export { NSA_DEFAULTS, type NsaConfig, type ResolvedNsaConfig, resolveNsaConfig } from './config.js';
export { type NsaDecodeOutput, nsaDecode } from './decode.js';
export { type NsaBranchOutput, type NsaOutput, nsaForward } from './forward.js';
export type { NsaInputs, NsaOptions, NsaShape } from './inputs.js';
export {
  type NsaVarlenOptions,
  type NsaVarlenOutput,
  nsaVarlenBackward,
  nsaVarlenForward,
} from './varlen.js';

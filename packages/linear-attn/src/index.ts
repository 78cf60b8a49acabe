/**
 * @webattn/linear-attn: TransnormerLLM-style linear attention on WebGPU. This version holds the decay
 * schedule; the masked, chunkwise and recurrent kernels build on it.
 * @packageDocumentation
 */

export {
  type LightningDecodeOptions,
  type LightningDecodeResult,
  lightningDecode,
} from './decode/decode.js';
export { type DecodeConfig, lightningDecodeWgsl } from './decode/decode.wgsl.js';
export { type ChunkOutputConfig, chunkOutputWgsl } from './lightning/chunk-output.wgsl.js';
export {
  type ChunkOutputMatrixConfig,
  chunkOutputMatrixWgsl,
} from './lightning/chunk-output-matrix.wgsl.js';
export { type ChunkStateConfig, chunkStateWgsl } from './lightning/chunk-state.wgsl.js';
export {
  type ChunkStateMatrixConfig,
  chunkStateMatrixWgsl,
} from './lightning/chunk-state-matrix.wgsl.js';
export type { PlanTensors } from './lightning/kernels.js';
export { type LightningAttentionGrads, lightningAttentionBackward } from './lightning/lightning-backward.js';
export {
  disposeLightningContext,
  type LightningAttentionContext,
  type LightningAttentionResult,
  lightningAttention,
} from './lightning/lightning-forward.js';
export {
  LIGHTNING_CHUNK_SIZES,
  type LightningAttentionOptions,
  type LightningPlan,
  type LightningSpan,
} from './lightning/options.js';
export { type ScanConfig, scanWgsl } from './lightning/scan.wgsl.js';
export { maskedLinearAttention, maskedLinearAttentionBackward } from './masked/masked-attention.js';
export {
  MASKED_IMPLEMENTATIONS,
  type MaskedImplementation,
  type MaskedLinearAttentionContext,
  type MaskedLinearAttentionGradients,
  type MaskedLinearAttentionOptions,
  type MaskedLinearAttentionResult,
  type MaskedShape,
} from './masked/masked-call.js';
export { alibiSlopes, decayFromSlopes, layerScaledSlopes } from './slopes.js';

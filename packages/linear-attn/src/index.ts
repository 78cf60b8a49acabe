/**
 * @webattn/linear-attn: TransnormerLLM-style linear attention on WebGPU. This version holds the decay
 * schedule; the masked, chunkwise and recurrent kernels build on it.
 * @packageDocumentation
 */
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

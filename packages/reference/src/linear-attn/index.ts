/**
 * TransnormerLLM-style linear attention, the plain CPU reference of `@webattn/linear-attn`
 * (`shared/specs/linear-attn.md`): the seed's masked form with the mask's gradient, the decayed
 * (lightning) form both quadratic and recurrent, decode, and the q/k normalisation, in f64.
 */
export { decayMask } from './decay-mask.js';
export {
  type LightningDecodeInputs,
  type LightningDecodeOptions,
  type LightningDecodeOutput,
  lightningAttentionDecode,
} from './lightning-decode.js';
export type {
  LightningAttentionGradients,
  LightningAttentionInputs,
  LightningAttentionOptions,
  LightningAttentionOutput,
  LightningAttentionOutputGradients,
} from './lightning-options.js';
export { lightningAttention, lightningAttentionBackward } from './lightning-quadratic.js';
export { lightningAttentionRecurrent, lightningAttentionRecurrentBackward } from './lightning-recurrent.js';
export { type MaskedLinearAttentionGradients, maskedLinearAttentionBackward } from './masked-backward.js';
export { maskedLinearAttention } from './masked-forward.js';
export type { MaskedLinearAttentionOptions } from './masked-options.js';
export { l2Normalize, l2NormalizeBackward } from './normalize.js';
export type { LinearAttentionShape } from './shape.js';

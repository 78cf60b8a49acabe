/**
 * TransnormerLLM-style linear attention, the plain CPU reference of `@webattn/linear-attn`
 * (`shared/specs/linear-attn.md`): the seed's masked form with the mask's gradient, in f64.
 */
export { decayMask } from './decay-mask.js';
export { type MaskedLinearAttentionGradients, maskedLinearAttentionBackward } from './masked-backward.js';
export { maskedLinearAttention } from './masked-forward.js';
export type { MaskedLinearAttentionOptions } from './masked-options.js';
export type { LinearAttentionShape } from './shape.js';

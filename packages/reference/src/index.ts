/**
 * @webattn/reference: the plain CPU version of every webattn op (f64 accumulation), with gradients,
 * and the helpers that tests use to compare GPU results with it.
 * @packageDocumentation
 */
export { type AttentionGradients, attentionBackward } from './attention-backward.js';
export { type AttentionOutput, attentionForward } from './attention-forward.js';
export type { AttentionOptions, AttentionShape } from './attention-shape.js';
export { attentionVarlen, attentionVarlenBackward, type VarlenOptions } from './attention-varlen.js';
export { type Comparison, compare, maxAbsError, rmsRelativeError } from './compare.js';
export * from './linear-attn/index.js';
export { type AttentionWindow, isKeyVisible, UNBOUNDED_WINDOW } from './mask.js';
export { type MatmulOptions, matmul } from './matmul.js';
export * from './mla/index.js';
export * from './nsa/index.js';
export { randn, randu, seededUniform } from './random.js';
export { type Dtype, magnitudeOf, TOLERANCES, type Tolerance, toleranceFor } from './tolerance.js';

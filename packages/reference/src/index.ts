/**
 * @webattn/reference: the plain CPU version of every webattn op (f64 accumulation), with gradients,
 * and the helpers tests use to compare GPU results with it.
 * @packageDocumentation
 */
export {
  type AttentionOptions,
  attentionBackward,
  attentionForward,
  attentionVarlen,
  attentionVarlenBackward,
  isKeyVisible,
  type VarlenOptions,
} from './attention.js';
export { type Comparison, compare, maxAbsError, rmsRelativeError } from './compare.js';
export { type MatmulOptions, matmul } from './matmul.js';
export { randn, randu, seededUniform } from './random.js';
export { type Dtype, TOLERANCES, type Tolerance, toleranceFor } from './tolerance.js';

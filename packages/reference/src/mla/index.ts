/**
 * Multi-head Latent Attention (MiniCPM3, DeepSeek-V2/V3), the plain CPU reference of `@webattn/mla`
 * (`shared/specs/mla.md`): RoPE in both layouts with LongRoPE and YaRN, and RMSNorm, in f64.
 */
export { MINICPM3_MLA_DIMS, type MlaDims } from './dims.js';
export { MLA_LATENT_NORM_EPS, rmsNorm } from './rms-norm.js';
export { type ApplyRopeOptions, applyRope } from './rope.js';
export {
  DEEPSEEK_V2_ROPE,
  type LongRopeScaling,
  MINICPM3_ROPE,
  type MlaRope,
  type MlaRopeScaling,
  type MlaRopeStyle,
  mlaSoftmaxScale,
  type RopeFrequencies,
  ropeFrequencies,
  type YarnRopeScaling,
  yarnMscale,
} from './rope-frequencies.js';
export type { MlaSharedWeights, MlaWeights } from './weights.js';

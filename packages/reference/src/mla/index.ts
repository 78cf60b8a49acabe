/**
 * Multi-head Latent Attention (MiniCPM3, DeepSeek-V2/V3), the plain CPU reference of `@webattn/mla`
 * (`shared/specs/mla.md`): RoPE in both layouts with LongRoPE and YaRN, RMSNorm, the layer as trained
 * (per-head K and V from kv_b_proj) and in the absorbed form over the latent cache, the weight
 * absorption, the kernel-level absorbed attention and the cache sizes, in f64.
 */
export { absorbMlaWeights, type MlaAbsorbedWeights, mergedQueryWeight } from './absorb.js';
export { type MlaAbsorbedOptions, mlaAbsorbedAttention } from './absorbed-attention.js';
export { type MlaAbsorbedInputs, mlaAbsorbedInputs, mlaLayerAbsorbed } from './absorbed-layer.js';
export { mlaCacheBytesPerToken, standardKvCacheBytesPerToken } from './cache-bytes.js';
export { MINICPM3_MLA_DIMS, type MlaDims } from './dims.js';
export { type MlaExpandedKv, mlaExpandKv } from './expand-kv.js';
export { mlaLayer } from './layer.js';
export type { MlaLayerOptions, MlaLayerOutput, MlaSequenceCache } from './layer-options.js';
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

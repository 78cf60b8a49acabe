/**
 * RoPE frequency schedules of the MLA models: plain `theta`, MiniCPM3's LongRoPE (spec §1.4) and
 * DeepSeek's YaRN (the HF DeepSeek-V2/V3 code), each giving one angle rate per rotated pair and a
 * magnitude that multiplies cos and sin.
 */
import type { MlaDims } from './dims.js';

/**
 * How the rotated pairs are laid out in a head.
 * - `'rotate-half'`: pair k is (x[k], x[k + dim/2]), as in MiniCPM3 and HF Llama (NeoX layout).
 * - `'interleaved'`: pair k is (x[2k], x[2k + 1]), as in DeepSeek's own code (complex multiplication).
 *   HF's DeepSeek-V2 port de-interleaves first (pair k moves to k and k + dim/2) and then rotates
 *   half, so its output is this style's output in half-split order; q·k is the same either way,
 *   since queries and keys move alike.
 */
export type MlaRopeStyle = 'rotate-half' | 'interleaved';

/**
 * MiniCPM3's LongRoPE (spec §1.4): pair k turns at `1 / (ext_k · theta^(2k/dim))`, with `ext` the
 * short factors while the sequence fits `originalMaxPositionEmbeddings` and the long ones past it;
 * cos and sin are scaled by `sqrt(1 + ln(max / originalMax) / ln(originalMax))`.
 */
export interface LongRopeScaling {
  /** Discriminant. */
  type: 'longrope';
  /** `dim / 2` divisors of the pair rates for sequences up to the original length. */
  shortFactor: readonly number[];
  /** `dim / 2` divisors for longer sequences. */
  longFactor: readonly number[];
  /** The length the model was trained at (`original_max_position_embeddings`). */
  originalMaxPositionEmbeddings: number;
  /** The length it is extended to (`max_position_embeddings`); sets the magnitude. */
  maxPositionEmbeddings: number;
}

/**
 * DeepSeek's YaRN: high-frequency pairs keep `theta`'s rate, low-frequency pairs are slowed by
 * `factor`, with a linear ramp between the pairs that turn `betaFast` and `betaSlow` times over the
 * original length. cos and sin are scaled by `mscale(factor, mscale) / mscale(factor, mscaleAllDim)`
 * and the softmax scale by `mscale(factor, mscaleAllDim)²` (see {@link yarnMscale}).
 */
export interface YarnRopeScaling {
  /** Discriminant. */
  type: 'yarn';
  /** Context extension factor (`factor`, 40 in DeepSeek-V2/V3). */
  factor: number;
  /** The length the model was trained at (`original_max_position_embeddings`, 4096 in DeepSeek-V2/V3). */
  originalMaxPositionEmbeddings: number;
  /** Rotations over the original length above which a pair keeps its rate. @defaultValue 32 */
  betaFast?: number;
  /** Rotations below which a pair is fully slowed by `factor`. @defaultValue 1 */
  betaSlow?: number;
  /** Coefficient of the cos/sin magnitude. @defaultValue 1 */
  mscale?: number;
  /** Coefficient divided out of the cos/sin magnitude and squared into the softmax scale. @defaultValue 0 */
  mscaleAllDim?: number;
}

/** The frequency schedules beyond plain `theta`. */
export type MlaRopeScaling = LongRopeScaling | YarnRopeScaling;

/** Everything that defines a model's rotary embedding. */
export interface MlaRope {
  /** Pair layout. */
  style: MlaRopeStyle;
  /** Base of the rates, `rope_theta` (10000 in MiniCPM3 and DeepSeek-V2). */
  theta: number;
  /** Frequency schedule; plain `theta^(-2k/dim)` when absent. */
  scaling?: MlaRopeScaling;
}

/** Per-pair angle rates and the magnitude of cos and sin, for one sequence. */
export interface RopeFrequencies {
  /** `dim / 2` rates: pair k of the token at position p turns by `p · invFreq[k]` radians. */
  invFreq: Float64Array;
  /** Multiplies cos and sin (1 for plain rope). */
  magnitude: number;
}

/** MiniCPM3's LongRoPE factors (spec §1.1), one per rotated pair; the short and long lists are equal. */
const MINICPM3_LONGROPE_FACTORS: readonly number[] = Object.freeze([
  1.0591234137867171, 1.1241891283591912, 1.2596935748670968, 1.5380380402321725, 2.093982484148734,
  3.1446935121267696, 4.937952647693647, 7.524541999994549, 10.475458000005451, 13.062047352306353,
  14.85530648787323, 15.906017515851266, 16.461961959767827, 16.740306425132907, 16.87581087164081,
  16.940876586213285,
]);

/** MiniCPM3-4B's rope (spec §1.1, §1.4): rotate-half, theta 10000, LongRoPE at 32768 positions. */
export const MINICPM3_ROPE: Readonly<MlaRope> = Object.freeze({
  style: 'rotate-half',
  theta: 10000,
  scaling: Object.freeze({
    type: 'longrope',
    shortFactor: MINICPM3_LONGROPE_FACTORS,
    longFactor: MINICPM3_LONGROPE_FACTORS,
    originalMaxPositionEmbeddings: 32768,
    maxPositionEmbeddings: 32768,
  }),
});

/**
 * DeepSeek-V2's rope (its `config.json`): interleaved pairs, theta 10000, YaRN with factor 40 over
 * 4096 original positions, betas 32 and 1, mscale = mscaleAllDim = 0.707 (so cos and sin keep
 * magnitude 1 and the softmax scale grows by `yarnMscale(40, 0.707)²`).
 */
export const DEEPSEEK_V2_ROPE: Readonly<MlaRope> = Object.freeze({
  style: 'interleaved',
  theta: 10000,
  scaling: Object.freeze({
    type: 'yarn',
    factor: 40,
    originalMaxPositionEmbeddings: 4096,
    betaFast: 32,
    betaSlow: 1,
    // biome-ignore lint/suspicious/noApproximativeNumericConstant: the config's value, not 1/√2.
    mscale: 0.707,
    // biome-ignore lint/suspicious/noApproximativeNumericConstant: the config's value, not 1/√2.
    mscaleAllDim: 0.707,
  }),
});

/**
 * YaRN's attention magnitude, `0.1 · mscale · ln(scale) + 1`, or 1 when `scale <= 1`.
 *
 * @param scale - The context extension factor.
 * @param mscale - The coefficient (`mscale` or `mscale_all_dim`).
 */
export function yarnMscale(scale: number, mscale = 1): number {
  return scale <= 1 ? 1 : 0.1 * mscale * Math.log(scale) + 1;
}

/**
 * The softmax scale of an MLA layer: `(qkNopeHeadDim + qkRopeHeadDim)^-0.5` (96^-0.5 for MiniCPM3),
 * times `yarnMscale(factor, mscaleAllDim)²` under YaRN, as DeepSeek's attention sets it.
 *
 * @param dims - The head dims.
 * @param rope - The rope, for the YaRN correction.
 */
export function mlaSoftmaxScale(
  dims: Pick<MlaDims, 'qkNopeHeadDim' | 'qkRopeHeadDim'>,
  rope: MlaRope,
): number {
  const base = (dims.qkNopeHeadDim + dims.qkRopeHeadDim) ** -0.5;
  const scaling = rope.scaling;
  if (scaling?.type !== 'yarn') return base;
  return base * yarnMscale(scaling.factor, scaling.mscaleAllDim ?? 0) ** 2;
}

/** `theta^(-2k/dim)` for every pair k: plain rope's rates. */
function plainInvFreq(dim: number, theta: number): Float64Array {
  return Float64Array.from({ length: dim / 2 }, (_, k) => theta ** (-(2 * k) / dim));
}

function longRope(dim: number, theta: number, s: LongRopeScaling, sequenceLength: number): RopeFrequencies {
  const factors = sequenceLength > s.originalMaxPositionEmbeddings ? s.longFactor : s.shortFactor;
  if (factors.length !== dim / 2 || !factors.every((f) => Number.isFinite(f) && f > 0)) {
    throw new Error(`mla: LongRoPE needs ${dim / 2} positive factors per list, got [${factors.join(', ')}]`);
  }
  const plain = plainInvFreq(dim, theta);
  const ratio = s.maxPositionEmbeddings / s.originalMaxPositionEmbeddings;
  // MiniCPM3 applies the formula as is; at ratio <= 1 it would shrink the embedding, which the HF
  // LongRoPE code guards against by keeping 1, and so does the reference.
  const magnitude =
    ratio <= 1 ? 1 : Math.sqrt(1 + Math.log(ratio) / Math.log(s.originalMaxPositionEmbeddings));
  return { invFreq: plain.map((f, k) => f / factors[k]!), magnitude };
}

/** The pair index (fractional) that turns `rotations` times over `length` positions. */
function yarnCorrectionDim(rotations: number, dim: number, theta: number, length: number): number {
  return (dim * Math.log(length / (rotations * 2 * Math.PI))) / (2 * Math.log(theta));
}

function yarn(dim: number, theta: number, s: YarnRopeScaling): RopeFrequencies {
  if (!(Number.isFinite(s.factor) && s.factor > 0)) {
    throw new Error(`mla: YaRN factor must be a positive number, got ${s.factor}`);
  }
  const original = s.originalMaxPositionEmbeddings;
  const low = Math.max(Math.floor(yarnCorrectionDim(s.betaFast ?? 32, dim, theta, original)), 0);
  let high = Math.min(Math.ceil(yarnCorrectionDim(s.betaSlow ?? 1, dim, theta, original)), dim - 1);
  // As in the DeepSeek code: a zero-width ramp would divide by zero.
  if (high === low) high += 0.001;
  const invFreq = plainInvFreq(dim, theta).map((extrapolated, k) => {
    // 0 up to `low` (fast pairs keep their rate), 1 from `high` on (slow pairs are interpolated).
    const ramp = Math.min(Math.max((k - low) / (high - low), 0), 1);
    return (extrapolated / s.factor) * ramp + extrapolated * (1 - ramp);
  });
  const magnitude = yarnMscale(s.factor, s.mscale ?? 1) / yarnMscale(s.factor, s.mscaleAllDim ?? 0);
  return { invFreq, magnitude };
}

/**
 * The rates and magnitude of `rope` for heads of `dim` rotated values.
 *
 * @param dim - Rotated values per head (`qkRopeHeadDim`); even.
 * @param rope - The rope definition.
 * @param sequenceLength - Tokens of the sequence, cached and new; only LongRoPE reads it, to pick the
 *   long factors when it exceeds `originalMaxPositionEmbeddings` (for MiniCPM3 both lists are equal).
 * @throws Error if `dim` is odd, `theta` is not above 1, or the scaling's parameters do not fit `dim`.
 */
export function ropeFrequencies(dim: number, rope: MlaRope, sequenceLength = 0): RopeFrequencies {
  if (!Number.isSafeInteger(dim) || dim < 0 || dim % 2 !== 0) {
    throw new Error(`mla: rope dim must be an even non-negative integer, got ${dim}`);
  }
  if (!(Number.isFinite(rope.theta) && rope.theta > 1)) {
    throw new Error(`mla: rope theta must be a finite number above 1, got ${rope.theta}`);
  }
  const scaling = rope.scaling;
  if (scaling === undefined) return { invFreq: plainInvFreq(dim, rope.theta), magnitude: 1 };
  if (scaling.type === 'longrope') return longRope(dim, rope.theta, scaling, sequenceLength);
  return yarn(dim, rope.theta, scaling);
}

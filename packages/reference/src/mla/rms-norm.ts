/** RMSNorm as MiniCPM3 and DeepSeek apply it to the query and KV latents (q_a_layernorm, kv_a_layernorm). */
import { checkLength } from '../attention-shape.js';

/**
 * The epsilon of q_a_layernorm and kv_a_layernorm: they are built without an eps argument and so take
 * the class default 1e-6, not the config's `rms_norm_eps` (1e-5), which only the decoder norms use (spec §1.1).
 */
export const MLA_LATENT_NORM_EPS = 1e-6;

/** {@link rmsNorm} in f64, for the layer's intermediate values. */
export function rmsNormF64(
  x: ArrayLike<number>,
  weight: ArrayLike<number>,
  rows: number,
  eps = MLA_LATENT_NORM_EPS,
): Float64Array {
  const dim = weight.length;
  checkLength('rmsNorm input', x, [rows, dim]);
  const y = new Float64Array(rows * dim);
  for (let t = 0; t < rows; t++) {
    let squares = 0;
    for (let c = 0; c < dim; c++) squares += x[t * dim + c]! ** 2;
    const inverseRms = 1 / Math.sqrt(squares / dim + eps);
    for (let c = 0; c < dim; c++) y[t * dim + c] = x[t * dim + c]! * inverseRms * weight[c]!;
  }
  return y;
}

/**
 * `y = x / sqrt(mean(x²) + eps) · weight` for each row, in f64 and rounded once to f32. The model
 * rounds to its dtype between the normalisation and the weight (spec §1.3); the reference does not.
 *
 * @param x - `[rows, dim]`, with `dim = weight.length`.
 * @param weight - `[dim]`, the norm's learned scale.
 * @param rows - Number of rows of `x`.
 * @param eps - Added to the mean square; {@link MLA_LATENT_NORM_EPS} by default.
 * @throws Error if `x` is not `[rows, dim]`.
 */
export function rmsNorm(
  x: ArrayLike<number>,
  weight: ArrayLike<number>,
  rows: number,
  eps = MLA_LATENT_NORM_EPS,
): Float32Array {
  return Float32Array.from(rmsNormF64(x, weight, rows, eps));
}

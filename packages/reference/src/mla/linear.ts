/**
 * `nn.Linear` without bias, in f64 from end to end. The layer chains up to four products; the
 * package's `matmul` rounds each result to f32, which would bury the f64-level agreement of the
 * absorbed and unabsorbed forms (spec §2: about 1e-15) under f32 noise, so intermediates stay f64.
 */

/**
 * `y = x Wᵀ` for every row of `x`, with `weight` in PyTorch's `[out, in]` layout (spec §1.2).
 *
 * @param x - `[rows, inFeatures]`.
 * @param weight - `[outFeatures, inFeatures]`.
 * @returns `[rows, outFeatures]`.
 */
export function linearF64(
  x: ArrayLike<number>,
  weight: ArrayLike<number>,
  rows: number,
  inFeatures: number,
  outFeatures: number,
): Float64Array {
  const y = new Float64Array(rows * outFeatures);
  for (let t = 0; t < rows; t++) {
    for (let o = 0; o < outFeatures; o++) {
      let sum = 0;
      for (let i = 0; i < inFeatures; i++) sum += x[t * inFeatures + i]! * weight[o * inFeatures + i]!;
      y[t * outFeatures + o] = sum;
    }
  }
  return y;
}

/** The logistic function, used by the gates and by the gated compressors. */

/** `1 / (1 + e^-x)`, in f64. */
export function sigmoid(x: number): number {
  return 1 / (1 + Math.exp(-x));
}

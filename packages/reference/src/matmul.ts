/** Matrix multiply in f64. */

/** Options of {@link matmul}. */
export interface MatmulOptions {
  /** Read `b` as `[n, k]` instead of `[k, n]`. */
  transposeB?: boolean;
}

/** Row-major `a [m, k] · b [k, n]` (or `a · bᵀ` for b `[n, k]`), accumulated in f64. */
export function matmul(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  m: number,
  k: number,
  n: number,
  options: MatmulOptions = {},
): Float32Array {
  if (a.length !== m * k) throw new Error(`matmul: a has ${a.length} elements, expected m·k = ${m * k}`);
  if (b.length !== k * n) throw new Error(`matmul: b has ${b.length} elements, expected k·n = ${k * n}`);
  const out = new Float32Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let sum = 0;
      for (let p = 0; p < k; p++) sum += a[i * k + p]! * (options.transposeB ? b[j * k + p]! : b[p * n + j]!);
      out[i * n + j] = sum;
    }
  }
  return out;
}

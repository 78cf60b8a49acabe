/** Matrix products in f64: the reference for the core's tiled matmul kernels. */

/** Options of {@link matmul}. */
export interface MatmulOptions {
  /** Read `b` as `[n, k]` (or `[batch, n, k]`) and multiply by its transpose. */
  transposeB?: boolean;
  /** Number of independent products: `a` is `[batch, m, k]` and the result `[batch, m, n]`. Default 1. */
  batch?: number;
  /** With `batch` > 1: `b` is a single matrix shared by every product instead of one per product. */
  broadcastB?: boolean;
}

function checkLength(name: string, array: ArrayLike<number>, shape: readonly number[]): void {
  const expected = shape.reduce((size, dim) => size * dim, 1);
  if (array.length !== expected) {
    throw new Error(
      `matmul: ${name} has ${array.length} elements, expected [${shape.join(', ')}] = ${expected}`,
    );
  }
}

/**
 * Row-major `a · b` (or `a · bᵀ`), every dot product summed in f64 and rounded once to f32.
 *
 * - `a`: `[batch, m, k]` (`[m, k]` when batch is 1)
 * - `b`: `[batch, k, n]`, or `[k, n]` with `broadcastB`; `[.., n, k]` with `transposeB`
 * - result: `[batch, m, n]`
 *
 * @throws Error if a size is not a non-negative integer or an input's length does not match.
 */
export function matmul(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  m: number,
  k: number,
  n: number,
  options: MatmulOptions = {},
): Float32Array {
  const { transposeB = false, batch = 1, broadcastB = false } = options;
  for (const [name, size] of Object.entries({ m, k, n, batch })) {
    if (!Number.isInteger(size) || size < 0) {
      throw new Error(`matmul: ${name} must be a non-negative integer, got ${size}`);
    }
  }
  const bMatrix = transposeB ? [n, k] : [k, n];
  checkLength('a', a, [batch, m, k]);
  checkLength('b', b, broadcastB ? bMatrix : [batch, ...bMatrix]);
  // Strides of b's matrix along k and n: the transpose is only a different walk through memory.
  const [strideK, strideN] = transposeB ? [1, k] : [n, 1];
  const out = new Float32Array(batch * m * n);
  for (let p = 0; p < batch; p++) {
    const aBase = p * m * k;
    const bBase = broadcastB ? 0 : p * k * n;
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let sum = 0;
        for (let t = 0; t < k; t++) sum += a[aBase + i * k + t]! * b[bBase + t * strideK + j * strideN]!;
        out[(p * m + i) * n + j] = sum;
      }
    }
  }
  return out;
}

/**
 * The seed's f16 overflow mitigation (spec §1, "Precision"): without a softmax the scores q·k grow
 * with |q|·|k|, so q and k are scaled to unit length per token and head before the op, which bounds
 * every score by 1 in magnitude. It changes the result, so a kernel that offers it as an option is
 * checked against the op applied to these normalised inputs, and its gradients through this backward.
 */

function checkRows(caller: string, x: ArrayLike<number>, dim: number, eps: number): void {
  if (!Number.isInteger(dim) || dim < 1)
    throw new Error(`${caller}: dim must be an integer >= 1, got ${dim}`);
  if (x.length % dim !== 0) {
    throw new Error(`${caller}: ${x.length} elements are not whole rows of ${dim}`);
  }
  if (!(eps > 0 && Number.isFinite(eps))) {
    throw new Error(`${caller}: eps must be a positive finite number, got ${eps}`);
  }
}

/** Euclidean norm of row `r` in f64. */
function rowNorm(x: ArrayLike<number>, r: number, dim: number): number {
  let sum = 0;
  for (let c = 0; c < dim; c++) sum += x[r * dim + c]! ** 2;
  return Math.sqrt(sum);
}

/** {@link l2Normalize} in f64, for finite differences. */
export function l2NormalizeF64(x: ArrayLike<number>, dim: number, eps = 1e-12): Float64Array {
  checkRows('l2Normalize', x, dim, eps);
  const out = new Float64Array(x.length);
  for (let r = 0; r < x.length / dim; r++) {
    const norm = Math.max(rowNorm(x, r, dim), eps);
    for (let c = 0; c < dim; c++) out[r * dim + c] = x[r * dim + c]! / norm;
  }
  return out;
}

/**
 * `x / max(‖x‖, eps)` for every row of `dim` values: with `dim` the head dim of a `[batch, n, heads, dim]`
 * tensor, q or k normalised per token and head, the seed's `q / q.norm(-1, keepdim=True)`. The eps
 * (PyTorch's `F.normalize` default) keeps an all-zero row at zero instead of 0/0.
 *
 * @param x - Rows of `dim` values, such as q `[batch, n, hq, dk]`.
 * @param dim - Values per row.
 * @param eps - Smallest norm divided by; positive.
 * @returns The normalised rows, computed in f64 and rounded once to f32.
 * @throws Error if dim or eps is invalid or x is not whole rows.
 */
export function l2Normalize(x: ArrayLike<number>, dim: number, eps = 1e-12): Float32Array {
  return Float32Array.from(l2NormalizeF64(x, dim, eps));
}

/**
 * Gradient of {@link l2Normalize} with respect to x given `dy`: `(dy - y (y · dy)) / ‖x‖` for a row
 * with `‖x‖ > eps` (the component of dy along y does not change the output), `dy / eps` for a row
 * whose norm was clamped.
 *
 * @param x - The forward's input.
 * @param dy - Gradient of the loss with respect to the forward's output, the shape of x.
 * @param dim - Values per row.
 * @param eps - The forward's eps.
 * @throws Error if dim or eps is invalid, x is not whole rows or dy's length differs from x's.
 */
export function l2NormalizeBackward(
  x: ArrayLike<number>,
  dy: ArrayLike<number>,
  dim: number,
  eps = 1e-12,
): Float32Array {
  checkRows('l2NormalizeBackward', x, dim, eps);
  if (dy.length !== x.length) {
    throw new Error(`l2NormalizeBackward: dy has ${dy.length} elements, x ${x.length}`);
  }
  const dx = new Float32Array(x.length);
  for (let r = 0; r < x.length / dim; r++) {
    const norm = rowNorm(x, r, dim);
    const base = r * dim;
    if (!(norm > eps)) {
      for (let c = 0; c < dim; c++) dx[base + c] = dy[base + c]! / eps;
      continue;
    }
    let along = 0;
    for (let c = 0; c < dim; c++) along += (x[base + c]! / norm) * dy[base + c]!;
    for (let c = 0; c < dim; c++) dx[base + c] = (dy[base + c]! - (x[base + c]! / norm) * along) / norm;
  }
  return dx;
}

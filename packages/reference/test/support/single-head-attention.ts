/**
 * A second, deliberately different attention for the tests to check the reference against: one
 * (sequence, head) at a time, on nested arrays, with the mask given as an explicit boolean matrix and
 * the log-sum-exp taken without the max shift (the test inputs are small enough not to overflow).
 */

/** Rows of `dim` values of one (sequence, head) cut out of a token-major `[batch, tokens, heads, dim]`. */
export function headRows(
  x: ArrayLike<number>,
  b: number,
  h: number,
  tokens: number,
  heads: number,
  dim: number,
): number[][] {
  return Array.from({ length: tokens }, (_, t) =>
    Array.from({ length: dim }, (_, c) => x[((b * tokens + t) * heads + h) * dim + c]!),
  );
}

/** o and lse of one head, where `mask[i][j]` says whether query i sees key j. */
export function singleHeadAttention(
  q: number[][],
  k: number[][],
  v: number[][],
  mask: boolean[][],
  scale: number,
): { o: number[][]; lse: number[] } {
  const dv = v[0]?.length ?? 0;
  const o: number[][] = [];
  const lse: number[] = [];
  q.forEach((qi, i) => {
    const weights = k.map((kj, j) =>
      mask[i]![j] ? Math.exp(scale * qi.reduce((sum, x, c) => sum + x * kj[c]!, 0)) : 0,
    );
    const total = weights.reduce((a, b) => a + b, 0);
    lse.push(Math.log(total));
    o.push(
      Array.from({ length: dv }, (_, c) =>
        total === 0 ? 0 : weights.reduce((sum, w, j) => sum + w * v[j]![c]!, 0) / total,
      ),
    );
  });
  return { o, lse };
}

/** An n × nk matrix with `true` exactly at keys `from(i) ..= to(i)` of each row i. */
export function bandMask(n: number, nk: number, from: (i: number) => number, to: (i: number) => number) {
  return Array.from({ length: n }, (_, i) =>
    Array.from({ length: nk }, (_, j) => j >= from(i) && j <= to(i)),
  );
}

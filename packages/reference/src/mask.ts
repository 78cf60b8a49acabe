/**
 * The attention mask, defined once: the reference uses it, and GPU tests and kernel docs point to it,
 * so that "causal" and "window" mean the same thing everywhere.
 */

/**
 * Keys a query may see around its aligned position: `[left, right]` keys before and after it, where
 * -1 leaves that side unbounded. FlashAttention's `window_size`.
 */
export type AttentionWindow = readonly [left: number, right: number];

/** No window: every key on both sides. */
export const UNBOUNDED_WINDOW: AttentionWindow = [-1, -1];

/**
 * Whether query row `i` (of `n`) sees key `j` (of `nk`), with FlashAttention's semantics.
 *
 * Rows are aligned bottom-right: row `i` sits at key position `p = i + nk - n`, so the last query
 * meets the last key, as in chunked prefill and decode where the queries are the newest tokens.
 * Then key `j` is visible iff
 * - `causal`: `j <= p` (causal forces the window's right side to 0);
 * - `window[0] >= 0`: `j >= p - window[0]`;
 * - `window[1] >= 0`: `j <= p + window[1]`.
 *
 * A row can see no key at all (with causal and `nk < n`, the first `n - nk` rows); such a row has
 * output 0 and lse -Infinity.
 *
 * @param i - Query row, in [0, n).
 * @param j - Key column, in [0, nk).
 * @param n - Number of queries.
 * @param nk - Number of keys.
 * @param causal - Whether keys after the row's position are hidden.
 * @param window - `[left, right]`, -1 for an unbounded side.
 */
export function isKeyVisible(
  i: number,
  j: number,
  n: number,
  nk: number,
  causal = false,
  window: AttentionWindow = UNBOUNDED_WINDOW,
): boolean {
  const position = i + nk - n;
  const [left, right] = window;
  if (causal && j > position) return false;
  if (left >= 0 && j < position - left) return false;
  if (right >= 0 && j > position + right) return false;
  return true;
}

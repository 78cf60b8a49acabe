/**
 * Softmax attention in which every query row attends an explicit list of keys: the one computation
 * behind NSA's three branches, which differ only in their keys (compressed blocks, selected tokens,
 * the window). Forward and backward in f64, by the same formulas as the dense reference.
 */

import { addRowGradients } from '../attention-row-gradients.js';
import { logSumExp } from '../attention-scores.js';
import { tokenOffset } from '../attention-shape.js';
import type { KeySet } from './blocks.js';

/**
 * Sizes of one branch: q `[batch, nq, hq, dqk]`, k `[batch, nk, hkv, dqk]`, v `[batch, nk, hkv, dv]`,
 * o `[batch, nq, hq, dv]`, lse `[batch, hq, nq]`.
 */
export interface BranchSizes {
  /** Independent sequences. */
  batch: number;
  /** Query rows per sequence. */
  nq: number;
  /** Key rows per sequence: tokens, or compressed blocks. */
  nk: number;
  /** Query heads. */
  hq: number;
  /** Key and value heads; query head h reads kv head `floor(h / (hq / hkv))`. */
  hkv: number;
  /** Head dimension of q and k. */
  dqk: number;
  /** Head dimension of v and o. */
  dv: number;
  /** Softmax scale applied to q·k. */
  scale: number;
  /** Position in the sequence of query row 0: the rows are the sequence's last `nq` tokens. */
  firstQuery: number;
}

/** `scale · q[b, i, h] · k[b, key, h / G]` in f64. */
export function keyScore(
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  sizes: BranchSizes,
  b: number,
  h: number,
  i: number,
  key: number,
): number {
  const { nq, nk, hq, hkv, dqk } = sizes;
  const qBase = tokenOffset(b, i, h, nq, hq, dqk);
  const kBase = tokenOffset(b, key, Math.floor(h / (hq / hkv)), nk, hkv, dqk);
  let dot = 0;
  for (let c = 0; c < dqk; c++) dot += q[qBase + c]! * k[kBase + c]!;
  return dot * sizes.scale;
}

function scoreRow(
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  sizes: BranchSizes,
  b: number,
  h: number,
  i: number,
  keys: readonly number[],
): Float64Array {
  return Float64Array.from(keys, (key) => keyScore(q, k, sizes, b, h, i, key));
}

/**
 * `o = softmax(scores over keys(t)) · v` and each row's natural-log lse. A row with no key gets o = 0
 * and lse = 0, NSA's convention for queries that see no compressed block (spec §3); the other two
 * branches always have a key.
 */
export function keySetAttentionForward(
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
  sizes: BranchSizes,
  keySet: KeySet,
): { o: Float64Array; lse: Float64Array } {
  const { batch, nq, nk, hq, hkv, dv, firstQuery } = sizes;
  const group = hq / hkv;
  const o = new Float64Array(batch * nq * hq * dv);
  const lse = new Float64Array(batch * hq * nq);
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < hq; h++) {
      const kvHead = Math.floor(h / group);
      for (let i = 0; i < nq; i++) {
        const keys = keySet(b, kvHead, firstQuery + i);
        if (keys.length === 0) continue;
        const scores = scoreRow(q, k, sizes, b, h, i, keys);
        const rowLse = logSumExp(scores);
        lse[(b * hq + h) * nq + i] = rowLse;
        const oBase = tokenOffset(b, i, h, nq, hq, dv);
        keys.forEach((key, j) => {
          const p = Math.exp(scores[j]! - rowLse);
          const vBase = tokenOffset(b, key, kvHead, nk, hkv, dv);
          for (let c = 0; c < dv; c++) o[oBase + c]! += p * v[vBase + c]!;
        });
      }
    }
  }
  return { o, lse };
}

/**
 * Gradients of `L = Σ o · dO` for {@link keySetAttentionForward}, FlashAttention-2 style (spec §7):
 * P recomputed from the saved lse, `dV = Pᵀ dO`, `dS = P ∘ (dO Vᵀ - rowsum(dO ∘ O))`,
 * `dQ = scale · dS K`, `dK = scale · dSᵀ Q`, dK and dV summed over each GQA group.
 */
export function keySetAttentionBackward(
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
  o: ArrayLike<number>,
  lse: ArrayLike<number>,
  dO: ArrayLike<number>,
  sizes: BranchSizes,
  keySet: KeySet,
): { dq: Float64Array; dk: Float64Array; dv: Float64Array } {
  const { batch, nq, nk, hq, hkv, dqk, dv, scale, firstQuery } = sizes;
  const group = hq / hkv;
  const sums = {
    q,
    k,
    v,
    o,
    dO,
    dq: new Float64Array(q.length),
    dk: new Float64Array(k.length),
    dv: new Float64Array(v.length),
  };
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < hq; h++) {
      const kvHead = Math.floor(h / group);
      for (let i = 0; i < nq; i++) {
        const keys = keySet(b, kvHead, firstQuery + i);
        const scores = scoreRow(q, k, sizes, b, h, i, keys);
        const rowLse = lse[(b * hq + h) * nq + i]!;
        const row = { qBase: tokenOffset(b, i, h, nq, hq, dqk), oBase: tokenOffset(b, i, h, nq, hq, dv) };
        const rowKeys = keys.map((key, j) => ({
          kBase: tokenOffset(b, key, kvHead, nk, hkv, dqk),
          vBase: tokenOffset(b, key, kvHead, nk, hkv, dv),
          p: Math.exp(scores[j]! - rowLse),
        }));
        addRowGradients(sums, row, rowKeys, { d: dqk, dv, scale });
      }
    }
  }
  return { dq: sums.dq, dk: sums.dk, dv: sums.dv };
}

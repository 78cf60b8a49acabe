/**
 * One query row's share of a softmax attention backward, shared by the dense attention and the
 * NSA branches' key-set attention: the textbook formulas, in f64.
 */

/** The inputs a row's gradients read and the f64 sums they add to. */
export interface RowGradientTensors {
  q: ArrayLike<number>;
  k: ArrayLike<number>;
  v: ArrayLike<number>;
  o: ArrayLike<number>;
  dO: ArrayLike<number>;
  dq: Float64Array;
  dk: Float64Array;
  dv: Float64Array;
}

/** A key the row attends to: where its rows start in k and v, and the row's probability of it. */
export interface RowKey {
  kBase: number;
  vBase: number;
  p: number;
}

/**
 * Adds one query row's gradients, its q row at `qBase` and its o and dO rows at `oBase`: with
 * `delta = rowsum(dO ∘ O)` (the softmax Jacobian's shared term, Σ_j P_ij dP_ij), for each key
 * `dV += p · dO`, `dS = p · (dO · V - delta)`, `dQ += scale · dS · K`, `dK += scale · dS · Q`.
 */
export function addRowGradients(
  t: RowGradientTensors,
  row: { qBase: number; oBase: number },
  keys: Iterable<RowKey>,
  dims: { d: number; dv: number; scale: number },
): void {
  const { qBase, oBase } = row;
  let delta = 0;
  for (let c = 0; c < dims.dv; c++) delta += t.dO[oBase + c]! * t.o[oBase + c]!;
  for (const { kBase, vBase, p } of keys) {
    let dp = 0;
    for (let c = 0; c < dims.dv; c++) {
      dp += t.dO[oBase + c]! * t.v[vBase + c]!;
      t.dv[vBase + c]! += p * t.dO[oBase + c]!;
    }
    const dsScaled = p * (dp - delta) * dims.scale;
    for (let c = 0; c < dims.d; c++) {
      t.dq[qBase + c]! += dsScaled * t.k[kBase + c]!;
      t.dk[kBase + c]! += dsScaled * t.q[qBase + c]!;
    }
  }
}

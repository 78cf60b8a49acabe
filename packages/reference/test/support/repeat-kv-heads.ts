/**
 * Copies each kv head of a `[batch, tokens, hkv, dim]` array `group` times, giving
 * `[batch, tokens, hkv · group, dim]`: GQA written out as plain multi-head attention.
 */
export function repeatKvHeads(
  x: ArrayLike<number>,
  batch: number,
  tokens: number,
  hkv: number,
  group: number,
  dim: number,
): Float64Array {
  const out = new Float64Array(batch * tokens * hkv * group * dim);
  let e = 0;
  for (let b = 0; b < batch; b++) {
    for (let t = 0; t < tokens; t++) {
      for (let h = 0; h < hkv * group; h++) {
        const from = ((b * tokens + t) * hkv + Math.floor(h / group)) * dim;
        for (let c = 0; c < dim; c++) out[e++] = x[from + c]!;
      }
    }
  }
  return out;
}

/** The inverse direction for gradients: sums the `group` copies of each kv head. */
export function sumKvHeadGroups(
  x: ArrayLike<number>,
  batch: number,
  tokens: number,
  hkv: number,
  group: number,
  dim: number,
): Float64Array {
  const out = new Float64Array(batch * tokens * hkv * dim);
  let e = 0;
  for (let b = 0; b < batch; b++) {
    for (let t = 0; t < tokens; t++) {
      for (let h = 0; h < hkv * group; h++) {
        const to = ((b * tokens + t) * hkv + Math.floor(h / group)) * dim;
        for (let c = 0; c < dim; c++) out[to + c]! += x[e++]!;
      }
    }
  }
  return out;
}

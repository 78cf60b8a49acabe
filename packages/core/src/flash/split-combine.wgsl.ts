/**
 * The merge of a split-KV forward's parts (split-kv.ts). Part s of row (t, h) holds its normalised
 * output o_s and its log-sum-exp lse_s over its keys; the row's output is the sum of the o_s weighted
 * by exp(lse_s − lse) with lse = log Σ exp(lse_s). Parts that saw no key (lse_s = -inf) weigh
 * nothing. One workgroup per row; every invocation reads the parts' lse (a handful of words, the
 * same for all) and merges its own output columns, parts in order.
 */

import { WORKGROUP_INDEX_WGSL } from '../dispatch.js';
import type { Dtype } from '../dtype.js';
import type { ParamLayout } from '../params.js';
import { paramsStruct } from '../params.js';
import { enables } from '../wgsl.js';
import { LSE_INDEX_WGSL, MASKED } from './common.wgsl.js';

/** Invocations per workgroup of the merge. */
export const SPLIT_COMBINE_WORKGROUP = 64;

/** Uniform parameters of the merge. */
export const SPLIT_COMBINE_PARAMS: ParamLayout = [
  /** Output rows: query tokens x heads. */
  ['rows', 'u32'],
  ['hq', 'u32'],
  ['splits', 'u32'],
  /** The lse layout (problem.ts): `[b, hq, n]` with stride n, or `[hq, totalQ]` with stride totalQ. */
  ['lseHeadStride', 'u32'],
  /** Entries of one part's lse. */
  ['lseSize', 'u32'],
  ['negInf', 'f32'],
];

/** WGSL of the merge: parts' o `[splits, ...o]` and lse `[splits, ...lse]` into o and lse. */
export function splitCombineWgsl(c: { dtype: Dtype; dv: number }): string {
  const T = c.dtype;
  const WG = SPLIT_COMBINE_WORKGROUP;
  return `${enables({ f16: T === 'f16' })}
${paramsStruct(SPLIT_COMBINE_PARAMS)}
@group(0) @binding(0) var<storage, read> partO: array<${T}>;
@group(0) @binding(1) var<storage, read> partLse: array<f32>;
@group(0) @binding(2) var<storage, read_write> o: array<${T}>;
@group(0) @binding(3) var<storage, read_write> lse: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

const DV = ${c.dv}u;

${WORKGROUP_INDEX_WGSL}

${LSE_INDEX_WGSL}

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let row = workgroupIndex(wid, nwg);
  if (row >= p.rows) { return; }
  // Row (t, h) of o is row t·hq + h.
  let at = lseIndex(row / p.hq, row % p.hq, p.hq, p.lseHeadStride);
  var m = ${MASKED};
  for (var s = 0u; s < p.splits; s++) { m = max(m, partLse[s * p.lseSize + at]); }
  var total = 0.0;
  for (var s = 0u; s < p.splits; s++) {
    let x = partLse[s * p.lseSize + at];
    total += select(0.0, exp(x - m), x > ${MASKED});
  }
  // A row no part saw: o = 0, lse = -inf.
  let inv = select(0.0, 1.0 / total, total > 0.0);
  for (var col = li; col < DV; col += ${WG}u) {
    var acc = 0.0;
    for (var s = 0u; s < p.splits; s++) {
      let x = partLse[s * p.lseSize + at];
      if (x > ${MASKED}) { acc += exp(x - m) * f32(partO[(s * p.rows + row) * DV + col]); }
    }
    o[row * DV + col] = ${T}(acc * inv);
  }
  if (li == 0u) { lse[at] = select(p.negInf, m + log(total), total > 0.0); }
}
`;
}

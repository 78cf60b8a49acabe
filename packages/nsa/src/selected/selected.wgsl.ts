/**
 * Selected-block attention (NSA spec section 5.1), one invocation per (token, query head): softmax
 * attention over the keys of the blocks its KV head's selection lists, up to and including the
 * token itself, with an online softmax in f32. Saves the natural-log lse for the backward.
 */
import { type Dtype, enables, paramsStruct, WORKGROUP_INDEX_WGSL } from '@webattn/core';
import { NSA_SEQUENCE_WGSL } from '../layout.js';

/** Uniform parameters of the selected-attention kernel. */
export const SELECTED_PARAMS = [
  ['tokens', 'u32'],
  ['heads', 'u32'],
  ['kvHeads', 'u32'],
  ['group', 'u32'],
  ['scale', 'f32'],
  ['blockSize', 'i32'],
  ['tokenTable', 'u32'],
] as const;

/** Generation parameters: storage dtype, head dims, slots per query. */
export interface SelectedKernelConfig {
  dtype: Dtype;
  d: number;
  dv: number;
  topN: number;
}

/** Invocations per workgroup. */
export const SELECTED_WORKGROUP = 64;

/** WGSL of the selected-attention forward. */
export function selectedAttentionWgsl(c: SelectedKernelConfig): string {
  return `${enables({ f16: c.dtype === 'f16' })}
${paramsStruct(SELECTED_PARAMS)}
@group(0) @binding(0) var<storage, read> q: array<${c.dtype}>;
@group(0) @binding(1) var<storage, read> k: array<${c.dtype}>;
@group(0) @binding(2) var<storage, read> v: array<${c.dtype}>;
@group(0) @binding(3) var<storage, read> selected: array<i32>;
@group(0) @binding(4) var<storage, read> tables: array<u32>;
@group(0) @binding(5) var<storage, read_write> o: array<${c.dtype}>;
@group(0) @binding(6) var<storage, read_write> lse: array<f32>;
@group(0) @binding(7) var<uniform> p: Params;

const D = ${c.d}u;
const DV = ${c.dv}u;
const TOPN = ${c.topN}u;
const MASKED = -3.0e38;

${NSA_SEQUENCE_WGSL}

${WORKGROUP_INDEX_WGSL}

@compute @workgroup_size(${SELECTED_WORKGROUP})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let row = workgroupIndex(wid, nwg) * ${SELECTED_WORKGROUP}u + li;
  if (row >= p.tokens * p.heads) { return; }
  let t = row / p.heads;
  let h = row % p.heads;
  let g = h / p.group;
  let sq = sequenceOf(t);
  let pos = i32(t - sq.start);
  var qv: array<f32, D>;
  for (var e = 0u; e < D; e++) { qv[e] = f32(q[row * D + e]) * p.scale; }
  var acc: array<f32, DV>;
  var m = MASKED;
  var l = 0.0;
  for (var slot = 0u; slot < TOPN; slot++) {
    let J = selected[(t * p.kvHeads + g) * TOPN + slot];
    if (J < 0) { break; }
    // The block's keys up to the token itself (its own block is cut at the diagonal).
    let last = min(J * p.blockSize + p.blockSize - 1, pos);
    for (var j = J * p.blockSize; j <= last; j++) {
      let key = (sq.start + u32(j)) * p.kvHeads + g;
      var s = 0.0;
      for (var e = 0u; e < D; e++) { s += qv[e] * f32(k[key * D + e]); }
      let mNew = max(m, s);
      let correction = exp(m - mNew);
      let weight = exp(s - mNew);
      for (var e = 0u; e < DV; e++) { acc[e] = acc[e] * correction + weight * f32(v[key * DV + e]); }
      l = l * correction + weight;
      m = mNew;
    }
  }
  // Every token selects its own block, so l > 0; the guard keeps a corrupt selection finite.
  let inv = select(0.0, 1.0 / l, l > 0.0);
  for (var e = 0u; e < DV; e++) { o[row * DV + e] = ${c.dtype}(acc[e] * inv); }
  lse[row] = m + log(l);
}
`;
}

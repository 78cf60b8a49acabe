/**
 * Attention the plain way, for contrast in the bench tables: the full score matrix is written to
 * memory, softmaxed in place, then multiplied by V. Three kernels, f32 scores, no tiling. A pass
 * covers the query heads `headBase ..< headBase + heads`, as many as one binding's scores hold.
 */
import { type Dtype, enables, paramsStruct, WORKGROUP_INDEX_WGSL } from '@webattn/core';

/** Parameters of the three naive kernels. */
export const NAIVE_PARAMS = [
  ['n', 'u32'],
  ['nk', 'u32'],
  ['hq', 'u32'],
  ['hkv', 'u32'],
  /** The pass's first query head and its head count; rows = b · heads · n. */
  ['headBase', 'u32'],
  ['heads', 'u32'],
  ['rows', 'u32'],
  ['scale', 'f32'],
  ['causal', 'u32'],
] as const;

const header = (dtype: Dtype) => `${enables({ f16: dtype === 'f16' })}
${paramsStruct(NAIVE_PARAMS)}
${WORKGROUP_INDEX_WGSL}`;

/** S[b, h - headBase, i, j] = scale · q_i · k_j, or a large negative number where causal masking hides j. */
export function naiveScoresWgsl(dtype: Dtype, d: number): string {
  return `${header(dtype)}
@group(0) @binding(0) var<storage, read> q: array<${dtype}>;
@group(0) @binding(1) var<storage, read> k: array<${dtype}>;
@group(0) @binding(2) var<storage, read_write> s: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let e = workgroupIndex(wid, nwg) * 256u + li;
  if (e >= p.rows * p.nk) { return; }
  let j = e % p.nk;
  let row = e / p.nk;
  let i = row % p.n;
  let bh = row / p.n;
  let h = p.headBase + bh % p.heads;
  let b = bh / p.heads;
  let hk = h / (p.hq / p.hkv);
  if (p.causal == 1u && j > i + p.nk - p.n) { s[e] = -3.0e38; return; }
  var dot = 0.0;
  for (var c = 0u; c < ${d}u; c++) {
    dot = fma(f32(q[((b * p.n + i) * p.hq + h) * ${d}u + c]), f32(k[((b * p.nk + j) * p.hkv + hk) * ${d}u + c]), dot);
  }
  s[e] = dot * p.scale;
}
`;
}

/** Softmax of each score row in place, one workgroup per row. */
export function naiveSoftmaxWgsl(): string {
  return `${header('f32')}
@group(0) @binding(0) var<storage, read_write> s: array<f32>;
@group(0) @binding(1) var<uniform> p: Params;
var<workgroup> part: array<f32, 64>;
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let row = workgroupIndex(wid, nwg);
  if (row >= p.rows) { return; }
  let base = row * p.nk;
  var m = -3.0e38;
  for (var j = li; j < p.nk; j += 64u) { m = max(m, s[base + j]); }
  part[li] = m;
  workgroupBarrier();
  for (var w = 32u; w > 0u; w >>= 1u) {
    if (li < w) { part[li] = max(part[li], part[li + w]); }
    workgroupBarrier();
  }
  m = part[0];
  workgroupBarrier();
  var l = 0.0;
  for (var j = li; j < p.nk; j += 64u) { l += exp(s[base + j] - m); }
  part[li] = l;
  workgroupBarrier();
  for (var w = 32u; w > 0u; w >>= 1u) {
    if (li < w) { part[li] += part[li + w]; }
    workgroupBarrier();
  }
  let inv = select(0.0, 1.0 / part[0], m > -3.0e38);
  for (var j = li; j < p.nk; j += 64u) { s[base + j] = exp(s[base + j] - m) * inv; }
}
`;
}

/** O[b, i, h, c] = Σ_j P[b, h - headBase, i, j] · v[b, j, hk, c]. */
export function naiveOutputWgsl(dtype: Dtype, dv: number): string {
  return `${header(dtype)}
@group(0) @binding(0) var<storage, read> s: array<f32>;
@group(0) @binding(1) var<storage, read> v: array<${dtype}>;
@group(0) @binding(2) var<storage, read_write> o: array<${dtype}>;
@group(0) @binding(3) var<uniform> p: Params;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let e = workgroupIndex(wid, nwg) * 256u + li;
  if (e >= p.rows * ${dv}u) { return; }
  let c = e % ${dv}u;
  let row = e / ${dv}u;
  let i = row % p.n;
  let bh = row / p.n;
  let h = p.headBase + bh % p.heads;
  let b = bh / p.heads;
  let hk = h / (p.hq / p.hkv);
  var acc = 0.0;
  for (var j = 0u; j < p.nk; j++) { acc = fma(s[row * p.nk + j], f32(v[((b * p.nk + j) * p.hkv + hk) * ${dv}u + c]), acc); }
  o[((b * p.n + i) * p.hq + h) * ${dv}u + c] = ${dtype}(acc);
}
`;
}

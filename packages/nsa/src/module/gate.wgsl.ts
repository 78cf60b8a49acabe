/**
 * The NSA module's gate projection (spec section 1.1, `attn_gate = Linear(d, 3)` shared by every
 * query head): logits `g = q · Wᵀ + b` per (token, head), and its backward: q's extra gradient
 * `dg · W`, and W's and b's gradients as sums over every row, each owned by one workgroup that
 * reduces in a fixed tree (the same bits every run).
 */
import { type Dtype, enables, paramsStruct, WORKGROUP_INDEX_WGSL } from '@webattn/core';

/** Uniform parameters: (token, head) rows and the head dim. */
export const GATE_PARAMS = [
  ['rows', 'u32'],
  ['dim', 'u32'],
] as const;

/** Invocations per workgroup. */
export const GATE_WORKGROUP = 64;

/** Invocations of a workgroup reducing one parameter's gradient. */
export const GATE_REDUCE_THREADS = 256;

function header(dtype: Dtype, bindings: string[]): string {
  return `${enables({ f16: dtype === 'f16' })}
${paramsStruct(GATE_PARAMS)}
${bindings.map((b, i) => `@group(0) @binding(${i}) var<storage, ${b.replaceAll('DTYPE', dtype)};`).join('\n')}
@group(0) @binding(${bindings.length}) var<uniform> p: Params;

${WORKGROUP_INDEX_WGSL}`;
}

/** `g[r][o] = Σ_e q[r][e] · w[o][e] + bias[o]`, one invocation per (row, o). Bindings: q, w, bias, g. */
export function gateLogitsWgsl(dtype: Dtype): string {
  return `${header(dtype, ['read> q: array<DTYPE>', 'read> w: array<DTYPE>', 'read> bias: array<DTYPE>', 'read_write> g: array<DTYPE>'])}

@compute @workgroup_size(${GATE_WORKGROUP})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let id = workgroupIndex(wid, nwg) * ${GATE_WORKGROUP}u + li;
  if (id >= p.rows * 3u) { return; }
  let r = id / 3u;
  let o = id % 3u;
  var sum = f32(bias[o]);
  for (var e = 0u; e < p.dim; e++) { sum += f32(q[r * p.dim + e]) * f32(w[o * p.dim + e]); }
  g[id] = ${dtype}(sum);
}
`;
}

/** `dqOut[r][e] = dq[r][e] + Σ_o dg[r][o] · w[o][e]`. Bindings: dq, dg, w, dqOut. */
export function gateInputBackwardWgsl(dtype: Dtype): string {
  return `${header(dtype, ['read> dq: array<DTYPE>', 'read> dg: array<DTYPE>', 'read> w: array<DTYPE>', 'read_write> dqOut: array<DTYPE>'])}

@compute @workgroup_size(${GATE_WORKGROUP})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let id = workgroupIndex(wid, nwg) * ${GATE_WORKGROUP}u + li;
  if (id >= p.rows * p.dim) { return; }
  let r = id / p.dim;
  let e = id % p.dim;
  var sum = f32(dq[id]);
  for (var o = 0u; o < 3u; o++) { sum += f32(dg[r * 3u + o]) * f32(w[o * p.dim + e]); }
  dqOut[id] = ${dtype}(sum);
}
`;
}

/**
 * One workgroup per parameter: `dw[o][e] = Σ_r dg[r][o] · q[r][e]` for workgroups `o · dim + e`,
 * then `dbias[o] = Σ_r dg[r][o]` for the last three. Bindings: q, dg, dw, dbias.
 */
export function gateParamsBackwardWgsl(dtype: Dtype): string {
  const threads = GATE_REDUCE_THREADS;
  return `${header(dtype, ['read> q: array<DTYPE>', 'read> dg: array<DTYPE>', 'read_write> dw: array<DTYPE>', 'read_write> dbias: array<DTYPE>'])}

var<workgroup> partial: array<f32, ${threads}>;

@compute @workgroup_size(${threads})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) li: u32) {
  let j = wid.x;
  let isBias = j >= 3u * p.dim;
  let o = select(j / p.dim, j - 3u * p.dim, isBias);
  let e = j % p.dim;
  var sum = 0.0;
  for (var r = li; r < p.rows; r += ${threads}u) {
    sum += f32(dg[r * 3u + o]) * select(f32(q[r * p.dim + e]), 1.0, isBias);
  }
  partial[li] = sum;
  workgroupBarrier();
  for (var half = ${threads / 2}u; half > 0u; half /= 2u) {
    if (li < half) { partial[li] += partial[li + half]; }
    workgroupBarrier();
  }
  if (li == 0u) {
    if (isBias) { dbias[o] = ${dtype}(partial[0]); } else { dw[j] = ${dtype}(partial[0]); }
  }
}
`;
}

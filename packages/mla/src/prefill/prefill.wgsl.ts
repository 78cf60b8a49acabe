/**
 * Kernels around core's flash attention for the prefill path, which runs MLA as MQA with one KV head:
 * q = [q_latent | q_pe] per head, k = [c_kv | k_pe] and v = c_kv, gathered from the cache into packed
 * sequences of exactly their lengths (slots past a length are never read), then the W_UV epilogue.
 * The gather binds (c_kv, k_pe) for a dense cache or the pages alone for a paged one.
 */
import { type Dtype, enables, paramsStruct, WORKGROUP_INDEX_WGSL } from '@webattn/core';
import type { MlaKeySource } from '../attention/attention.wgsl.js';

/** Invocations per workgroup of the gather kernels. */
export const MLA_GATHER_WORKGROUP = 256;

/** Invocations per workgroup of the epilogue (one output row per workgroup). */
export const MLA_EPILOGUE_WORKGROUP = 64;

/** Uniform parameters of the query concatenation. */
export const MLA_CONCAT_Q_PARAMS = [['rows', 'u32']] as const;

/** Uniform parameters of the key gather. */
export const MLA_GATHER_KEYS_PARAMS = [['tokens', 'u32']] as const;

/** Uniform parameters of the epilogue. */
export const MLA_EPILOGUE_PARAMS = [['rows', 'u32']] as const;

/** `q[row] = [q_latent[row] | q_pe[row]]`, one invocation per element. */
export function mlaConcatQueryWgsl(c: { dtype: Dtype; r: number; dr: number }): string {
  const T = c.dtype;
  const dk = c.r + c.dr;
  return `${enables({ f16: T === 'f16' })}
${paramsStruct(MLA_CONCAT_Q_PARAMS)}
@group(0) @binding(0) var<storage, read> ql: array<${T}>;
@group(0) @binding(1) var<storage, read> qpe: array<${T}>;
@group(0) @binding(2) var<storage, read_write> q: array<${T}>;
@group(0) @binding(3) var<uniform> p: Params;

${WORKGROUP_INDEX_WGSL}

@compute @workgroup_size(${MLA_GATHER_WORKGROUP})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  _ = &qpe;
  let id = workgroupIndex(wid, nwg) * ${MLA_GATHER_WORKGROUP}u + li;
  if (id >= p.rows * ${dk}u) { return; }
  let row = id / ${dk}u;
  let col = id % ${dk}u;
  if (col < ${c.r}u) {
    q[id] = ql[row * ${c.r}u + col];
  } else {
    q[id] = qpe[row * ${Math.max(c.dr, 1)}u + col - ${c.r}u];
  }
}
`;
}

/**
 * Gathers the valid keys into packed k `[tokens, 1, r + dr]` and v `[tokens, 1, r]`; `slots[t]` is
 * the cache slot of packed token t (dense: `b·nk + j`; paged: `page·pageSize + offset`).
 */
export function mlaGatherKeysWgsl(c: { dtype: Dtype; r: number; dr: number; source: MlaKeySource }): string {
  const T = c.dtype;
  const dk = c.r + c.dr;
  const paged = c.source === 'paged';
  const bindings = paged
    ? `@group(0) @binding(0) var<storage, read> cache: array<${T}>;`
    : `@group(0) @binding(0) var<storage, read> ckv: array<${T}>;
@group(0) @binding(1) var<storage, read> kpe: array<${T}>;`;
  const at = paged ? 1 : 2;
  const load =
    c.source === 'paged'
      ? `let x = cache[slot * ${dk}u + col];`
      : c.dr > 0
        ? `var x: ${T};
  if (col < ${c.r}u) { x = ckv[slot * ${c.r}u + col]; } else { x = kpe[slot * ${c.dr}u + col - ${c.r}u]; }`
        : `_ = &kpe;
  let x = ckv[slot * ${c.r}u + col];`;
  return `${enables({ f16: T === 'f16' })}
${paramsStruct(MLA_GATHER_KEYS_PARAMS)}
${bindings}
@group(0) @binding(${at}) var<storage, read> slots: array<u32>;
@group(0) @binding(${at + 1}) var<storage, read_write> k: array<${T}>;
@group(0) @binding(${at + 2}) var<storage, read_write> v: array<${T}>;
@group(0) @binding(${at + 3}) var<uniform> p: Params;

${WORKGROUP_INDEX_WGSL}

@compute @workgroup_size(${MLA_GATHER_WORKGROUP})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let id = workgroupIndex(wid, nwg) * ${MLA_GATHER_WORKGROUP}u + li;
  if (id >= p.tokens * ${dk}u) { return; }
  let t = id / ${dk}u;
  let col = id % ${dk}u;
  let slot = slots[t];
  ${load}
  k[id] = x;
  if (col < ${c.r}u) { v[t * ${c.r}u + col] = x; }
}
`;
}

/** The W_UV epilogue: `o[row] = latent[row] · w_uv[row mod heads]`, one workgroup per row. */
export function mlaEpilogueWgsl(c: { dtype: Dtype; heads: number; r: number; dv: number }): string {
  const T = c.dtype;
  const WG = MLA_EPILOGUE_WORKGROUP;
  return `${enables({ f16: T === 'f16' })}
${paramsStruct(MLA_EPILOGUE_PARAMS)}
@group(0) @binding(0) var<storage, read> latent: array<${T}>;
@group(0) @binding(1) var<storage, read> wuv: array<${T}>;
@group(0) @binding(2) var<storage, read_write> o: array<${T}>;
@group(0) @binding(3) var<uniform> p: Params;

var<workgroup> lat: array<f32, ${c.r}>;

${WORKGROUP_INDEX_WGSL}

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let row = workgroupIndex(wid, nwg);
  if (row >= p.rows) { return; }
  for (var col = li; col < ${c.r}u; col += ${WG}u) { lat[col] = f32(latent[row * ${c.r}u + col]); }
  workgroupBarrier();
  let head = row % ${c.heads}u;
  for (var d = li; d < ${c.dv}u; d += ${WG}u) {
    var sum = 0.0;
    for (var col = 0u; col < ${c.r}u; col++) {
      sum += lat[col] * f32(wuv[(head * ${c.r}u + col) * ${c.dv}u + d]);
    }
    o[row * ${c.dv}u + d] = ${T}(sum);
  }
}
`;
}

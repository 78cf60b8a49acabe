/**
 * The small kernels of the MLA layer around core's matmul: RMSNorm of a column range of each token
 * (c_q, c_kv), RoPE of a column range from per-token cos/sin tables (both pair layouts), and the
 * per-head latent query `q_latent[t, h] = q_nope[t, h] · W_UK[h]`.
 */
import { type Dtype, enables, paramsStruct, WORKGROUP_INDEX_WGSL } from '@webattn/core';

/** Invocations per workgroup of the RMSNorm (one token per workgroup). */
export const MLA_NORM_WORKGROUP = 64;

/** Invocations per workgroup of the elementwise layer kernels. */
export const MLA_LAYER_WORKGROUP = 256;

/** Uniform parameters of the layer kernels: tokens, and the norm's epsilon. */
export const MLA_LAYER_PARAMS = [
  ['tokens', 'u32'],
  ['eps', 'f32'],
] as const;

/** Where a kernel reads its columns: each token's row of `stride` values, from `offset`. */
export interface MlaColumns {
  stride: number;
  offset: number;
}

/** `y[t, :width] = x[t, offset : offset + width] · rsqrt(mean(x²) + eps) · w`, statistics in f32. */
export function mlaRmsNormWgsl(c: { dtype: Dtype; width: number } & MlaColumns): string {
  const T = c.dtype;
  const WG = MLA_NORM_WORKGROUP;
  return `${enables({ f16: T === 'f16' })}
${paramsStruct(MLA_LAYER_PARAMS)}
@group(0) @binding(0) var<storage, read> x: array<${T}>;
@group(0) @binding(1) var<storage, read> w: array<${T}>;
@group(0) @binding(2) var<storage, read_write> y: array<${T}>;
@group(0) @binding(3) var<uniform> p: Params;

var<workgroup> partial: array<f32, ${WG}>;

${WORKGROUP_INDEX_WGSL}

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let t = workgroupIndex(wid, nwg);
  if (t >= p.tokens) { return; }
  let base = t * ${c.stride}u + ${c.offset}u;
  var sum = 0.0;
  for (var col = li; col < ${c.width}u; col += ${WG}u) {
    let v = f32(x[base + col]);
    sum += v * v;
  }
  partial[li] = sum;
  workgroupBarrier();
  for (var s = ${WG / 2}u; s > 0u; s >>= 1u) {
    if (li < s) { partial[li] += partial[li + s]; }
    workgroupBarrier();
  }
  let inv = inverseSqrt(partial[0] / ${c.width}.0 + p.eps);
  for (var col = li; col < ${c.width}u; col += ${WG}u) {
    y[t * ${c.width}u + col] = ${T}(f32(x[base + col]) * inv * f32(w[col]));
  }
}
`;
}

/**
 * RoPE of `heads` vectors of `dim` values per token, read from `x[t, offset + h·dim ..]` and written
 * to `y[t, h, :]`, with per-token tables `cs[t, k] = (cos, sin)` (magnitude included) of `dim / 2`
 * pairs: pair k is `(k, k + dim/2)` in the rotate-half layout and `(2k, 2k + 1)` interleaved.
 */
export function mlaRopeWgsl(
  c: { dtype: Dtype; heads: number; dim: number; style: 'rotate-half' | 'interleaved' } & MlaColumns,
): string {
  const T = c.dtype;
  const half = c.dim / 2;
  const [ia, ib] = c.style === 'rotate-half' ? ['k', `k + ${half}u`] : ['2u * k', '2u * k + 1u'];
  return `${enables({ f16: T === 'f16' })}
${paramsStruct(MLA_LAYER_PARAMS)}
@group(0) @binding(0) var<storage, read> x: array<${T}>;
@group(0) @binding(1) var<storage, read> cs: array<vec2<f32>>;
@group(0) @binding(2) var<storage, read_write> y: array<${T}>;
@group(0) @binding(3) var<uniform> p: Params;

${WORKGROUP_INDEX_WGSL}

@compute @workgroup_size(${MLA_LAYER_WORKGROUP})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let id = workgroupIndex(wid, nwg) * ${MLA_LAYER_WORKGROUP}u + li;
  if (id >= p.tokens * ${c.heads * half}u) { return; }
  let t = id / ${c.heads * half}u;
  let h = (id / ${half}u) % ${c.heads}u;
  let k = id % ${half}u;
  let src = t * ${c.stride}u + ${c.offset}u + h * ${c.dim}u;
  let dst = (t * ${c.heads}u + h) * ${c.dim}u;
  let a = f32(x[src + ${ia}]);
  let b = f32(x[src + ${ib}]);
  let r = cs[t * ${half}u + k];
  y[dst + ${ia}] = ${T}(a * r.x - b * r.y);
  y[dst + ${ib}] = ${T}(b * r.x + a * r.y);
}
`;
}

/** `q_latent[t, h, :] = Σ_d q_nope[t, h·dn + d] · w_uk[h, d, :]`, one invocation per output. */
export function mlaQueryLatentWgsl(c: { dtype: Dtype; heads: number; dn: number; r: number }): string {
  const T = c.dtype;
  return `${enables({ f16: T === 'f16' })}
${paramsStruct(MLA_LAYER_PARAMS)}
@group(0) @binding(0) var<storage, read> qn: array<${T}>;
@group(0) @binding(1) var<storage, read> wuk: array<${T}>;
@group(0) @binding(2) var<storage, read_write> ql: array<${T}>;
@group(0) @binding(3) var<uniform> p: Params;

${WORKGROUP_INDEX_WGSL}

@compute @workgroup_size(${MLA_LAYER_WORKGROUP})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let id = workgroupIndex(wid, nwg) * ${MLA_LAYER_WORKGROUP}u + li;
  if (id >= p.tokens * ${c.heads * c.r}u) { return; }
  let row = id / ${c.r}u;
  let col = id % ${c.r}u;
  let h = row % ${c.heads}u;
  var sum = 0.0;
  for (var d = 0u; d < ${c.dn}u; d++) {
    sum += f32(qn[row * ${c.dn}u + d]) * f32(wuk[(h * ${c.dn}u + d) * ${c.r}u + col]);
  }
  ql[id] = ${T}(sum);
}
`;
}

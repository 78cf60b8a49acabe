/**
 * The q/k L2 normalisation (the seed's f16 mitigation, the reference's `l2Normalize`), forward and
 * backward, one invocation per row of `dim` values: `y = x / max(‖x‖, eps)` and
 * `dx = (dy - y (y · dy)) / ‖x‖` (`dy / eps` where the norm was clamped), in f32.
 */
import { type Dtype, enables, paramsStruct, WORKGROUP_INDEX_WGSL } from '@webattn/core';

/** Uniform parameters of both normalisation kernels. */
export const NORMALIZE_PARAMS = [
  ['rows', 'u32'],
  ['dim', 'u32'],
  ['eps', 'f32'],
] as const;

/** Invocations per workgroup. */
export const NORMALIZE_WORKGROUP = 64;

function header(dtype: Dtype): string {
  return `${enables({ f16: dtype === 'f16' })}
${paramsStruct(NORMALIZE_PARAMS)}
${WORKGROUP_INDEX_WGSL}
fn rowNorm(base: u32) -> f32 {
  var sum = 0.0;
  for (var c = 0u; c < p.dim; c++) { let v = f32(x[base + c]); sum += v * v; }
  return sqrt(sum);
}`;
}

/** WGSL of the normalisation: `y = x / max(‖x‖, eps)` per row. */
export function l2NormalizeWgsl(dtype: Dtype): string {
  return `${header(dtype)}
@group(0) @binding(0) var<storage, read> x: array<${dtype}>;
@group(0) @binding(1) var<storage, read_write> y: array<${dtype}>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(${NORMALIZE_WORKGROUP})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let row = workgroupIndex(wid, nwg) * ${NORMALIZE_WORKGROUP}u + li;
  if (row >= p.rows) { return; }
  let base = row * p.dim;
  let inv = 1.0 / max(rowNorm(base), p.eps);
  for (var c = 0u; c < p.dim; c++) { y[base + c] = ${dtype}(f32(x[base + c]) * inv); }
}
`;
}

/** WGSL of the normalisation's backward: dx from x and dy per row. */
export function l2NormalizeBackwardWgsl(dtype: Dtype): string {
  return `${header(dtype)}
@group(0) @binding(0) var<storage, read> x: array<${dtype}>;
@group(0) @binding(1) var<storage, read> dy: array<${dtype}>;
@group(0) @binding(2) var<storage, read_write> dx: array<${dtype}>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(${NORMALIZE_WORKGROUP})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let row = workgroupIndex(wid, nwg) * ${NORMALIZE_WORKGROUP}u + li;
  if (row >= p.rows) { return; }
  let base = row * p.dim;
  let norm = rowNorm(base);
  if (!(norm > p.eps)) {
    for (var c = 0u; c < p.dim; c++) { dx[base + c] = ${dtype}(f32(dy[base + c]) / p.eps); }
    return;
  }
  var along = 0.0;
  for (var c = 0u; c < p.dim; c++) { along += f32(x[base + c]) * f32(dy[base + c]); }
  along = along / norm;
  for (var c = 0u; c < p.dim; c++) {
    dx[base + c] = ${dtype}((f32(dy[base + c]) - f32(x[base + c]) / norm * along) / norm);
  }
}
`;
}

/**
 * Backward of compression. The tokens' gradient is a gather: token t of a sequence receives
 * `dcmp[m] · w / kernelSize` from every compressed block m covering it (blocks
 * `ceil((t - l + 1) / s) ..= floor(t / s)` below M), with `w = 1` for the mean and `weight[t - m·s]`
 * for the weighted pooling; tokens past the last block get 0. The weighted pooling's parameters,
 * shared by every head and block, get their gradients from two reductions, each owned by one
 * invocation or one workgroup, so every run gives the same bits.
 */
import { type Dtype, enables, paramsStruct, WORKGROUP_INDEX_WGSL } from '@webattn/core';
import { NSA_SEQUENCE_WGSL } from '../layout.js';

/** Uniform parameters of the compression backward. */
export const COMPRESS_BACKWARD_PARAMS = [
  ['tokens', 'u32'],
  ['heads', 'u32'],
  ['dim', 'u32'],
  ['kernelSize', 'i32'],
  ['stride', 'i32'],
  ['tokenTable', 'u32'],
] as const;

/** Invocations per workgroup. */
export const COMPRESS_BACKWARD_WORKGROUP = 64;

/**
 * WGSL of the tokens' gradient, one invocation per (token, head, element). Bindings: dcmp,
 * tables, then weight when `weighted`, then dx.
 */
export function compressBackwardWgsl(dtype: Dtype, weighted: boolean): string {
  return `${enables({ f16: dtype === 'f16' })}
${paramsStruct(COMPRESS_BACKWARD_PARAMS)}
@group(0) @binding(0) var<storage, read> dcmp: array<${dtype}>;
@group(0) @binding(1) var<storage, read> tables: array<u32>;
${
  weighted
    ? `@group(0) @binding(2) var<storage, read> weight: array<${dtype}>;
@group(0) @binding(3) var<storage, read_write> dx: array<${dtype}>;
@group(0) @binding(4) var<uniform> p: Params;`
    : `@group(0) @binding(2) var<storage, read_write> dx: array<${dtype}>;
@group(0) @binding(3) var<uniform> p: Params;`
}

${NSA_SEQUENCE_WGSL}

${WORKGROUP_INDEX_WGSL}

@compute @workgroup_size(${COMPRESS_BACKWARD_WORKGROUP})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let id = workgroupIndex(wid, nwg) * ${COMPRESS_BACKWARD_WORKGROUP}u + li;
  let row = p.heads * p.dim;
  if (id >= p.tokens * row) { return; }
  let t = id / row;
  let within = id % row;
  let sq = sequenceOf(t);
  let pos = i32(t - sq.start);
  // First block ending at or after the token (ceiling division of a possibly negative number).
  let firstBlock = max(0, (pos - p.kernelSize + p.stride) / p.stride);
  let lastBlock = min(i32(sq.cmpLength) - 1, pos / p.stride);
  var sum = 0.0;
  for (var m = firstBlock; m <= lastBlock; m++) {
    sum += ${weighted ? 'f32(weight[pos - m * p.stride]) * ' : ''}f32(dcmp[(sq.cmpStart + u32(m)) * row + within]);
  }
  dx[id] = ${dtype}(sum / f32(p.kernelSize));
}
`;
}

/** Uniform parameters of the parameter gradients: the compression's, plus the number of blocks. */
export const COMPRESS_PARAMS_BACKWARD_PARAMS = [
  ['blocks', 'u32'],
  ['heads', 'u32'],
  ['dim', 'u32'],
  ['kernelSize', 'u32'],
] as const;

/**
 * WGSL of `dpe[r][e] = weight[r] / l · Σ_{m, h} dcmp[m][h][e]`, one invocation per (r, e).
 * Bindings: dcmp, weight, dpe.
 */
export function compressPeBackwardWgsl(dtype: Dtype): string {
  return `${enables({ f16: dtype === 'f16' })}
${paramsStruct(COMPRESS_PARAMS_BACKWARD_PARAMS)}
@group(0) @binding(0) var<storage, read> dcmp: array<${dtype}>;
@group(0) @binding(1) var<storage, read> weight: array<${dtype}>;
@group(0) @binding(2) var<storage, read_write> dpe: array<${dtype}>;
@group(0) @binding(3) var<uniform> p: Params;

${WORKGROUP_INDEX_WGSL}

@compute @workgroup_size(${COMPRESS_BACKWARD_WORKGROUP})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let id = workgroupIndex(wid, nwg) * ${COMPRESS_BACKWARD_WORKGROUP}u + li;
  if (id >= p.kernelSize * p.dim) { return; }
  let r = id / p.dim;
  let e = id % p.dim;
  var sum = 0.0;
  for (var mh = 0u; mh < p.blocks * p.heads; mh++) { sum += f32(dcmp[mh * p.dim + e]); }
  dpe[id] = ${dtype}(f32(weight[r]) * sum / f32(p.kernelSize));
}
`;
}

/** Invocations of the workgroup that reduces one weight's gradient. */
export const COMPRESS_WEIGHT_BACKWARD_THREADS = 256;

/**
 * WGSL of `dweight[r] = 1 / l · Σ_{m, h, e} dcmp[m][h][e] · (x[start_m + r][h][e] + pe[r][e])`, one
 * workgroup per r reducing in a fixed tree. Bindings: x, dcmp, blockStart, pe, dweight.
 */
export function compressWeightBackwardWgsl(dtype: Dtype): string {
  const threads = COMPRESS_WEIGHT_BACKWARD_THREADS;
  return `${enables({ f16: dtype === 'f16' })}
${paramsStruct(COMPRESS_PARAMS_BACKWARD_PARAMS)}
@group(0) @binding(0) var<storage, read> x: array<${dtype}>;
@group(0) @binding(1) var<storage, read> dcmp: array<${dtype}>;
@group(0) @binding(2) var<storage, read> blockStart: array<u32>;
@group(0) @binding(3) var<storage, read> pe: array<${dtype}>;
@group(0) @binding(4) var<storage, read_write> dweight: array<${dtype}>;
@group(0) @binding(5) var<uniform> p: Params;

var<workgroup> partial: array<f32, ${threads}>;

@compute @workgroup_size(${threads})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) li: u32) {
  let r = wid.x;
  let row = p.heads * p.dim;
  var sum = 0.0;
  for (var i = li; i < p.blocks * row; i += ${threads}u) {
    let m = i / row;
    let within = i % row;
    sum += f32(dcmp[i]) * (f32(x[(blockStart[m] + r) * row + within]) + f32(pe[r * p.dim + within % p.dim]));
  }
  partial[li] = sum;
  workgroupBarrier();
  for (var half = ${threads / 2}u; half > 0u; half /= 2u) {
    if (li < half) { partial[li] += partial[li + half]; }
    workgroupBarrier();
  }
  if (li == 0u) { dweight[r] = ${dtype}(partial[0] / f32(p.kernelSize)); }
}
`;
}

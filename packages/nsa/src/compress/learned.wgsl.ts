/**
 * Kernels of the learned compressors (spec section 2, the Scalable repo's `linear`, `swiglu` and
 * `sigmoid-mul`): every block of every head is flattened to a row `u = [l · dim]` (position-major),
 * `z = weight · u` is a matrix product (core's matmul), and an activation turns z into the
 * compressed vector. Here: the gather of the rows, the activation and its backward, a transpose,
 * and the gather of the rows' gradient back onto the tokens (deterministic: no atomics).
 */
import { type Dtype, enables, paramsStruct, WORKGROUP_INDEX_WGSL } from '@webattn/core';
import { NSA_SEQUENCE_WGSL } from '../layout.js';

/** A learned compressor's method. */
export type LearnedMethod = 'linear' | 'swiglu' | 'sigmoid-mul';

/** Uniform parameters of the learned compressors' kernels. */
export const LEARNED_PARAMS = [
  ['blocks', 'u32'],
  ['tokens', 'u32'],
  ['heads', 'u32'],
  ['dim', 'u32'],
  ['kernelSize', 'i32'],
  ['stride', 'i32'],
  ['tokenTable', 'u32'],
] as const;

/** Invocations per workgroup of every kernel here. */
export const LEARNED_WORKGROUP = 64;

function kernel(dtype: Dtype, bindings: string[], body: string, sequences = false): string {
  return `${enables({ f16: dtype === 'f16' })}
${paramsStruct(LEARNED_PARAMS)}
${bindings.map((b, i) => `@group(0) @binding(${i}) var<storage, ${b.replaceAll('DTYPE', dtype)};`).join('\n')}
@group(0) @binding(${bindings.length}) var<uniform> p: Params;

${sequences ? NSA_SEQUENCE_WGSL : ''}

${WORKGROUP_INDEX_WGSL}

@compute @workgroup_size(${LEARNED_WORKGROUP})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let id = workgroupIndex(wid, nwg) * ${LEARNED_WORKGROUP}u + li;
${body}
}
`;
}

/** `u[m · heads + h][r · dim + c] = x[start_m + r][h][c]`. Bindings: x, blockStart, u. */
export function blockRowsWgsl(dtype: Dtype): string {
  return kernel(
    dtype,
    ['read> x: array<DTYPE>', 'read> blockStart: array<u32>', 'read_write> u: array<DTYPE>'],
    `  let width = u32(p.kernelSize) * p.dim;
  if (id >= p.blocks * p.heads * width) { return; }
  let row = id / width;
  let r = (id % width) / p.dim;
  let c = id % p.dim;
  let m = row / p.heads;
  let h = row % p.heads;
  u[id] = x[((blockStart[m] + r) * p.heads + h) * p.dim + c];`,
  );
}

/** The activation `cmp = f(z)`, one invocation per output element. Bindings: z, cmp. */
export function learnedActivationWgsl(dtype: Dtype, method: LearnedMethod): string {
  const value =
    method === 'linear'
      ? 'f32(z[row * p.dim + c])'
      : `gate(f32(z[row * 2u * p.dim + c])) * f32(z[row * 2u * p.dim + p.dim + c])`;
  return kernel(
    dtype,
    ['read> z: array<DTYPE>', 'read_write> cmp: array<DTYPE>'],
    `  if (id >= p.blocks * p.heads * p.dim) { return; }
  let row = id / p.dim;
  let c = id % p.dim;
  cmp[id] = ${dtype}(${value});`,
  ).replace('@compute', `${gateWgsl(method)}\n\n@compute`);
}

// The gate's activation and its slope: silu for swiglu, the sigmoid for sigmoid-mul.
function gateWgsl(method: LearnedMethod): string {
  if (method === 'linear') return '';
  const body =
    method === 'swiglu'
      ? 'return vec2<f32>(a * s, s + a * s * (1.0 - s));'
      : 'return vec2<f32>(s, s * (1.0 - s));';
  return `fn gateAndSlope(a: f32) -> vec2<f32> {
  let s = 1.0 / (1.0 + exp(-a));
  ${body}
}
fn gate(a: f32) -> f32 { return gateAndSlope(a).x; }`;
}

/** `dz` from `dcmp` through the activation, one invocation per z element. Bindings: z (gated methods only), dcmp, dz. */
export function learnedActivationBackwardWgsl(dtype: Dtype, method: LearnedMethod): string {
  const body =
    method === 'linear'
      ? `  if (id >= p.blocks * p.heads * p.dim) { return; }
  dz[id] = dcmp[id];`
      : `  let features = 2u * p.dim;
  if (id >= p.blocks * p.heads * features) { return; }
  let row = id / features;
  let o = id % features;
  let c = o % p.dim;
  let a = f32(z[row * features + c]);
  let up = f32(dcmp[row * p.dim + c]);
  let g = gateAndSlope(a);
  // z = [gate half | value half]: d gate = dcmp · value · slope, d value = dcmp · gate.
  dz[id] = ${dtype}(select(up * g.x, up * f32(z[row * features + p.dim + c]) * g.y, o < p.dim));`;
  const bindings = [
    ...(method === 'linear' ? [] : ['read> z: array<DTYPE>']),
    'read> dcmp: array<DTYPE>',
    'read_write> dz: array<DTYPE>',
  ];
  return kernel(dtype, bindings, body).replace('@compute', `${gateWgsl(method)}\n\n@compute`);
}

/** `y[j][i] = x[i][j]` for x `[rows, cols]`, with rows = p.blocks · p.heads and cols = p.dim. Bindings: x, y. */
export function transposeWgsl(dtype: Dtype): string {
  return kernel(
    dtype,
    ['read> x: array<DTYPE>', 'read_write> y: array<DTYPE>'],
    `  let rows = p.blocks * p.heads;
  if (id >= rows * p.dim) { return; }
  let j = id / rows;
  let i = id % rows;
  y[id] = x[i * p.dim + j];`,
  );
}

/**
 * The tokens' gradient from the rows' gradient `du`: token t of a sequence gets, from every block m
 * covering it, `du[m · heads + h][(t - start_m) · dim + c]`. Bindings: du, tables, dx.
 */
export function blockRowsBackwardWgsl(dtype: Dtype): string {
  return kernel(
    dtype,
    ['read> du: array<DTYPE>', 'read> tables: array<u32>', 'read_write> dx: array<DTYPE>'],
    `  if (id >= p.tokens * p.heads * p.dim) { return; }
  let t = id / (p.heads * p.dim);
  let h = (id / p.dim) % p.heads;
  let c = id % p.dim;
  let sq = sequenceOf(t);
  let pos = i32(t - sq.start);
  // Blocks ending at or after the token, up to the last one starting at or before it.
  let firstBlock = max(0, (pos - p.kernelSize + p.stride) / p.stride);
  let lastBlock = min(i32(sq.cmpLength) - 1, pos / p.stride);
  let width = u32(p.kernelSize) * p.dim;
  var sum = 0.0;
  for (var m = firstBlock; m <= lastBlock; m++) {
    let r = u32(pos - m * p.stride);
    sum += f32(du[((sq.cmpStart + u32(m)) * p.heads + h) * width + r * p.dim + c]);
  }
  dx[id] = ${dtype}(sum);`,
    true,
  );
}

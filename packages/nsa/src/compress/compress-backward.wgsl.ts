/**
 * Backward of mean compression: token t of a sequence receives `dcmp[m] / kernelSize` from every
 * compressed block m covering it, blocks `ceil((t - l + 1) / s) ..= floor(t / s)` below M. A
 * gather, so deterministic; tokens past the last block get 0.
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

/** WGSL of the mean-compression backward: one invocation per (token, head, element). */
export function compressMeanBackwardWgsl(dtype: Dtype): string {
  return `${enables({ f16: dtype === 'f16' })}
${paramsStruct(COMPRESS_BACKWARD_PARAMS)}
@group(0) @binding(0) var<storage, read> dcmp: array<${dtype}>;
@group(0) @binding(1) var<storage, read> tables: array<u32>;
@group(0) @binding(2) var<storage, read_write> dx: array<${dtype}>;
@group(0) @binding(3) var<uniform> p: Params;

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
    sum += f32(dcmp[(sq.cmpStart + u32(m)) * row + within]);
  }
  dx[id] = ${dtype}(sum / f32(p.kernelSize));
}
`;
}

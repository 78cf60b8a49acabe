/**
 * Compression of keys or values (NSA spec section 2): compressed block m pools the kernelSize
 * tokens from its start, `(1/l) Σ_r x[start + r]` (mean) or, with the Qwen variant's learned
 * parameters, `(1/l) Σ_r weight[r] · (x[start + r] + pe[r])` (weighted); accumulated in f32 and
 * stored in the input's dtype.
 */
import { type Dtype, enables, paramsStruct, WORKGROUP_INDEX_WGSL } from '@webattn/core';

/** Uniform parameters of the compression kernel. */
export const COMPRESS_PARAMS = [
  ['blocks', 'u32'],
  ['heads', 'u32'],
  ['dim', 'u32'],
  ['kernelSize', 'u32'],
] as const;

/** Invocations per workgroup. */
export const COMPRESS_WORKGROUP = 64;

/**
 * WGSL of the compression, one invocation per (block, head, element). Bindings: x, blockStart,
 * then weight `[l]` and pe `[l, dim]` when `weighted`, then out.
 */
export function compressWgsl(dtype: Dtype, weighted: boolean): string {
  return `${enables({ f16: dtype === 'f16' })}
${paramsStruct(COMPRESS_PARAMS)}
@group(0) @binding(0) var<storage, read> x: array<${dtype}>;
@group(0) @binding(1) var<storage, read> blockStart: array<u32>;
${
  weighted
    ? `@group(0) @binding(2) var<storage, read> weight: array<${dtype}>;
@group(0) @binding(3) var<storage, read> pe: array<${dtype}>;
@group(0) @binding(4) var<storage, read_write> out: array<${dtype}>;
@group(0) @binding(5) var<uniform> p: Params;`
    : `@group(0) @binding(2) var<storage, read_write> out: array<${dtype}>;
@group(0) @binding(3) var<uniform> p: Params;`
}

${WORKGROUP_INDEX_WGSL}

@compute @workgroup_size(${COMPRESS_WORKGROUP})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let id = workgroupIndex(wid, nwg) * ${COMPRESS_WORKGROUP}u + li;
  let row = p.heads * p.dim;
  if (id >= p.blocks * row) { return; }
  let m = id / row;
  let within = id % row;
  var sum = 0.0;
  for (var r = 0u; r < p.kernelSize; r++) {
    ${
      weighted
        ? 'sum += f32(weight[r]) * (f32(x[(blockStart[m] + r) * row + within]) + f32(pe[r * p.dim + within % p.dim]));'
        : 'sum += f32(x[(blockStart[m] + r) * row + within]);'
    }
  }
  out[id] = ${dtype}(sum / f32(p.kernelSize));
}
`;
}

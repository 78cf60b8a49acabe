/**
 * A non-finite scan: sets a flag word when any element of a tensor is inf or NaN. The tensor is
 * read as raw u32 words (two f16 or one f32 each), so it needs no f16 support; the flag is an
 * atomicOr on an integer, whose result does not depend on the order.
 */
import { type Dtype, paramsStruct, WORKGROUP_INDEX_WGSL } from '@webattn/core';

/** Invocations per workgroup of the scan. */
export const FINITE_WORKGROUP = 64;

/** Uniform parameters of the scan: the tensor's element count, and the bit it sets in the flag. */
export const FINITE_PARAMS = [
  ['count', 'u32'],
  ['bit', 'u32'],
] as const;

/** WGSL of the scan over one tensor of `dtype`: binding 0 the data words, 1 the flag. */
export function nonFiniteWgsl(dtype: Dtype): string {
  const perWord = dtype === 'f16' ? 2 : 1;
  const test =
    dtype === 'f16'
      ? `  var bad = (w & 0x7c00u) == 0x7c00u;
  if (id * 2u + 1u < p.count) { bad = bad || (w & 0x7c000000u) == 0x7c000000u; }`
      : '  let bad = (w & 0x7f800000u) == 0x7f800000u;';
  return `${paramsStruct(FINITE_PARAMS)}
@group(0) @binding(0) var<storage, read> data: array<u32>;
@group(0) @binding(1) var<storage, read_write> flag: array<atomic<u32>>;
@group(0) @binding(2) var<uniform> p: Params;

${WORKGROUP_INDEX_WGSL}

@compute @workgroup_size(${FINITE_WORKGROUP})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let id = workgroupIndex(wid, nwg) * ${FINITE_WORKGROUP}u + li;
  if (id * ${perWord}u >= p.count) { return; }
  let w = data[id];
${test}
  if (bad) { atomicOr(&flag[0], p.bit); }
}
`;
}

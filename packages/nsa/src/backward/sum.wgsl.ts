/**
 * Elementwise sum of two or three gradients (the branches' contributions), in f32, stored in their
 * dtype. The sum streams gigabytes at the reference config (dq at 65,536 tokens is 1 GiB per
 * term), so where the length allows each invocation adds one 16-byte vector of each term: eight
 * f16 (read as `vec4<u32>`) or four f32. Each element's terms are added in the same order either
 * way, so the vectors give the same bits as one element per invocation.
 */
import {
  type Dtype,
  enables,
  packVec4uWgsl,
  paramsStruct,
  unpackVec4uWgsl,
  WORKGROUP_INDEX_WGSL,
} from '@webattn/core';

/** Uniform parameters of the sum kernel: elements, or vectors where it adds vectors. */
export const SUM_PARAMS = [['count', 'u32']] as const;

/** Invocations per workgroup. */
export const SUM_WORKGROUP = 256;

/** The stored element type, and the sum of `names`' element `id` stored as it. */
function sumOf(dtype: Dtype, names: string[], vectors: boolean): { type: string; value: string } {
  if (!vectors) return { type: dtype, value: `${dtype}(${names.map((n) => `f32(${n}[id])`).join(' + ')})` };
  // Each vec4f part of the terms' vectors (two per f16 vector, one per f32), the terms added in order.
  const terms = names.map((n) => unpackVec4uWgsl(dtype, `${n}[id]`));
  const parts = terms[0]!.map((_, i) => terms.map((t) => t[i]).join(' + '));
  return { type: 'vec4<u32>', value: packVec4uWgsl(dtype, parts) };
}

/**
 * WGSL summing `terms` (2 or 3) arrays into `out`: one element per invocation, or one 16-byte
 * vector (`vectors`: eight f16 or four f32) of each.
 */
export function sumWgsl(dtype: Dtype, terms: number, vectors = false): string {
  const names = Array.from({ length: terms }, (_, i) => `x${i}`);
  const { type, value } = sumOf(dtype, names, vectors);
  return `${enables({ f16: dtype === 'f16' })}
${paramsStruct(SUM_PARAMS)}
${names.map((n, i) => `@group(0) @binding(${i}) var<storage, read> ${n}: array<${type}>;`).join('\n')}
@group(0) @binding(${terms}) var<storage, read_write> out: array<${type}>;
@group(0) @binding(${terms + 1}) var<uniform> p: Params;

${WORKGROUP_INDEX_WGSL}

@compute @workgroup_size(${SUM_WORKGROUP})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let id = workgroupIndex(wid, nwg) * ${SUM_WORKGROUP}u + li;
  if (id >= p.count) { return; }
  out[id] = ${value};
}
`;
}

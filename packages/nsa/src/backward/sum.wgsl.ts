/** Elementwise sum of two or three gradients (the branches' contributions), in f32, stored in their dtype. */
import { type Dtype, enables, paramsStruct, WORKGROUP_INDEX_WGSL } from '@webattn/core';

/** Uniform parameters of the sum kernel. */
export const SUM_PARAMS = [['count', 'u32']] as const;

/** Invocations per workgroup. */
export const SUM_WORKGROUP = 64;

/** WGSL summing `terms` (2 or 3) arrays into `out`. */
export function sumWgsl(dtype: Dtype, terms: number): string {
  const names = Array.from({ length: terms }, (_, i) => `x${i}`);
  return `${enables({ f16: dtype === 'f16' })}
${paramsStruct(SUM_PARAMS)}
${names.map((n, i) => `@group(0) @binding(${i}) var<storage, read> ${n}: array<${dtype}>;`).join('\n')}
@group(0) @binding(${terms}) var<storage, read_write> out: array<${dtype}>;
@group(0) @binding(${terms + 1}) var<uniform> p: Params;

${WORKGROUP_INDEX_WGSL}

@compute @workgroup_size(${SUM_WORKGROUP})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let id = workgroupIndex(wid, nwg) * ${SUM_WORKGROUP}u + li;
  if (id >= p.count) { return; }
  out[id] = ${dtype}(${names.map((n) => `f32(${n}[id])`).join(' + ')});
}
`;
}

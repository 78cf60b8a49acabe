/**
 * The gated combine (NSA spec section 6): `o = σ(g0)·o_cmp + σ(g1)·o_sel + σ(g2)·o_win`, the
 * sigmoids and sums in f32, the result in the inputs' dtype. A missing compressed branch (no
 * sequence long enough for a block) contributes 0.
 */
import { type Dtype, enables, paramsStruct, WORKGROUP_INDEX_WGSL } from '@webattn/core';

/** Uniform parameters of the combine kernel. */
export const COMBINE_PARAMS = [
  ['rows', 'u32'],
  ['dv', 'u32'],
] as const;

/** Invocations per workgroup. */
export const COMBINE_WORKGROUP = 64;

/** The logistic sigmoid, never exponentiating a large positive number: no overflow for any finite logit. */
export const SIGMOID_WGSL = `fn sigmoid(x: f32) -> f32 {
  let e = exp(-abs(x));
  return select(e / (1.0 + e), 1.0 / (1.0 + e), x >= 0.0);
}`;

/** WGSL of the combine: one invocation per output element; `withCompressed` binds the compressed branch. */
export function combineWgsl(dtype: Dtype, withCompressed: boolean): string {
  const cmp = withCompressed ? 'sigmoid(f32(gate[row * 3u])) * f32(ocmp[id]) + ' : '';
  return `${enables({ f16: dtype === 'f16' })}
${paramsStruct(COMBINE_PARAMS)}
@group(0) @binding(0) var<storage, read> gate: array<${dtype}>;
@group(0) @binding(1) var<storage, read> osel: array<${dtype}>;
@group(0) @binding(2) var<storage, read> owin: array<${dtype}>;
@group(0) @binding(3) var<storage, read_write> o: array<${dtype}>;
${withCompressed ? `@group(0) @binding(4) var<storage, read> ocmp: array<${dtype}>;` : ''}
@group(0) @binding(${withCompressed ? 5 : 4}) var<uniform> p: Params;

${WORKGROUP_INDEX_WGSL}

${SIGMOID_WGSL}

@compute @workgroup_size(${COMBINE_WORKGROUP})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let id = workgroupIndex(wid, nwg) * ${COMBINE_WORKGROUP}u + li;
  if (id >= p.rows * p.dv) { return; }
  let row = id / p.dv;
  o[id] = ${dtype}(${cmp}sigmoid(f32(gate[row * 3u + 1u])) * f32(osel[id]) + sigmoid(f32(gate[row * 3u + 2u])) * f32(owin[id]));
}
`;
}

/**
 * The gated combine (NSA spec section 6): `o = σ(g0)·o_cmp + σ(g1)·o_sel + σ(g2)·o_win`, the
 * sigmoids and sums in f32, the result in the inputs' dtype. A missing compressed branch (no
 * sequence long enough for a block) contributes 0.
 */
import {
  type Dtype,
  enables,
  packVec4uWgsl,
  paramsStruct,
  unpackVec4uWgsl,
  vec4uElements,
  WORKGROUP_INDEX_WGSL,
} from '@webattn/core';

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

/**
 * WGSL of the combine. Where `dv` is a multiple of {@link vec4uElements} (`vectorized`),
 * each invocation moves 16 bytes of each tensor, read as `vec4<u32>` and unpacked to f32 (16-byte
 * loads are what reach the memory's bandwidth; one f16 per invocation reached a fifth of it);
 * otherwise one invocation per output element. `withCompressed` binds the compressed branch.
 */
export function combineWgsl(dtype: Dtype, withCompressed: boolean, vectorized: boolean): string {
  const element = vectorized ? 'vec4<u32>' : dtype;
  const per = vectorized ? vec4uElements(dtype) : 1;
  const bindings = `@group(0) @binding(0) var<storage, read> gate: array<${dtype}>;
@group(0) @binding(1) var<storage, read> osel: array<${element}>;
@group(0) @binding(2) var<storage, read> owin: array<${element}>;
@group(0) @binding(3) var<storage, read_write> o: array<${element}>;
${withCompressed ? `@group(0) @binding(4) var<storage, read> ocmp: array<${element}>;` : ''}
@group(0) @binding(${withCompressed ? 5 : 4}) var<uniform> p: Params;`;
  // Gate logits in the order the gate tensor holds them.
  const branches = [...(withCompressed ? ['cmp'] : []), 'sel', 'win'];
  const gateIndex: Record<string, number> = { cmp: 0, sel: 1, win: 2 };
  const weigh = (value: (output: string) => string) =>
    branches.map((b) => `g${b} * ${value(`o${b}[id]`)}`).join(' + ');
  // Vectorised: the weighted sum of each vec4f part (one per f32 vector, two per f16 one).
  const part = (i: number) => weigh((x) => unpackVec4uWgsl(dtype, x)[i]!);
  const body = vectorized
    ? `o[id] = ${packVec4uWgsl(dtype, dtype === 'f16' ? [part(0), part(1)] : [part(0)])};`
    : `o[id] = ${dtype}(${weigh((x) => `f32(${x})`)});`;
  return `${enables({ f16: dtype === 'f16' })}
${paramsStruct(COMBINE_PARAMS)}
${bindings}

${WORKGROUP_INDEX_WGSL}

${SIGMOID_WGSL}

@compute @workgroup_size(${COMBINE_WORKGROUP})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let id = workgroupIndex(wid, nwg) * ${COMBINE_WORKGROUP}u + li;
  let perRow = p.dv / ${per}u;
  if (id >= p.rows * perRow) { return; }
  let row = id / perRow;
${branches.map((b) => `  let g${b} = sigmoid(f32(gate[row * 3u + ${gateIndex[b]}u]));`).join('\n')}
  ${body}
}
`;
}

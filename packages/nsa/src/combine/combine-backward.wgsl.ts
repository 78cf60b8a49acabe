/**
 * Backward of the gated combine (NSA spec section 6) for one branch i:
 * `dBranch_i = dO · σ(g_i)` and `dg_i = σ(g_i)(1 - σ(g_i)) · <dO, branch_i>`, in f32. LANES
 * invocations share a (token, head) row, reading its columns in coalesced strides, and add their
 * parts of the dot products in a fixed tree (the same bits every run). One launch per branch keeps
 * each within the storage buffers every adapter allows.
 *
 * It also writes the branch's `delta = <dBranch_i, branch_i>` per row, with dBranch_i as stored
 * (rounded to the dtype), which the branch's attention backward would otherwise compute in a pass
 * of its own over the two tensors (a gigabyte each at the reference config). Row (token t, head h)
 * goes to `((t / S) · heads + h) · S + t % S` for the launch's `deltaStride` S: token-major rows
 * with S = 1 (the selected attention's statistics), the flash kernels' lse layout with S = the
 * layout's lse head stride (n for a dense batch, the packed token count otherwise).
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
import { SIGMOID_WGSL } from './combine.wgsl.js';

/** Uniform parameters of the combine backward; `branch` is the gate index (0 compressed, 1 selected, 2 window). */
export const COMBINE_BACKWARD_PARAMS = [
  ['rows', 'u32'],
  ['dv', 'u32'],
  ['branch', 'u32'],
  ['heads', 'u32'],
  ['deltaStride', 'u32'],
] as const;

/** A vec4f expression's values as the dtype stores them, back in f32. */
function roundVec4(dtype: Dtype, x: string): string {
  return dtype === 'f16' ? `vec4f(vec4<f16>(${x}))` : x;
}

/** Invocations per workgroup. */
export const COMBINE_BACKWARD_WORKGROUP = 64;

/** Invocations per row. */
const LANES = 16;

/** Rows per workgroup. */
export const COMBINE_BACKWARD_ROWS = COMBINE_BACKWARD_WORKGROUP / LANES;

/**
 * WGSL of one branch's combine backward. Bindings: gate, dO, the branch's output, its gradient,
 * the gate gradient (this branch's column written; with no branch output, `withBranch` false, the
 * column is zeroed, and only gate and dgate are bound), delta, then the parameters. `vectorized` (dv a multiple of
 * {@link vec4uElements}): each lane moves 16 bytes of dO, the branch and its gradient per
 * step, as the forward does.
 */
export function combineBackwardWgsl(dtype: Dtype, withBranch: boolean, vectorized: boolean): string {
  const element = vectorized ? 'vec4<u32>' : dtype;
  const per = vectorized ? vec4uElements(dtype) : 1;
  let step: string;
  if (vectorized) {
    const g = unpackVec4uWgsl(dtype, 'dout[at]');
    const b = unpackVec4uWgsl(dtype, 'branch[at]');
    step = `      let at = row * perRow + e;
${g.map((x, i) => `      let g${i} = ${x};`).join('\n')}
${b.map((x, i) => `      let b${i} = ${x};`).join('\n')}
${g.map((_, i) => `      let d${i} = ${roundVec4(dtype, `g${i} * s`)};`).join('\n')}
      inner += ${g.map((_, i) => `dot(g${i}, b${i})`).join(' + ')};
      rowDelta += ${g.map((_, i) => `dot(d${i}, b${i})`).join(' + ')};
      dbranch[at] = ${packVec4uWgsl(
        dtype,
        g.map((_, i) => `d${i}`),
      )};`;
  } else {
    step = `      let at = row * perRow + e;
      let g = f32(dout[at]);
      let b = f32(branch[at]);
      let d = ${dtype}(g * s);
      inner += g * b;
      rowDelta += f32(d) * b;
      dbranch[at] = d;`;
  }
  return `${enables({ f16: dtype === 'f16' })}
${paramsStruct(COMBINE_BACKWARD_PARAMS)}
@group(0) @binding(0) var<storage, read> gate: array<${dtype}>;
${
  withBranch
    ? `@group(0) @binding(1) var<storage, read> dout: array<${element}>;
@group(0) @binding(2) var<storage, read> branch: array<${element}>;
@group(0) @binding(3) var<storage, read_write> dbranch: array<${element}>;
@group(0) @binding(4) var<storage, read_write> dgate: array<${dtype}>;
@group(0) @binding(5) var<storage, read_write> delta: array<f32>;
@group(0) @binding(6) var<uniform> p: Params;`
    : `@group(0) @binding(1) var<storage, read_write> dgate: array<${dtype}>;
@group(0) @binding(2) var<uniform> p: Params;`
}

${WORKGROUP_INDEX_WGSL}

${SIGMOID_WGSL}

const LANES = ${LANES}u;
// Each lane's parts of <dO, branch> and of delta.
var<workgroup> partial: array<vec2f, ${COMBINE_BACKWARD_WORKGROUP}>;

@compute @workgroup_size(${COMBINE_BACKWARD_WORKGROUP})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let row = workgroupIndex(wid, nwg) * ${COMBINE_BACKWARD_ROWS}u + li / LANES;
  let lane = li % LANES;
  let valid = row < p.rows;
${
  withBranch
    ? `  var s = 0.0;
  // This lane's part of <dO, branch> (named so as not to hide the builtin dot).
  var inner = 0.0;
  var rowDelta = 0.0;
  if (valid) {
    s = sigmoid(f32(gate[row * 3u + p.branch]));
    let perRow = p.dv / ${per}u;
    for (var e = lane; e < perRow; e += LANES) {
${step}
    }
  }
  partial[li] = vec2f(inner, rowDelta);
  workgroupBarrier();
  for (var half = LANES / 2u; half > 0u; half /= 2u) {
    if (lane < half) { partial[li] += partial[li + half]; }
    workgroupBarrier();
  }
  if (valid && lane == 0u) {
    dgate[row * 3u + p.branch] = ${dtype}(s * (1.0 - s) * partial[li].x);
    let t = row / p.heads;
    let S = p.deltaStride;
    delta[((t / S) * p.heads + row % p.heads) * S + t % S] = partial[li].y;
  }`
    : `  if (valid && lane == 0u) { dgate[row * 3u + p.branch] = ${dtype}(0.0 * f32(gate[row * 3u])); }`
}
}
`;
}

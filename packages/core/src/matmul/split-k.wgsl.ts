/**
 * Matmul for few output rows (decode-style x·W): each output element is one subgroup's dot product,
 * its lanes striding over K and summing with subgroupAdd. Coalesced when B is transposed ([N, K],
 * the usual layout of a weight). Works for any subgroup size: a workgroup owns a fixed number of
 * outputs and its subgroups, however many there are, take them in turn. The `subgroups` tier.
 */

import { WORKGROUP_INDEX_WGSL } from '../dispatch.js';
import type { Dtype } from '../dtype.js';
import { paramsStruct } from '../params.js';
import { enables } from '../wgsl.js';
import { bIndex, MATMUL_PARAMS } from './layout.js';

/** Outputs each workgroup of {@link splitKMatmulWgsl} computes. */
export const SPLIT_K_OUTPUTS = 16;

/** WGSL for the subgroup split-K matmul over `dtype` storage. */
export function splitKMatmulWgsl(config: { dtype: Dtype; transposeB: boolean }): string {
  const T = config.dtype;
  return `${enables({ f16: T === 'f16', subgroups: true })}
${paramsStruct(MATMUL_PARAMS)}
@group(0) @binding(0) var<storage, read> a: array<${T}>;
@group(0) @binding(1) var<storage, read> b: array<${T}>;
@group(0) @binding(2) var<storage, read_write> c: array<${T}>;
@group(0) @binding(3) var<uniform> p: Params;

const OUTPUTS = ${SPLIT_K_OUTPUTS}u;

${WORKGROUP_INDEX_WGSL}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(subgroup_invocation_id) lane: u32, @builtin(subgroup_size) sgSize: u32,
        @builtin(subgroup_id) sg: u32, @builtin(num_subgroups) numSg: u32) {
  let group = workgroupIndex(wid, nwg);
  if (group >= p.items) { return; }
  let total = p.batch * p.M * p.N;
  for (var o = sg; o < OUTPUTS; o += numSg) {
    let out = group * OUTPUTS + o;
    if (out < total) {
      let batch = out / (p.M * p.N);
      let row = (out / p.N) % p.M;
      let col = out % p.N;
      let aBase = batch * p.M * p.K + row * p.K;
      let bBase = batch * p.batchStrideB;
      var sum = 0.0;
      for (var k = lane; k < p.K; k += sgSize) {
        sum = fma(f32(a[aBase + k]), f32(b[${bIndex(config.transposeB, 'k', 'col')}]), sum);
      }
      let dot = subgroupAdd(sum);
      if (lane == 0u) { c[out] = ${T}(dot); }
    }
  }
}
`;
}

/**
 * Shared-memory tiled matmul, one 64x64 output tile per workgroup of 16x16 threads, each thread a
 * 4x4 block strided by 16 so neighbouring threads read neighbouring shared-memory words. Needs no
 * optional feature: it is the `portable` tier (f32 storage) and the `f16` tier (f16 storage).
 */

import { WORKGROUP_INDEX_WGSL } from '../dispatch.js';
import type { Dtype } from '../dtype.js';
import { paramsStruct } from '../params.js';
import { enables } from '../wgsl.js';
import { bIndex, MATMUL_PARAMS, MATMUL_TILE_WGSL } from './layout.js';

/** Output tile edge of {@link tiledMatmulWgsl}. */
export const TILED_TILE = 64;

/** WGSL for the tiled matmul over `dtype` storage. */
export function tiledMatmulWgsl(config: { dtype: Dtype; transposeB: boolean }): string {
  const T = config.dtype;
  const TK = 16;
  // Element e of the B tile: along N fastest for row-major B, along K fastest for transposed B, so
  // that consecutive threads read consecutive global addresses either way.
  const bTileCoords = config.transposeB
    ? `let kk = e % ${TK}u; let cc = e / ${TK}u;`
    : `let kk = e / ${TILED_TILE}u; let cc = e % ${TILED_TILE}u;`;
  return `${enables({ f16: T === 'f16' })}
${paramsStruct(MATMUL_PARAMS)}
@group(0) @binding(0) var<storage, read> a: array<${T}>;
@group(0) @binding(1) var<storage, read> b: array<${T}>;
@group(0) @binding(2) var<storage, read_write> c: array<${T}>;
@group(0) @binding(3) var<uniform> p: Params;

const TM = ${TILED_TILE}u;
const TN = ${TILED_TILE}u;
const TK = ${TK}u;
var<workgroup> As: array<f32, ${TILED_TILE * TK}>; // [TM][TK]
var<workgroup> Bs: array<f32, ${TK * TILED_TILE}>; // [TK][TN]

${WORKGROUP_INDEX_WGSL}

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_id) lid: vec3u, @builtin(local_invocation_index) li: u32) {
${MATMUL_TILE_WGSL}
  var acc: array<array<f32, 4>, 4>;
  for (var i = 0u; i < 4u; i++) { for (var j = 0u; j < 4u; j++) { acc[i][j] = 0.0; } }
  for (var k0 = 0u; k0 < p.K; k0 += TK) {
    for (var s = 0u; s < 4u; s++) {
      let e = li + s * 256u;
      let r = e / TK;
      let ka = e % TK;
      var va = 0.0;
      if (row0 + r < p.M && k0 + ka < p.K) { va = f32(a[aBase + (row0 + r) * p.K + k0 + ka]); }
      As[e] = va;
      ${bTileCoords}
      var vb = 0.0;
      if (k0 + kk < p.K && col0 + cc < p.N) { vb = f32(b[${bIndex(config.transposeB, 'k0 + kk', 'col0 + cc')}]); }
      Bs[kk * TN + cc] = vb;
    }
    workgroupBarrier();
    for (var kk = 0u; kk < TK; kk++) {
      var av: array<f32, 4>;
      for (var i = 0u; i < 4u; i++) { av[i] = As[(lid.y + 16u * i) * TK + kk]; }
      for (var j = 0u; j < 4u; j++) {
        let bv = Bs[kk * TN + lid.x + 16u * j];
        for (var i = 0u; i < 4u; i++) { acc[i][j] = fma(av[i], bv, acc[i][j]); }
      }
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < 4u; i++) {
    let r = row0 + lid.y + 16u * i;
    for (var j = 0u; j < 4u; j++) {
      let col = col0 + lid.x + 16u * j;
      if (r < p.M && col < p.N) { c[cBase + r * p.N + col] = ${T}(acc[i][j]); }
    }
  }
}
`;
}

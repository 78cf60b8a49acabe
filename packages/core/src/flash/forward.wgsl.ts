/**
 * Flash-attention forward, one thread per query row: K and V tiles staged in workgroup memory,
 * scores and the online softmax in registers, only the key tiles the mask leaves visible to the
 * workgroup's rows are visited. Needs no optional feature (f16 storage needs `shader-f16`).
 */

import { WORKGROUP_INDEX_WGSL } from '../dispatch.js';
import type { Dtype } from '../dtype.js';
import { paramsStruct } from '../params.js';
import { enables } from '../wgsl.js';
import { FLASH_PARAMS, MASKED, queryTileWgsl, SEQUENCE_WGSL, stageKeyTileWgsl } from './common.wgsl.js';

/** Generation parameters of the row-per-thread flash kernels. */
export interface RowKernelConfig {
  dtype: Dtype;
  d: number;
  dv: number;
  /** Query rows (threads) per workgroup. */
  rows: number;
  /** Key rows per staged tile. */
  tile: number;
}

/**
 * Constants of a row kernel and its two staged tiles: `a` holds TILE rows of width D, `b` of DV.
 */
export function rowKernelDeclarations(c: RowKernelConfig, a: string, b: string): string {
  return `const D = ${c.d}u;
const DV = ${c.dv}u;
const ROWS = ${c.rows}u;
const TILE = ${c.tile}u;
var<workgroup> ${a}: array<f32, ${c.tile * c.d}>;
var<workgroup> ${b}: array<f32, ${c.tile * c.dv}>;`;
}

/** WGSL for the forward pass: writes o (dtype) and lse (f32, natural log). */
export function flashForwardWgsl(c: RowKernelConfig): string {
  const T = c.dtype;
  return `${enables({ f16: T === 'f16' })}
${paramsStruct(FLASH_PARAMS)}
@group(0) @binding(0) var<storage, read> q: array<${T}>;
@group(0) @binding(1) var<storage, read> k: array<${T}>;
@group(0) @binding(2) var<storage, read> v: array<${T}>;
@group(0) @binding(3) var<storage, read> launch: array<u32>;
@group(0) @binding(4) var<storage, read_write> o: array<${T}>;
@group(0) @binding(5) var<storage, read_write> lse: array<f32>;
@group(0) @binding(6) var<uniform> p: Params;

${rowKernelDeclarations(c, 'Ks', 'Vs')}

${SEQUENCE_WGSL}

${WORKGROUP_INDEX_WGSL}

@compute @workgroup_size(${c.rows})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
${queryTileWgsl('ROWS', true)}
  let i = first + i32(li);
  let live = i <= last;
  var qr: array<f32, ${c.d}>;
  var acc: array<f32, ${c.dv}>;
  for (var c = 0u; c < DV; c++) { acc[c] = 0.0; }
  if (live) {
    let base = ((sp.qStart + u32(i)) * p.hq + h) * D;
    for (var c = 0u; c < D; c++) { qr[c] = f32(q[base + c]) * p.scale; }
  }
  var m = ${MASKED};
  var l = 0.0;
  let range = splitRange(keyRange(sp, first, last), split);
  for (var k0 = range.x; k0 < range.y; k0 += i32(TILE)) {
    workgroupBarrier();
    ${stageKeyTileWgsl('Ks', 'k', 'ROWS', 'f32')}
    ${stageKeyTileWgsl('Vs', 'v', 'ROWS', 'f32')}
    workgroupBarrier();
    if (live) {
      var s: array<f32, ${c.tile}>;
      var tileMax = ${MASKED};
      for (var jj = 0u; jj < TILE; jj++) {
        let j = k0 + i32(jj);
        s[jj] = ${MASKED};
        if (j < range.y && visible(sp, i, j)) {
          var dot = 0.0;
          for (var c = 0u; c < D; c++) { dot = fma(qr[c], Ks[jj * D + c], dot); }
          s[jj] = dot;
          tileMax = max(tileMax, dot);
        }
      }
      if (tileMax > ${MASKED}) {
        let mNew = max(m, tileMax);
        let correction = exp(m - mNew);
        l *= correction;
        for (var c = 0u; c < DV; c++) { acc[c] *= correction; }
        for (var jj = 0u; jj < TILE; jj++) {
          let pj = exp(s[jj] - mNew);
          l += pj;
          for (var c = 0u; c < DV; c++) { acc[c] = fma(pj, Vs[jj * DV + c], acc[c]); }
        }
        m = mNew;
      }
    }
  }
  if (live) {
    let base = ((sp.qStart + u32(i) + split * p.splitRows) * p.hq + h) * DV;
    // A row that sees no key: o = 0, lse = -inf (never 0/0).
    let inv = select(0.0, 1.0 / l, l > 0.0);
    for (var c = 0u; c < DV; c++) { o[base + c] = ${T}(acc[c] * inv); }
    lse[split * p.lseSplit + sp.lseBase + h * p.lseHeadStride + u32(i)] = select(p.negInf, m + log(l), l > 0.0);
  }
}
`;
}

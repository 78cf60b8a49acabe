/**
 * Kernel 3 of the chunkwise lightning attention, and of its backward: per chunk, the intra-chunk
 * quadratic part under the decay mask plus the part carried by the state,
 *
 *     out_r = scale · Σ_c D_rc (x_r · y_c) z_c + stateScale · λ^(e_r) x_r M
 *
 * with `D_rc = λ^|r-c|` on one side of the diagonal (c <= r forward, c >= r reverse) and 0 on the
 * other, and M the `[dk, dv]` state of the chunk (read transposed when x has dv entries).
 *
 * | output | x  | y  | z  | M              | direction | e_r         | stateScale |
 * | o      | q  | k  | v  | S entering     | forward   | r + 1       | scale      |
 * | dq     | dO | v  | k  | S enteringᵀ    | forward   | r + 1       | scale      |
 * | dk     | v  | dO | q  | dS leavingᵀ    | reverse   | len - 1 - r | 1          |
 * | dv     | k  | q  | dO | dS leaving     | reverse   | len - 1 - r | 1          |
 *
 * dk and dv belong to a key/value head and sum over the `group` query heads that read it (each with
 * its own decay and state), in one loop inside the workgroup, so no atomics are needed.
 *
 * One workgroup per (chunk, output head, 64 output columns, 32 rows of the chunk); 256 invocations,
 * each holding 2 rows x 4 columns of the output and 2 rows x chunk/16 columns of the scores, of
 * which only those on the live side of the diagonal are computed. The scores go through workgroup
 * memory between the two products.
 */
import { type Dtype, enables, paramsStruct, WORKGROUP_INDEX_WGSL } from '@webattn/core';
import { CHECK_F16_WGSL, DECAY_OF_WGSL, DECAY_POW_WGSL, storeWgsl } from './common.wgsl.js';

/** Uniform parameters of the chunk output kernel. */
export const CHUNK_OUTPUT_PARAMS = [
  // Chunks of this launch, from chunkBase on; the bound states hold exactly theirs.
  ['chunks', 'u32'],
  ['outHeads', 'u32'],
  ['yzHeads', 'u32'],
  ['hq', 'u32'],
  ['dx', 'u32'],
  ['dz', 'u32'],
  ['group', 'u32'],
  ['yzDiv', 'u32'],
  ['chunkTable', 'u32'],
  ['zTiles', 'u32'],
  ['scale', 'f32'],
  ['stateScale', 'f32'],
  ['chunkBase', 'u32'],
  ['decayTable', 'u32'],
] as const;

/** Generation parameters of the chunk output kernel. */
export interface ChunkOutputConfig {
  /** Storage dtype of x, y, z and the output. */
  dtype: Dtype;
  /** Tokens per chunk, a multiple of 32. */
  chunkSize: number;
  /** Anti-causal (dk, dv) rather than causal (o, dq). */
  reverse: boolean;
  /** Read M as `[dz, dx]` (dq, dk) rather than `[dx, dz]` (o, dv). */
  transposeState: boolean;
  /** Flag f16 outputs that overflow (binding `overflow`). */
  checkFinite: boolean;
}

/** WGSL of the chunk output kernel. */
export function chunkOutputWgsl(c: ChunkOutputConfig): string {
  const C = c.chunkSize;
  const perThread = C / 16;
  const T = c.dtype;
  const valid = c.reverse ? 'col >= row' : 'col <= row';
  const distance = c.reverse ? 'col - row' : 'row - col';
  const stateExponent = c.reverse ? 'len - 1u - lr' : 'lr + 1u';
  const mIndex = c.transposeState ? 'zc * p.dx + a' : 'a * p.dz + zc';
  return `${enables({ f16: T === 'f16' })}
${paramsStruct(CHUNK_OUTPUT_PARAMS)}
@group(0) @binding(0) var<storage, read> x: array<${T}>;
@group(0) @binding(1) var<storage, read> y: array<${T}>;
@group(0) @binding(2) var<storage, read> z: array<${T}>;
@group(0) @binding(3) var<storage, read> states: array<f32>;
@group(0) @binding(4) var<storage, read> table: array<u32>;
@group(0) @binding(5) var<storage, read_write> out: array<${T}>;
${c.checkFinite ? '@group(0) @binding(6) var<storage, read_write> overflow: array<atomic<u32>>;' : ''}
@group(0) @binding(${c.checkFinite ? 7 : 6}) var<uniform> p: Params;

var<workgroup> xs: array<f32, 512>;
var<workgroup> ys: array<f32, ${Math.max(C * 16, 1024)}>;
var<workgroup> ss: array<f32, ${32 * C}>;

${WORKGROUP_INDEX_WGSL}
${DECAY_POW_WGSL}
${DECAY_OF_WGSL}
${c.checkFinite ? CHECK_F16_WGSL : ''}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let wg = workgroupIndex(wid, nwg);
  if (wg >= p.chunks * p.outHeads * p.zTiles * ${C / 32}u) { return; }
  let rb = wg % ${C / 32}u;
  var rest = wg / ${C / 32}u;
  let zt = rest % p.zTiles;
  rest = rest / p.zTiles;
  let ho = rest % p.outHeads;
  let chunk = p.chunkBase + rest / p.outHeads;
  let start = table[p.chunkTable + 2u * chunk];
  let len = table[p.chunkTable + 2u * chunk + 1u];
  let tx = li % 16u;
  let ty = li / 16u;
  var o = array<f32, 8>();
  // Score columns this row block can see: at or below the diagonal forward, at or above it reversed.
  let mLo = ${c.reverse ? 'rb * 2u' : '0u'};
  let mHi = ${c.reverse ? `${perThread}u` : `min(${perThread}u, rb * 2u + 2u)`};
  for (var g = 0u; g < p.group; g++) {
    let hs = ho * p.group + g;
    let hyz = hs / p.yzDiv;
    let lam = decayOf(hs);
    var s = array<f32, ${2 * perThread}>();
    for (var a0 = 0u; a0 < p.dx; a0 += 16u) {
      for (var e = li; e < 512u; e += 256u) {
        let lr = rb * 32u + e / 16u;
        let a = a0 + e % 16u;
        var v = 0.0;
        if (lr < len && a < p.dx) { v = f32(x[((start + lr) * p.outHeads + ho) * p.dx + a]); }
        xs[e] = v;
      }
      for (var e = li; e < ${C * 16}u; e += 256u) {
        let lc = e / 16u;
        let a = a0 + e % 16u;
        var v = 0.0;
        if (lc < len && a < p.dx) { v = f32(y[((start + lc) * p.yzHeads + hyz) * p.dx + a]); }
        ys[e] = v;
      }
      workgroupBarrier();
      for (var kk = 0u; kk < 16u; kk++) {
        let x0 = xs[(ty * 2u) * 16u + kk];
        let x1 = xs[(ty * 2u + 1u) * 16u + kk];
        for (var m = mLo; m < mHi; m++) {
          let yv = ys[(tx + 16u * m) * 16u + kk];
          s[m] += x0 * yv;
          s[${perThread}u + m] += x1 * yv;
        }
      }
      workgroupBarrier();
    }
    for (var i = 0u; i < 2u; i++) {
      let row = rb * 32u + ty * 2u + i;
      for (var m = 0u; m < ${perThread}u; m++) {
        let col = tx + 16u * m;
        var weight = 0.0;
        if (row < len && col < len && ${valid}) { weight = p.scale * decayPow(lam, ${distance}); }
        ss[(ty * 2u + i) * ${C}u + col] = weight * s[i * ${perThread}u + m];
      }
    }
    for (var c0 = mLo * 16u; c0 < mHi * 16u; c0 += 16u) {
      for (var e = li; e < 1024u; e += 256u) {
        let lc = c0 + e / 64u;
        let zc = zt * 64u + e % 64u;
        var v = 0.0;
        if (lc < len && zc < p.dz) { v = f32(z[((start + lc) * p.yzHeads + hyz) * p.dz + zc]); }
        ys[e] = v;
      }
      workgroupBarrier();
      for (var cc = 0u; cc < 16u; cc++) {
        let s0 = ss[(ty * 2u) * ${C}u + c0 + cc];
        let s1 = ss[(ty * 2u + 1u) * ${C}u + c0 + cc];
        let zv = vec4f(ys[cc * 64u + tx * 4u], ys[cc * 64u + tx * 4u + 1u], ys[cc * 64u + tx * 4u + 2u], ys[cc * 64u + tx * 4u + 3u]);
        for (var q = 0u; q < 4u; q++) {
          o[q] += s0 * zv[q];
          o[4u + q] += s1 * zv[q];
        }
      }
      workgroupBarrier();
    }
    let sBase = ((chunk - p.chunkBase) * p.hq + hs) * p.dx * p.dz;
    for (var a0 = 0u; a0 < p.dx; a0 += 16u) {
      for (var e = li; e < 512u; e += 256u) {
        let lr = rb * 32u + e / 16u;
        let a = a0 + e % 16u;
        var v = 0.0;
        if (lr < len && a < p.dx) {
          v = p.stateScale * decayPow(lam, ${stateExponent}) * f32(x[((start + lr) * p.outHeads + ho) * p.dx + a]);
        }
        xs[e] = v;
      }
      for (var e = li; e < 1024u; e += 256u) {
        let a = a0 + e / 64u;
        let zc = zt * 64u + e % 64u;
        var mv = 0.0;
        if (a < p.dx && zc < p.dz) { mv = states[sBase + ${mIndex}]; }
        ys[e] = mv;
      }
      workgroupBarrier();
      for (var kk = 0u; kk < 16u; kk++) {
        let x0 = xs[(ty * 2u) * 16u + kk];
        let x1 = xs[(ty * 2u + 1u) * 16u + kk];
        let mv = vec4f(ys[kk * 64u + tx * 4u], ys[kk * 64u + tx * 4u + 1u], ys[kk * 64u + tx * 4u + 2u], ys[kk * 64u + tx * 4u + 3u]);
        for (var q = 0u; q < 4u; q++) {
          o[q] += x0 * mv[q];
          o[4u + q] += x1 * mv[q];
        }
      }
      workgroupBarrier();
    }
  }
  for (var i = 0u; i < 8u; i++) {
    let lr = rb * 32u + ty * 2u + i / 4u;
    let zc = zt * 64u + tx * 4u + i % 4u;
    if (lr < len && zc < p.dz) {
      let value = o[i];
      ${storeWgsl('out[((start + lr) * p.outHeads + ho) * p.dz + zc]', 'value', T, c.checkFinite)}
    }
  }
}
`;
}

/**
 * Kernel 3 of the chunkwise lightning attention on tensor cores (subgroup matrices, 16x16x16 f16
 * operands, f32 accumulation): the same output as {@link chunkOutputWgsl} (o, dq, dk or dv; see its
 * table) for a chunk of 64 tokens and 64 output columns per workgroup.
 *
 * Four subgroups each own one 16-row fragment of the chunk and all four 16-column output fragments.
 * (A) scores `X Yᵀ` over dx in 16-wide slices staged in workgroup memory (Y loaded column-major as
 * the right operand), only the fragments on the live side of the diagonal; (B) per 16 columns of
 * the chunk, the score fragment goes through workgroup memory once, where its lanes apply the decay
 * mask and the scale and round it to f16, and multiplies those 16 rows of Z; (C) `(λ^e x) M` with
 * the chunk's f32 state rounded to f16 16 rows at a time. Workgroup memory: 13 KiB. Every rounding to f16 is checked against f16's range when `checkFinite` (an
 * oversized state or score raises the overflow flag instead of turning silently into inf).
 */
import { type Dtype, enables, paramsStruct, WORKGROUP_INDEX_WGSL } from '@webattn/core';
import { CHUNK_OUTPUT_PARAMS } from './chunk-output.wgsl.js';
import { CHECK_F16_WGSL, DECAY_OF_WGSL, DECAY_POW_WGSL, stateAccessWgsl, storeWgsl } from './common.wgsl.js';

/** Chunk length of the tensor-core kernel. */
export const MATRIX_CHUNK = 64;
/** Output columns per workgroup of the tensor-core kernel. */
export const MATRIX_COLUMNS = 64;

/** Generation parameters of the tensor-core chunk output kernel. */
export interface ChunkOutputMatrixConfig {
  /** Storage dtype (f16 for the subgroup-matrix tier). */
  dtype: Dtype;
  /** Anti-causal (dk, dv) rather than causal (o, dq). */
  reverse: boolean;
  /** Read M as `[dz, dx]` (dq, dk) rather than `[dx, dz]` (o, dv). */
  transposeState: boolean;
  /** Flag f16 roundings and outputs that overflow (binding `overflow`). */
  checkFinite: boolean;
  /** Whether the states span two bindings (see {@link stateAccessWgsl}). */
  splitStates: boolean;
  /** Subgroup size the kernel is built for. */
  subgroupSize: number;
  /** Pin it with `@subgroup_size`. */
  pinSubgroupSize: boolean;
}

/** Workgroup memory of the tensor-core chunk output kernel, in bytes. */
export function chunkOutputMatrixSharedBytes(): number {
  return 2 * 3 * 64 * 24 + 4 * 4 * 256;
}

/** Whether score fragment (row i, column j) can hold a live entry. */
function live(reverse: boolean, j: number): string {
  return reverse ? `sg <= ${j}u` : `sg >= ${j}u`;
}

/** WGSL of the tensor-core chunk output kernel. */
export function chunkOutputMatrixWgsl(c: ChunkOutputMatrixConfig): string {
  const T = c.dtype;
  const L = 'subgroup_matrix_left<f16, 16, 16>';
  const R = 'subgroup_matrix_right<f16, 16, 16>';
  const A = 'subgroup_matrix_result<f32, 16, 16>';
  const frag = [0, 1, 2, 3];
  const valid = c.reverse ? 'col >= row' : 'col <= row';
  const distance = c.reverse ? 'col - row' : 'row - col';
  const stateExponent = c.reverse ? 'len - 1u - lr' : 'lr + 1u';
  const mIndex = c.transposeState ? 'zc * p.dx + a' : 'a * p.dz + zc';
  const toHalf = c.checkFinite
    ? 'fn half(x: f32) -> f16 { checkF16(x); return f16(x); }'
    : 'fn half(x: f32) -> f16 { return f16(x); }';
  const high = c.checkFinite ? 7 : 6;
  return `${enables({ subgroupMatrix: true })}
${c.pinSubgroupSize ? 'enable subgroup_size_control;' : ''}
${paramsStruct(CHUNK_OUTPUT_PARAMS)}
@group(0) @binding(0) var<storage, read> x: array<${T}>;
@group(0) @binding(1) var<storage, read> y: array<${T}>;
@group(0) @binding(2) var<storage, read> z: array<${T}>;
@group(0) @binding(3) var<storage, read> states: array<f32>;
@group(0) @binding(4) var<storage, read> table: array<u32>;
@group(0) @binding(5) var<storage, read_write> out: array<${T}>;
${c.checkFinite ? '@group(0) @binding(6) var<storage, read_write> overflow: array<atomic<u32>>;' : ''}
@group(0) @binding(${high + (c.splitStates ? 1 : 0)}) var<uniform> p: Params;
${stateAccessWgsl(c.splitStates, false, high)}

const XS = 24u;  // x or y slice [64][16], rows padded by 16 bytes
const ZS = 72u;  // z or state rows [16][64]
const PS = 24u;  // f16 scores, one [16][16] fragment per subgroup
var<workgroup> xs: array<f16, ${64 * 24}>;
var<workgroup> ys: array<f16, ${64 * 24}>;
var<workgroup> ps: array<f16, ${64 * 24}>;
var<workgroup> scratch: array<f32, ${4 * 256}>;

${WORKGROUP_INDEX_WGSL}
${DECAY_POW_WGSL}
${DECAY_OF_WGSL}
${c.checkFinite ? CHECK_F16_WGSL : ''}
${toHalf}

@compute @workgroup_size(${4 * c.subgroupSize})${c.pinSubgroupSize ? ` @subgroup_size(${c.subgroupSize})` : ''}
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) li: u32, @builtin(subgroup_id) sg: u32,
        @builtin(subgroup_invocation_id) lane: u32) {
  let wg = workgroupIndex(wid, nwg);
  if (wg >= p.chunks * p.outHeads * p.zTiles) { return; }
  let zt = wg % p.zTiles;
  let rest = wg / p.zTiles;
  let ho = rest % p.outHeads;
  let chunk = rest / p.outHeads;
  let start = table[p.chunkTable + 2u * chunk];
  let len = table[p.chunkTable + 2u * chunk + 1u];
  let threads = ${4 * c.subgroupSize}u;
  ${frag.map((f) => `var o${f} = ${A}();`).join('\n  ')}
  for (var g = 0u; g < p.group; g++) {
    let hs = ho * p.group + g;
    let hyz = hs / p.yzDiv;
    let lam = decayOf(hs);
    // (A) scores of this subgroup's 16 rows against the chunk's 64 columns.
    ${frag.map((j) => `var s${j} = ${A}();`).join('\n    ')}
    for (var a0 = 0u; a0 < p.dx; a0 += 16u) {
      for (var e = li; e < 1024u; e += threads) {
        let r = e / 16u;
        let a = a0 + e % 16u;
        var xv = 0.0;
        var yv = 0.0;
        if (r < len && a < p.dx) {
          xv = f32(x[((start + r) * p.outHeads + ho) * p.dx + a]);
          yv = f32(y[((start + r) * p.yzHeads + hyz) * p.dx + a]);
        }
        xs[r * XS + e % 16u] = f16(xv);
        ys[r * XS + e % 16u] = f16(yv);
      }
      workgroupBarrier();
      let xl = subgroupMatrixLoad<${L}, row_major>(&xs, sg * 16u * XS, XS);
      ${frag
        .map(
          (j) =>
            `if (${live(c.reverse, j)}) { s${j} = subgroupMatrixMultiplyAccumulate(xl, subgroupMatrixLoad<${R}, col_major>(&ys, ${j * 16}u * XS, XS), s${j}); }`,
        )
        .join('\n      ')}
      workgroupBarrier();
    }
    // (B) per 16 columns of the chunk: mask, decay and scale the score fragment through workgroup
    // memory as f16, stage those 16 rows of z, and accumulate S z.
    ${frag
      .map(
        (
          j,
        ) => `if (${live(c.reverse, j)}) { subgroupMatrixStore<row_major>(&scratch, sg * 256u, s${j}, 16u); }
    workgroupBarrier();
    for (var e = lane; e < 256u; e += ${c.subgroupSize}u) {
      let row = sg * 16u + e / 16u;
      let col = ${j * 16}u + e % 16u;
      var v = 0.0;
      if (row < len && col < len && ${valid}) { v = p.scale * decayPow(lam, ${distance}) * scratch[sg * 256u + e]; }
      ps[row * PS + e % 16u] = half(v);
    }
    for (var e = li; e < 1024u; e += threads) {
      let r = ${j * 16}u + e / 64u;
      let zc = zt * 64u + e % 64u;
      var v = 0.0;
      if (r < len && zc < p.dz) { v = f32(z[((start + r) * p.yzHeads + hyz) * p.dz + zc]); }
      ys[(e / 64u) * ZS + e % 64u] = f16(v);
    }
    workgroupBarrier();
    if (${live(c.reverse, j)}) {
      let sl = subgroupMatrixLoad<${L}, row_major>(&ps, sg * 16u * PS, PS);
      ${frag.map((f) => `o${f} = subgroupMatrixMultiplyAccumulate(sl, subgroupMatrixLoad<${R}, row_major>(&ys, ${f * 16}u, ZS), o${f});`).join('\n      ')}
    }
    workgroupBarrier();`,
      )
      .join('\n    ')}
    // (C) the state's part: (stateScale · λ^e · x) M over dx in 32-wide slices.
    let sBase = (chunk * p.hq + hs) * p.dx * p.dz;
    for (var a0 = 0u; a0 < p.dx; a0 += 16u) {
      for (var e = li; e < 1024u; e += threads) {
        let lr = e / 16u;
        let a = a0 + e % 16u;
        var xv = 0.0;
        if (lr < len && a < p.dx) {
          xv = p.stateScale * decayPow(lam, ${stateExponent}) * f32(x[((start + lr) * p.outHeads + ho) * p.dx + a]);
        }
        xs[lr * XS + e % 16u] = half(xv);
        let a2 = a0 + e / 64u;
        let zc = zt * 64u + e % 64u;
        var mv = 0.0;
        if (a2 < p.dx && zc < p.dz) {
          let a = a2;
          mv = loadState(sBase + ${mIndex});
        }
        ys[(e / 64u) * ZS + e % 64u] = half(mv);
      }
      workgroupBarrier();
      let xl = subgroupMatrixLoad<${L}, row_major>(&xs, sg * 16u * XS, XS);
      ${frag.map((f) => `o${f} = subgroupMatrixMultiplyAccumulate(xl, subgroupMatrixLoad<${R}, row_major>(&ys, ${f * 16}u, ZS), o${f});`).join('\n      ')}
      workgroupBarrier();
    }
  }
  // Each subgroup writes its 16 x 64 strip through its scratch fragment.
  ${frag
    .map(
      (f) => `subgroupMatrixStore<row_major>(&scratch, sg * 256u, o${f}, 16u);
  workgroupBarrier();
  for (var e = lane; e < 256u; e += ${c.subgroupSize}u) {
    let lr = sg * 16u + e / 16u;
    let zc = zt * 64u + ${f * 16}u + e % 16u;
    if (lr < len && zc < p.dz) {
      let value = scratch[sg * 256u + e];
      ${storeWgsl('out[((start + lr) * p.outHeads + ho) * p.dz + zc]', 'value', T, c.checkFinite)}
    }
  }
  workgroupBarrier();`,
    )
    .join('\n  ')}
}
`;
}

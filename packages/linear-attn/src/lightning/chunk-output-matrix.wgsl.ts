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
import {
  type Dtype,
  enables,
  paramsStruct,
  subgroupMainWgsl,
  subgroupMatrixTypes,
  unrolledStagingWgsl,
  WORKGROUP_INDEX_WGSL,
} from '@webattn/core';
import { CHUNK_OUTPUT_PARAMS } from './chunk-output.wgsl.js';
import { CHECK_F16_WGSL, DECAY_OF_WGSL, DECAY_POW_WGSL, halfWgsl, storeWgsl } from './common.wgsl.js';

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
  const { left: L, right: R, result: A } = subgroupMatrixTypes({ M: 16, N: 16, K: 16 });
  const frag = [0, 1, 2, 3];
  const valid = c.reverse ? 'col >= row' : 'col <= row';
  const distance = c.reverse ? 'col - row' : 'row - col';
  const stateExponent = c.reverse ? 'len - 1u - lr' : 'lr + 1u';
  const mIndex = c.transposeState ? 'zc * p.dx + a' : 'a * p.dz + zc';
  // Which entry (row a0 + row, column zt·64 + column) of M's 16 x 64 slice element e stages:
  // consecutive elements run along M's rows in memory, along a when M is read transposed.
  const stateRow = (e: string) => (c.transposeState ? `${e} % 16u` : `${e} / 64u`);
  const stateColumn = (e: string) => (c.transposeState ? `${e} / 16u` : `${e} % 64u`);
  const threads = 4 * c.subgroupSize;
  return `${enables({ subgroupMatrix: true, subgroupSizeControl: c.pinSubgroupSize })}
${paramsStruct(CHUNK_OUTPUT_PARAMS)}
@group(0) @binding(0) var<storage, read> x: array<${T}>;
@group(0) @binding(1) var<storage, read> y: array<${T}>;
@group(0) @binding(2) var<storage, read> z: array<${T}>;
@group(0) @binding(3) var<storage, read> states: array<f32>;
@group(0) @binding(4) var<storage, read> table: array<u32>;
@group(0) @binding(5) var<storage, read_write> out: array<${T}>;
${c.checkFinite ? '@group(0) @binding(6) var<storage, read_write> overflow: array<atomic<u32>>;' : ''}
@group(0) @binding(${c.checkFinite ? 7 : 6}) var<uniform> p: Params;

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
${halfWgsl(c.checkFinite)}

${subgroupMainWgsl(4 * c.subgroupSize, c)}
  let wg = workgroupIndex(wid, nwg);
  if (wg >= p.chunks * p.outHeads * p.zTiles) { return; }
  let zt = wg % p.zTiles;
  let rest = wg / p.zTiles;
  let ho = rest % p.outHeads;
  let chunk = p.chunkBase + rest / p.outHeads;
  let start = table[p.chunkTable + 2u * chunk];
  let len = table[p.chunkTable + 2u * chunk + 1u];
  ${frag.map((f) => `var o${f} = ${A}();`).join('\n  ')}
  for (var g = 0u; g < p.group; g++) {
    let hs = ho * p.group + g;
    let hyz = hs / p.yzDiv;
    let lam = decayOf(hs);
    // (A) scores of this subgroup's 16 rows against the chunk's 64 columns.
    ${frag.map((j) => `var s${j} = ${A}();`).join('\n    ')}
    for (var a0 = 0u; a0 < p.dx; a0 += 16u) {
      ${unrolledStagingWgsl(
        1024,
        threads,
        (k, inRange) => `let row_${k} = e${k} / 16u;
      let col_${k} = a0 + e${k} % 16u;
      var xv_${k} = 0.0;
      var yv_${k} = 0.0;
      if (${inRange}row_${k} < len && col_${k} < p.dx) {
        xv_${k} = f32(x[((start + row_${k}) * p.outHeads + ho) * p.dx + col_${k}]);
        yv_${k} = f32(y[((start + row_${k}) * p.yzHeads + hyz) * p.dx + col_${k}]);
      }`,
        (k) => `xs[row_${k} * XS + e${k} % 16u] = f16(xv_${k});
      ys[row_${k} * XS + e${k} % 16u] = f16(yv_${k});`,
      )}
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
    ${unrolledStagingWgsl(
      1024,
      threads,
      (k, inRange) => `let row_${k} = ${j * 16}u + e${k} / 64u;
    let zc_${k} = zt * 64u + e${k} % 64u;
    var v_${k} = 0.0;
    if (${inRange}row_${k} < len && zc_${k} < p.dz) { v_${k} = f32(z[((start + row_${k}) * p.yzHeads + hyz) * p.dz + zc_${k}]); }`,
      (k) => `ys[(e${k} / 64u) * ZS + e${k} % 64u] = f16(v_${k});`,
    )}
    workgroupBarrier();
    if (${live(c.reverse, j)}) {
      let sl = subgroupMatrixLoad<${L}, row_major>(&ps, sg * 16u * PS, PS);
      ${frag.map((f) => `o${f} = subgroupMatrixMultiplyAccumulate(sl, subgroupMatrixLoad<${R}, row_major>(&ys, ${f * 16}u, ZS), o${f});`).join('\n      ')}
    }
    workgroupBarrier();`,
      )
      .join('\n    ')}
    // (C) the state's part: (stateScale · λ^e · x) M over dx in 32-wide slices.
    let sBase = ((chunk - p.chunkBase) * p.hq + hs) * p.dx * p.dz;
    for (var a0 = 0u; a0 < p.dx; a0 += 16u) {
      ${unrolledStagingWgsl(
        1024,
        threads,
        (k, inRange) => `let lrow_${k} = e${k} / 16u;
      var xv_${k} = 0.0;
      if (${inRange}lrow_${k} < len && a0 + e${k} % 16u < p.dx) {
        xv_${k} = f32(x[((start + lrow_${k}) * p.outHeads + ho) * p.dx + a0 + e${k} % 16u]);
      }
      let al_${k} = ${stateRow(`e${k}`)};
      let zl_${k} = ${stateColumn(`e${k}`)};
      var mv_${k} = 0.0;
      if (${inRange}a0 + al_${k} < p.dx && zt * 64u + zl_${k} < p.dz) {
        let a = a0 + al_${k};
        let zc = zt * 64u + zl_${k};
        mv_${k} = states[sBase + ${mIndex}];
      }`,
        (k) => `        let lr = lrow_${k};
        xs[lr * XS + e${k} % 16u] = half(p.stateScale * decayPow(lam, ${stateExponent}) * xv_${k});
        ys[al_${k} * ZS + zl_${k}] = half(mv_${k});`,
      )}
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

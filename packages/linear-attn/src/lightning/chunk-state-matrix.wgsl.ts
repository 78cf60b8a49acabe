/**
 * Kernel 1 of the chunkwise lightning attention on tensor cores (16x16x16 f16 fragments, f32
 * accumulation): every chunk's own state term `coef · Σ_j λ^(e_j) u_jᵀ w_j` as in
 * {@link chunkStateWgsl}, for a 64 x 64 tile of the state per workgroup. The chunk's weighted u
 * and its w are staged 32 tokens at a time as f16 (u token-major, loaded column-major as the left
 * operand uᵀ); four subgroups each own 16 rows of the tile and its four 16-column fragments.
 */
import {
  enables,
  paramsStruct,
  subgroupMainWgsl,
  subgroupMatrixTypes,
  unrolledStagingWgsl,
  WORKGROUP_INDEX_WGSL,
} from '@webattn/core';
import { CHUNK_STATE_PARAMS, CHUNK_STATE_WORKGROUP_WGSL } from './chunk-state.wgsl.js';
import { CHECK_F16_WGSL, DECAY_OF_WGSL, DECAY_POW_WGSL, halfWgsl } from './common.wgsl.js';

/** State entries per tile side of the tensor-core chunk-state kernel. */
export const MATRIX_STATE_TILE = 64;

/** Generation parameters of the tensor-core chunk-state kernel. */
export interface ChunkStateMatrixConfig {
  /** Tokens per chunk, a multiple of 32. */
  chunkSize: number;
  /** Backward (u = q, w = dO, `e_j = j + 1`) rather than forward (`e_j = len - 1 - j`). */
  backward: boolean;
  /** Flag weighted u values past f16's range (binding `overflow`). */
  checkFinite: boolean;
  /** Subgroup size the kernel is built for. */
  subgroupSize: number;
  /** Pin it with `@subgroup_size`. */
  pinSubgroupSize: boolean;
}

/** Workgroup memory of the tensor-core chunk-state kernel, in bytes. */
export function chunkStateMatrixSharedBytes(): number {
  return 2 * 2 * 32 * 72 + 4 * 4 * 256;
}

/** WGSL of the tensor-core chunk-state kernel (f16 storage). */
export function chunkStateMatrixWgsl(c: ChunkStateMatrixConfig): string {
  const exponent = c.backward ? 'j + 1u' : 'len - 1u - j';
  const { left: L, right: R, result: A } = subgroupMatrixTypes({ M: 16, N: 16, K: 16 });
  const frag = [0, 1, 2, 3];
  return `${enables({ subgroupMatrix: true, subgroupSizeControl: c.pinSubgroupSize })}
${paramsStruct(CHUNK_STATE_PARAMS)}
@group(0) @binding(0) var<storage, read> u: array<f16>;
@group(0) @binding(1) var<storage, read> w: array<f16>;
@group(0) @binding(2) var<storage, read> table: array<u32>;
@group(0) @binding(3) var<storage, read_write> states: array<f32>;
${c.checkFinite ? '@group(0) @binding(4) var<storage, read_write> overflow: array<atomic<u32>>;' : ''}
@group(0) @binding(${c.checkFinite ? 5 : 4}) var<uniform> p: Params;

const SS = 72u;  // [32 tokens][64 entries], rows padded by 16 bytes
var<workgroup> us: array<f16, ${32 * 72}>;
var<workgroup> ws: array<f16, ${32 * 72}>;
var<workgroup> scratch: array<f32, ${4 * 256}>;

${WORKGROUP_INDEX_WGSL}
${DECAY_POW_WGSL}
${DECAY_OF_WGSL}
${c.checkFinite ? CHECK_F16_WGSL : ''}
${halfWgsl(c.checkFinite)}

${subgroupMainWgsl(4 * c.subgroupSize, c)}
${CHUNK_STATE_WORKGROUP_WGSL}
  ${frag.map((f) => `var acc${f} = ${A}();`).join('\n  ')}
  for (var j0 = 0u; j0 < ${c.chunkSize}u; j0 += 32u) {
    ${unrolledStagingWgsl(
      2048,
      4 * c.subgroupSize,
      (k, inRange) => `let tj${k} = j0 + e${k} / 64u;
    let ta${k} = at * 64u + e${k} % 64u;
    let tb${k} = bt * 64u + e${k} % 64u;
    var uv_${k} = 0.0;
    var wv_${k} = 0.0;
    if (${inRange}tj${k} < len) {
      let tok = start + tj${k};
      if (ta${k} < p.dk) { uv_${k} = f32(u[(tok * p.heads + head) * p.dk + ta${k}]); }
      if (tb${k} < p.dv) { wv_${k} = f32(w[(tok * p.heads + head) * p.dv + tb${k}]); }
    }`,
      (k) => `      let j = tj${k};
      us[(e${k} / 64u) * SS + e${k} % 64u] = half(p.coef * decayPow(lam, ${exponent}) * uv_${k});
      ws[(e${k} / 64u) * SS + e${k} % 64u] = f16(wv_${k});`,
    )}
    workgroupBarrier();
    for (var kk = 0u; kk < 32u; kk += 16u) {
      let ul = subgroupMatrixLoad<${L}, col_major>(&us, kk * SS + sg * 16u, SS);
      ${frag.map((f) => `acc${f} = subgroupMatrixMultiplyAccumulate(ul, subgroupMatrixLoad<${R}, row_major>(&ws, kk * SS + ${f * 16}u, SS), acc${f});`).join('\n      ')}
    }
    workgroupBarrier();
  }
  ${frag
    .map(
      (f) => `subgroupMatrixStore<row_major>(&scratch, sg * 256u, acc${f}, 16u);
  workgroupBarrier();
  for (var e = lane; e < 256u; e += ${c.subgroupSize}u) {
    let a = at * 64u + sg * 16u + e / 16u;
    let b = bt * 64u + ${f * 16}u + e % 16u;
    if (a < p.dk && b < p.dv) { states[(((chunk - p.chunkBase) * p.hq + h) * p.dk + a) * p.dv + b] = scratch[sg * 256u + e]; }
  }
  workgroupBarrier();`,
    )
    .join('\n  ')}
}
`;
}

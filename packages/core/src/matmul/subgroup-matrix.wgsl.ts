/**
 * Tensor-core matmul: f16 operands, f32 accumulation through subgroup matrices. Four subgroups
 * (2x2) per workgroup, each owning 2x2 result fragments, so a workgroup computes a
 * (4·M)x(4·N) tile of C. A and B tiles are staged in workgroup memory as f16 with zeros past the
 * edges (fragment loads are whole tiles), and each result fragment goes out through a per-subgroup
 * f32 scratch so partial edge tiles are written element by element with bounds checks.
 * The `subgroup-matrix` tier.
 */
import type { SubgroupMatrixConfig } from '../capabilities.js';
import { WORKGROUP_INDEX_WGSL } from '../dispatch.js';
import { paramsStruct } from '../params.js';
import { computeAttributesWgsl, enables, subgroupMatrixTypes } from '../wgsl.js';
import { bIndex, MATMUL_PARAMS, MATMUL_TILE_WGSL } from './layout.js';

/** Generation parameters of {@link subgroupMatrixMatmulWgsl}. */
export interface SubgroupMatrixMatmulConfig {
  /** The f16 -> f32 fragment shape to use (one of the adapter's). */
  matrix: Pick<SubgroupMatrixConfig, 'M' | 'N' | 'K'>;
  /** The subgroup size the workgroup (four subgroups) is sized for. */
  subgroupSize: number;
  /** Pin the subgroup size with `@subgroup_size` (needs `subgroup-size-control`). */
  pinSubgroupSize: boolean;
  transposeB: boolean;
}

const SUBGROUPS = 4;
const FRAGMENTS = 2; // per subgroup along each of M and N

/** Output tile of one workgroup, rows x columns. */
export function subgroupMatrixTile(matrix: Pick<SubgroupMatrixConfig, 'M' | 'N'>): {
  rows: number;
  cols: number;
} {
  return { rows: 2 * FRAGMENTS * matrix.M, cols: 2 * FRAGMENTS * matrix.N };
}

/** WGSL for the subgroup-matrix matmul (f16 storage). */
export function subgroupMatrixMatmulWgsl(config: SubgroupMatrixMatmulConfig): string {
  const { M, N, K } = config.matrix;
  const { rows: TM, cols: TN } = subgroupMatrixTile(config.matrix);
  const TK = 2 * K;
  const threads = SUBGROUPS * config.subgroupSize;
  const { left, right, result } = subgroupMatrixTypes(config.matrix);
  const frags: [number, number][] = [];
  for (let i = 0; i < FRAGMENTS; i++) for (let j = 0; j < FRAGMENTS; j++) frags.push([i, j]);
  const declare = frags.map(([i, j]) => `  var acc${i}${j} = ${result}();`).join('\n');
  const multiply = [
    ...Array.from(
      { length: FRAGMENTS },
      (_, i) =>
        `      let l${i} = subgroupMatrixLoad<${left}, row_major>(&As, (sr * ${FRAGMENTS * M}u + ${i * M}u) * TK + kk, TK);`,
    ),
    ...Array.from(
      { length: FRAGMENTS },
      (_, j) =>
        `      let r${j} = subgroupMatrixLoad<${right}, row_major>(&Bs, kk * TN + sc * ${FRAGMENTS * N}u + ${j * N}u, TN);`,
    ),
    ...frags.map(
      ([i, j]) => `      acc${i}${j} = subgroupMatrixMultiplyAccumulate(l${i}, r${j}, acc${i}${j});`,
    ),
  ].join('\n');
  const store = frags
    .map(
      ([i, j]) => `  subgroupMatrixStore<row_major>(&Cs, sgc * ${M * N}u, acc${i}${j}, ${N}u);
  workgroupBarrier();
  writeFragment(sg, lane, sgSize, row0 + sr * ${FRAGMENTS * M}u + ${i * M}u, col0 + sc * ${FRAGMENTS * N}u + ${j * N}u, cBase);
  workgroupBarrier();`,
    )
    .join('\n');
  return `${enables({ subgroupMatrix: true, subgroupSizeControl: config.pinSubgroupSize })}
${paramsStruct(MATMUL_PARAMS)}
@group(0) @binding(0) var<storage, read> a: array<f16>;
@group(0) @binding(1) var<storage, read> b: array<f16>;
@group(0) @binding(2) var<storage, read_write> c: array<f16>;
@group(0) @binding(3) var<uniform> p: Params;

const TM = ${TM}u;
const TN = ${TN}u;
const TK = ${TK}u;
const THREADS = ${threads}u;
var<workgroup> As: array<f16, ${TM * TK}>; // [TM][TK]
var<workgroup> Bs: array<f16, ${TK * TN}>; // [TK][TN]
var<workgroup> Cs: array<f32, ${SUBGROUPS * M * N}>; // one result fragment per subgroup

${WORKGROUP_INDEX_WGSL}

// Lanes of subgroup sg copy its staged fragment to C, skipping what lies past M or N.
fn writeFragment(sg: u32, lane: u32, sgSize: u32, r0: u32, c0: u32, cBase: u32) {
  if (sg >= ${SUBGROUPS}u) { return; }
  for (var e = lane; e < ${M * N}u; e += sgSize) {
    let r = r0 + e / ${N}u;
    let col = c0 + e % ${N}u;
    if (r < p.M && col < p.N) { c[cBase + r * p.N + col] = f16(Cs[sg * ${M * N}u + e]); }
  }
}

${computeAttributesWgsl(threads, config)}
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) li: u32, @builtin(subgroup_id) sg: u32,
        @builtin(subgroup_invocation_id) lane: u32, @builtin(subgroup_size) sgSize: u32) {
${MATMUL_TILE_WGSL}
  // Should the device run narrower subgroups than the largest it reports, the extra subgroups
  // repeat the last one's work (identical values) instead of indexing past the tile.
  let sgc = min(sg, ${SUBGROUPS - 1}u);
  let sr = sgc / 2u;
  let sc = sgc % 2u;
${declare}
  for (var k0 = 0u; k0 < p.K; k0 += TK) {
    for (var e = li; e < TM * TK; e += THREADS) {
      let r = e / TK;
      let kk = e % TK;
      var v = f16(0.0);
      if (row0 + r < p.M && k0 + kk < p.K) { v = a[aBase + (row0 + r) * p.K + k0 + kk]; }
      As[e] = v;
    }
    for (var e = li; e < TK * TN; e += THREADS) {
      ${config.transposeB ? 'let kk = e % TK; let cc = e / TK;' : 'let kk = e / TN; let cc = e % TN;'}
      var v = f16(0.0);
      if (k0 + kk < p.K && col0 + cc < p.N) { v = b[${bIndex(config.transposeB, 'k0 + kk', 'col0 + cc')}]; }
      Bs[kk * TN + cc] = v;
    }
    workgroupBarrier();
    for (var kk = 0u; kk < TK; kk += ${K}u) {
${multiply}
    }
    workgroupBarrier();
  }
${store}
}
`;
}

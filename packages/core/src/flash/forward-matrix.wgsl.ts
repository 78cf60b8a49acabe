/**
 * Flash-attention forward on tensor cores (subgroup matrices, f16 operands, f32 accumulation).
 *
 * Each subgroup owns M query rows; a workgroup of `subgroups` subgroups shares the K and V tiles in
 * workgroup memory. Subgroup matrices are opaque, so the output accumulator cannot be rescaled row by
 * row as the online softmax would need. The kernel therefore makes two passes over the keys: the
 * first computes S = Q·Kᵀ only, to find each row's max and sum (its lse); the second recomputes S,
 * forms P = exp(S - lse) already normalised, and accumulates P·V into the output fragments, which
 * never need rescaling. Q·Kᵀ is done twice (1.5x the FLOPs of one pass) in exchange for no
 * round trip of the accumulator through workgroup memory.
 *
 * Row statistics are kept by plain lanes: `lanesPerRow` lanes share a row, each taking a slice of
 * the tile's keys, and combine with subgroup shuffles.
 *
 * K and V fragments are loaded straight from global memory (the subgroups of a workgroup share them
 * through the caches); only the last, partial tile of a range is staged through workgroup memory,
 * zero-padded, so no load reads past the end of a buffer. The staging area first holds Q.
 */
import { WORKGROUP_INDEX_WGSL } from '../dispatch.js';
import { MASKED, queryTileWgsl, SEQUENCE_WGSL, stageKeyTileWgsl, stageRowsWgsl } from './common.wgsl.js';
import {
  fragmentNames,
  type MatrixKernelConfig,
  matrixConstantsWgsl,
  matrixEntryPoint,
  matrixKernelHeader,
  matrixShape,
} from './matrix-kernel.js';

/** Generation parameters of the tensor-core forward. */
export type MatrixForwardConfig = MatrixKernelConfig;

/** Elements of the f16 staging area: Q once, then the partial tail tiles of K and V. */
function stagingElements(c: MatrixForwardConfig): number {
  return Math.max(c.subgroups * c.matrix.M * c.d, c.tile * c.d, c.tile * c.dv);
}

/** Workgroup memory the kernel declares, in bytes. */
export function matrixForwardSharedBytes(c: MatrixForwardConfig): number {
  return stagingElements(c) * 2 + c.subgroups * c.matrix.M * c.tile * 6;
}

/** Why a shape cannot use the tensor-core forward, or undefined when it can. */
export function matrixForwardUnsupported(c: MatrixForwardConfig): string | undefined {
  const { M, N, K } = c.matrix;
  if (c.d % K !== 0) return `d = ${c.d} is not a multiple of the matrix K = ${K}`;
  if (c.dv % N !== 0) return `dv = ${c.dv} is not a multiple of the matrix N = ${N}`;
  if (c.tile % N !== 0 || c.tile % K !== 0) return `tile ${c.tile} is not a multiple of N and K`;
  const lanesPerRow = c.subgroupSize / M;
  if (!Number.isInteger(lanesPerRow) || lanesPerRow < 1 || (lanesPerRow & (lanesPerRow - 1)) !== 0) {
    return `subgroup size ${c.subgroupSize} is not a power-of-two multiple of M = ${M}`;
  }
  if (c.tile % lanesPerRow !== 0) return `tile ${c.tile} does not split over ${lanesPerRow} lanes per row`;
  return undefined;
}

/** WGSL of the tensor-core forward (f16 q, k, v, o; f32 lse). */
export function flashForwardMatrixWgsl(c: MatrixForwardConfig): string {
  const { M, N, K, lanesPerRow, perLane: keysPerLane, left, right, result } = matrixShape(c);
  const qFrags = fragmentNames('qf', c.d / K);
  const sFrags = fragmentNames('sf', c.tile / N);
  const oFrags = fragmentNames('of', c.dv / N);
  const pChunks = c.tile / K;
  // S = Q·Kᵀ for this subgroup's rows against one tile of keys, read from global memory or from the
  // staged tail, then stored to the subgroup's scratch rows.
  const kSource = {
    global: (j: number, kk: number) => `&k, kBase + ${j * N}u * KSTRIDE + ${kk * K}u, KSTRIDE`,
    staged: (j: number, kk: number) => `&Xs, ${j * N}u * D + ${kk * K}u, D`,
  };
  const scores = (from: 'global' | 'staged') =>
    [
      ...sFrags.map((sf) => `      ${sf} = ${result}();`),
      ...qFrags.flatMap((qf, kk) =>
        sFrags.map(
          (sf, j) =>
            `      ${sf} = subgroupMatrixMultiplyAccumulate(${qf}, subgroupMatrixLoad<${right}, col_major>(${kSource[from](j, kk)}), ${sf});`,
        ),
      ),
    ].join('\n');
  const scoreTile = `    let full = k0 + i32(TILE) <= range.y;
${sFrags.map((sf) => `    var ${sf}: ${result};`).join('\n')}
    if (full) {
      let kBase = ((sp.kStart + u32(k0)) * p.hkv + hk) * D;
${scores('global')}
    } else {
      workgroupBarrier();
      stageTail(sp, hk, k0, range.y, li, false);
      workgroupBarrier();
${scores('staged')}
    }
${sFrags.map((sf, j) => `    subgroupMatrixStore<row_major>(&Ss, sgc * ${M * c.tile}u + ${j * N}u, ${sf}, TILE);`).join('\n')}`;
  // Folds a per-lane value over the lanes sharing a row (lane = row + M · part).
  const combine = (v: string, fold: (a: string, b: string) => string) =>
    Array.from(
      { length: Math.log2(lanesPerRow) },
      (_, i) => `${v} = ${fold(v, `subgroupShuffleXor(${v}, ${M * 2 ** i}u)`)};`,
    ).join(' ');
  const vSource = {
    global: (kc: number, n: number) => `&v, vBase + ${kc * K}u * VSTRIDE + ${n * N}u, VSTRIDE`,
    staged: (kc: number, n: number) => `&Xs, ${kc * K}u * DV + ${n * N}u, DV`,
  };
  const products = (from: 'global' | 'staged') =>
    oFrags
      .flatMap((of, n) =>
        Array.from(
          { length: pChunks },
          (_, kc) =>
            `      ${of} = subgroupMatrixMultiplyAccumulate(subgroupMatrixLoad<${left}, row_major>(&Ps, sgc * ${M * c.tile}u + ${kc * K}u, TILE), subgroupMatrixLoad<${right}, row_major>(${vSource[from](kc, n)}), ${of});`,
        ),
      )
      .join('\n');
  const pv = `    if (full) {
      let vBase = ((sp.kStart + u32(k0)) * p.hkv + hk) * DV;
${products('global')}
    } else {
      stageTail(sp, hk, k0, range.y, li, true);
      workgroupBarrier();
${products('staged')}
    }`;
  const writeOut = oFrags
    .map(
      (o, n) => `  subgroupMatrixStore<row_major>(&Ss, sgc * ${M * c.tile}u, ${o}, ${N}u);
  workgroupBarrier();
  if (sg < SUBGROUPS) {
    for (var e = lane; e < ${M * N}u; e += ${c.subgroupSize}u) {
      let i = first + i32(sg * ${M}u + e / ${N}u);
      if (i < i32(sp.qLen)) { o[((sp.qStart + u32(i)) * p.hq + h) * DV + ${n * N}u + e % ${N}u] = f16(Ss[sg * ${M * c.tile}u + e]); }
    }
  }
  workgroupBarrier();`,
    )
    .join('\n');
  return `${matrixKernelHeader(c)}
@group(0) @binding(0) var<storage, read> q: array<f16>;
@group(0) @binding(1) var<storage, read> k: array<f16>;
@group(0) @binding(2) var<storage, read> v: array<f16>;
@group(0) @binding(3) var<storage, read> launch: array<u32>;
@group(0) @binding(4) var<storage, read_write> o: array<f16>;
@group(0) @binding(5) var<storage, read_write> lse: array<f32>;
@group(0) @binding(6) var<uniform> p: Params;

${matrixConstantsWgsl(c)}
var<workgroup> Xs: array<f16, ${stagingElements(c)}>;
var<workgroup> Ss: array<f32, ${c.subgroups * M * c.tile}>;
var<workgroup> Ps: array<f16, ${c.subgroups * M * c.tile}>;

${SEQUENCE_WGSL}

${WORKGROUP_INDEX_WGSL}

// Stages keys [k0, end) of head hk (their values when withValues) into Xs, zero-padded to a tile.
fn stageTail(sp: Span, hk: u32, k0: i32, end: i32, li: u32, withValues: bool) {
  let range = vec2<i32>(k0, end);
  if (withValues) {
    ${stageKeyTileWgsl('Xs', 'v', 'THREADS', 'f16')}
  } else {
    ${stageKeyTileWgsl('Xs', 'k', 'THREADS', 'f16')}
  }
}

${matrixEntryPoint(c)}
${queryTileWgsl('ROWS')}
  let KSTRIDE = p.hkv * D;
  let VSTRIDE = p.hkv * DV;
  // Narrower subgroups than built for would add subgroups: they repeat the last one's work.
  let sgc = min(sg, SUBGROUPS - 1u);
  // This lane's row within the subgroup, and its slice of each tile's keys.
  let row = lane % ${M}u;
  let part = lane / ${M}u;
  let i = first + i32(sgc * ${M}u + row);
  ${stageRowsWgsl({ dest: 'Xs', src: 'q', rows: 'ROWS', width: 'D', tokenStart: 'sp.qStart', heads: 'p.hq', head: 'h', first: 'first', end: 'last + 1', threads: 'THREADS', type: 'f16' })}
  workgroupBarrier();
${qFrags.map((qf, kk) => `  let ${qf} = subgroupMatrixLoad<${left}, row_major>(&Xs, sgc * ${M}u * D + ${kk * K}u, D);`).join('\n')}
  let range = keyRange(sp, first, last);

  // Pass 1: row max and sum of exp over every visible key.
  var m = ${MASKED};
  var l = 0.0;
  for (var k0 = range.x; k0 < range.y; k0 += i32(TILE)) {
    workgroupBarrier();
${scoreTile}
    workgroupBarrier();
    var tileMax = ${MASKED};
    for (var jj = part * ${keysPerLane}u; jj < (part + 1u) * ${keysPerLane}u; jj++) {
      let j = k0 + i32(jj);
      if (j < range.y && visible(sp, i, j)) { tileMax = max(tileMax, Ss[sgc * ${M * c.tile}u + row * TILE + jj] * p.scale); }
    }
    ${combine('tileMax', (a, b) => `max(${a}, ${b})`)}
    // Shuffles need the whole subgroup, so no branch on the row's own values here: a row with
    // nothing visible yet keeps m = MASKED and adds 0.
    let mNew = max(m, tileMax);
    var sum = 0.0;
    for (var jj = part * ${keysPerLane}u; jj < (part + 1u) * ${keysPerLane}u; jj++) {
      let j = k0 + i32(jj);
      if (j < range.y && visible(sp, i, j)) { sum += exp(Ss[sgc * ${M * c.tile}u + row * TILE + jj] * p.scale - mNew); }
    }
    ${combine('sum', (a, b) => `${a} + ${b}`)}
    l = l * exp(m - mNew) + sum;
    m = mNew;
  }
  // A row with no key gets lse = -inf; its probabilities below use a huge offset and come out 0.
  let rowLse = select(3.0e38, m + log(l), l > 0.0);

  // Pass 2: P = exp(S - lse), already normalised, accumulated as P·V.
${oFrags.map((of) => `  var ${of} = ${result}();`).join('\n')}
  for (var k0 = range.x; k0 < range.y; k0 += i32(TILE)) {
    workgroupBarrier();
${scoreTile}
    workgroupBarrier();
    for (var jj = part * ${keysPerLane}u; jj < (part + 1u) * ${keysPerLane}u; jj++) {
      let j = k0 + i32(jj);
      var prob = 0.0;
      if (j < range.y && visible(sp, i, j)) { prob = exp(Ss[sgc * ${M * c.tile}u + row * TILE + jj] * p.scale - rowLse); }
      Ps[sgc * ${M * c.tile}u + row * TILE + jj] = f16(prob);
    }
    workgroupBarrier();
${pv}
  }
  if (sg < SUBGROUPS && part == 0u && i <= last) {
    lse[sp.lseBase + h * p.lseHeadStride + u32(i)] = select(p.negInf, rowLse, l > 0.0);
  }
${writeOut}
}
`;
}

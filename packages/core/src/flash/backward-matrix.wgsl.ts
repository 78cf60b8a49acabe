/**
 * Flash-attention backward on tensor cores, the subgroup-matrix tier's: a query-major dQ pass and a
 * key-major dK/dV pass, each recomputing the probabilities from the saved lse like the row kernels.
 * Every product is a subgroup-matrix multiply-accumulate from workgroup memory; the elementwise
 * steps (P = exp(S·scale - lse), dS = P ∘ (dP - delta), masking) are done by lanes on scores
 * stored to workgroup memory, and the f16 results are loaded back as matrix operands. Inputs are
 * read as vec4<f16>, four elements per load, when staged, or as vec4<u32>, eight per load, where
 * the config asks for 16-byte loads (`wideLoads`, which the H200 ran faster).
 *
 * Every workgroup array may hold vectors, as in the forward (`vectorStaging`, `vectorScores`):
 * subgroup-matrix loads and stores read them with offsets and strides counted in vectors, the
 * staging stores each loaded vector whole, and a lane's elementwise step reads and writes four
 * consecutive columns of its row per access.
 */
import { WORKGROUP_INDEX_WGSL } from '../dispatch.js';
import { COMPONENTS, rowVectorType, type StagingSet, unrolledStagingSetsWgsl } from '../wgsl.js';
import {
  backwardInputsWgsl,
  keyTileWgsl,
  openOrMaskedWgsl,
  queryTileWgsl,
  SEQUENCE_WGSL,
  stageRowsVec4Set,
  stageRowsVec4Wgsl,
} from './common.wgsl.js';
import {
  type MatrixKernelConfig,
  matrixConstantsWgsl,
  matrixEntryPoint,
  matrixKernelHeader,
  matrixShape,
  fragmentNames as names,
} from './matrix-kernel.js';

/** The backward kernels' parameters: rows of their own side per workgroup, a tile of the other side. */
export interface MatrixBackwardConfig extends MatrixKernelConfig {
  /**
   * Whether the staging arrays (the own rows, each tile's rows) hold vectors of four f16
   * (`array<vec4<f16>>`, which subgroup-matrix loads read with offsets and strides in vectors), so
   * that each loaded vector is stored whole: one or two stores per load where an f16 array takes
   * four or eight.
   */
  vectorStaging?: boolean;
  /**
   * Whether the scores and dP (f32) and the probabilities and dS (f16) are arrays of vectors too
   * (`vec4<f32>`, `vec4<f16>`), a lane reading and writing four consecutive columns of its row at
   * once: a quarter of the workgroup-memory accesses of the elementwise step. Needs columns per
   * lane in multiples of 4, which each kernel's unsupported check tests for its own split.
   */
  vectorScores?: boolean;
}

/** Why a shape cannot use the tensor-core backward kernels, or undefined when it can. */
export function matrixBackwardUnsupported(c: MatrixBackwardConfig): string | undefined {
  const { M, N, K } = c.matrix;
  if (c.d % K !== 0 || c.d % N !== 0) return `d = ${c.d} is not a multiple of the matrix N and K`;
  if (c.dv % N !== 0 || c.dv % K !== 0) return `dv = ${c.dv} is not a multiple of the matrix N and K`;
  if (c.tile % N !== 0 || c.tile % K !== 0) return `tile ${c.tile} is not a multiple of N and K`;
  const lanesPerRow = c.subgroupSize / M;
  if (!Number.isInteger(lanesPerRow) || lanesPerRow < 1 || (lanesPerRow & (lanesPerRow - 1)) !== 0) {
    return `subgroup size ${c.subgroupSize} is not a power-of-two multiple of M = ${M}`;
  }
  if (c.tile % lanesPerRow !== 0) return `tile ${c.tile} does not split over ${lanesPerRow} lanes per row`;
  // The plain kernels' lanes: a row's tile split over its lanes.
  if (c.vectorScores && (c.tile / lanesPerRow) % 4 !== 0)
    return `vector scores need 4 columns per lane or more, not ${c.tile / lanesPerRow}`;
  return undefined;
}

/**
 * Row strides of the workgroup arrays, in elements: each row padded by 16 bytes, so that the rows of
 * a matrix load (or store) start on different banks. Unpadded, a 16-row load of 256-byte rows (d =
 * 128) hits the same banks sixteen times over.
 */
export function strides(c: MatrixBackwardConfig) {
  return { d: c.d + 8, dv: c.dv + 8, x: Math.max(c.d, c.dv) + 8, s: c.tile + 4, p: c.tile + 8 };
}

/** Per-subgroup score scratch: f32 rows of `s` (scores, dP) and f16 rows of `p` (P, dS), M rows each. */
export function scratchElements(c: MatrixBackwardConfig) {
  const st = strides(c);
  return { s: c.subgroups * c.matrix.M * st.s, p: c.subgroups * c.matrix.M * st.p };
}

/**
 * The workgroup arrays' elements: `x` turns f16 offsets and strides into the staging arrays' own
 * (vectors of four with vectorStaging), `s` those into the scores' and probabilities' (vectors of
 * four with vectorScores); with the arrays' element types. Every offset and stride the kernels
 * take is a multiple of 4 elements: rows are padded to multiples of 4 and 8, fragments are 8 or 16
 * wide. The memory is the same bytes either way.
 */
export function vectorUnits(c: MatrixBackwardConfig) {
  const per = (vectors: boolean | undefined) => (elements: number) => {
    if (vectors && elements % 4 !== 0) throw new Error(`${elements} elements are not whole vectors of 4`);
    return vectors ? elements / 4 : elements;
  };
  return {
    x: per(c.vectorStaging),
    s: per(c.vectorScores),
    staged: c.vectorStaging ? 'vec4<f16>' : 'f16',
    scores: c.vectorScores ? 'vec4<f32>' : 'f32',
    probabilities: c.vectorScores ? 'vec4<f16>' : 'f16',
  };
}

/**
 * One f32 of a scratch array of scores at `base + e` (`base` in the array's elements, `e` in
 * scalars): with vector scores, component e % 4 of the vector e / 4 past `base`.
 */
export function scratchScalarWgsl(c: MatrixBackwardConfig, array: string, base: string, e: string): string {
  return c.vectorScores ? `${array}[${base} + ${e} / 4u][${e} % 4u]` : `${array}[${base} + ${e}]`;
}

/** Workgroup memory of the dQ kernel, in bytes. */
export function matrixDqSharedBytes(c: MatrixBackwardConfig): number {
  const rows = c.subgroups * c.matrix.M;
  const st = strides(c);
  const scratch = scratchElements(c);
  return (rows * st.x + c.tile * (st.d + st.dv)) * 2 + scratch.s * 8 + scratch.p * 2;
}

/** Workgroup memory of the dK/dV kernel, in bytes. */
export function matrixDkDvSharedBytes(c: MatrixBackwardConfig): number {
  const rows = c.subgroups * c.matrix.M;
  const st = strides(c);
  const scratch = scratchElements(c);
  return (rows + c.tile) * (st.d + st.dv) * 2 + c.tile * 8 + scratch.s * 8 + scratch.p * 4;
}

/** Where a side's rows are in the token-major tensors: keys of KV head `hk`, queries of head `h`. */
function sideRows(side: 'keys' | 'queries') {
  return side === 'keys'
    ? { tokenStart: 'sp.kStart', heads: 'p.hkv', head: 'hk' }
    : { tokenStart: 'sp.qStart', heads: 'p.hq', head: 'h' };
}

/**
 * The workgroup's own rows of a side (`first` .. `last`: keys for the dK/dV pass, queries for the
 * dQ pass), staged by `threads` invocations, for stageRowsVec4Set or stageRowsVec4Wgsl once the
 * destination, source and widths are added.
 */
export function ownRows(c: MatrixBackwardConfig, side: 'keys' | 'queries', threads: number) {
  return {
    rows: matrixShape(c).rows,
    ...sideRows(side),
    first: 'first',
    end: 'last + 1',
    threads,
    wide: c.wideLoads,
    vectorDest: c.vectorStaging,
  };
}

/**
 * One tile of the other side's rows as a staging set: keys (`k` or `v`) of KV head `hk` from `k0`
 * for the dQ pass, queries (`q` or `dout`) of head `h` from `i0` for the dK/dV pass; rows of q and
 * k are d wide, of dO and v dv wide, each padded by 16 bytes.
 */
export function tileRows(
  c: MatrixBackwardConfig,
  side: 'keys' | 'queries',
  dest: string,
  src: 'k' | 'v' | 'q' | 'dout',
  index: string,
  place: { threads?: number; destOffset?: number } = {},
): StagingSet {
  const st = strides(c);
  const ofD = src === 'k' || src === 'q';
  return stageRowsVec4Set(
    {
      dest,
      src,
      rows: c.tile,
      width: ofD ? c.d : c.dv,
      destStride: ofD ? st.d : st.dv,
      ...sideRows(side),
      first: side === 'keys' ? 'k0' : 'i0',
      end: 'range.y',
      threads: place.threads ?? c.subgroups * c.subgroupSize,
      wide: c.wideLoads,
      vectorDest: c.vectorStaging,
      ...(place.destOffset !== undefined && { destOffset: place.destOffset }),
    },
    index,
  );
}

/** Lanes copy each accumulator, through the subgroup's scratch rows, to `dest` times `factor`. */
function writeFragments(
  c: MatrixBackwardConfig,
  frags: string[],
  dest: string,
  width: string,
  rowValid: string,
  rowIndex: string,
  factor: string,
): string {
  const { M, N } = c.matrix;
  const st = strides(c);
  const u = vectorUnits(c);
  const x = scratchScalarWgsl(c, 'Ss', `sg * ${u.s(M * st.s)}u`, 'e');
  return frags
    .map(
      (f, n) => `  subgroupMatrixStore<row_major>(&Ss, sgc * ${u.s(M * st.s)}u, ${f}, ${u.s(N)}u);
  workgroupBarrier();
  if (sg < SUBGROUPS) {
    for (var e = lane; e < ${M * N}u; e += ${c.subgroupSize}u) {
      let r = first + i32(sg * ${M}u + e / ${N}u);
      if (${rowValid}) { ${dest}[(${rowIndex}) * ${width} + ${n * N}u + e % ${N}u] = f16(${x} * ${factor}); }
    }
  }
  workgroupBarrier();`,
    )
    .join('\n');
}

/** The dQ passes' statistics of query row `i` (zero past the tile's last row): rowLse, rowDelta. */
export const ROW_STATISTICS_WGSL = `  var rowLse = 0.0;
  var rowDelta = 0.0;
  if (i <= last) {
    let st = rowStats(sp, h, i);
    rowLse = st.x;
    rowDelta = st.y;
  }`;

/** WGSL of the tensor-core dQ pass: one workgroup per (query tile, head), like the forward. */
export function flashDqMatrixWgsl(c: MatrixBackwardConfig): string {
  const { M, N, K, rows, threads, perLane: keysPerLane, left, right, result } = matrixShape(c);
  const qf = names('qf', c.d / K);
  const df = names('df', c.dv / K);
  const sf = names('sf', c.tile / N);
  const pf = names('pf', c.tile / N);
  const gf = names('gf', c.d / N);
  const dsf = names('dsf', c.tile / K);
  const st = strides(c);
  const u = vectorUnits(c);
  const scratch = (j: number) => `sgc * ${u.s(M * st.s)}u + ${u.s(j * N)}u`;
  const stageQ = (dest: string, src: string, width: number) =>
    stageRowsVec4Wgsl({ dest, src, width, destStride: st.x, ...ownRows(c, 'queries', threads) });
  // The tile's keys and values in one step: their loads wait out one latency, not two.
  const stageKeyTile = unrolledStagingSetsWgsl(threads, [
    tileRows(c, 'keys', 'Ks', 'k', 'ek'),
    tileRows(c, 'keys', 'Vs', 'v', 'ev'),
  ]);
  // dS = P ∘ (dP − delta), P = exp(S · scale − lse), over the lane's keys of its row: one at a
  // time, or four (vectors `jv` of the row; each key still masked on its own).
  const seen = (j: string, masked: boolean) =>
    masked ? `i <= last && ${j} < range.y && visible(sp, i, ${j})` : 'i <= last';
  const dsStep = (masked: boolean) =>
    c.vectorScores
      ? `    for (var jv = part * ${keysPerLane / 4}u; jv < (part + 1u) * ${keysPerLane / 4}u; jv++) {
      let at = sgc * ${M}u * SS + row * SS + jv;
      let sv = Ss[at];
      let dpv = Dp[at];
      var ds = vec4<f32>(0.0);
${COMPONENTS.map(
  (x, k) => `      {
        let j = k0 + i32(4u * jv + ${k}u);
        if (${seen('j', masked)}) {
          let prob = exp(sv.${x} * p.scale - rowLse);
          ds.${x} = prob * (dpv.${x} - rowDelta);
        }
      }`,
).join('\n')}
      Ps[sgc * ${M}u * PS + row * PS + jv] = vec4<f16>(ds);
    }`
      : `    for (var jj = part * ${keysPerLane}u; jj < (part + 1u) * ${keysPerLane}u; jj++) {
      let j = k0 + i32(jj);
      let at = sgc * ${M}u * SS + row * SS + jj;
      var ds = 0.0;
      if (${seen('j', masked)}) {
        let prob = exp(Ss[at] * p.scale - rowLse);
        ds = prob * (Dp[at] - rowDelta);
      }
      Ps[sgc * ${M}u * PS + row * PS + jj] = f16(ds);
    }`;
  return `${matrixKernelHeader(c)}
${backwardInputsWgsl(rowVectorType(c.wideLoads))}
@group(0) @binding(6) var<storage, read_write> dq: array<f16>;
@group(0) @binding(7) var<uniform> p: Params;

${matrixConstantsWgsl(c)}
// Row strides in each array's elements.
const XS = ${u.x(st.x)}u;
const KS = ${u.x(st.d)}u;
const VS = ${u.x(st.dv)}u;
const SS = ${u.s(st.s)}u;
const PS = ${u.s(st.p)}u;
var<workgroup> Xs: array<${u.staged}, ${u.x(rows * st.x)}>;
var<workgroup> Ks: array<${u.staged}, ${u.x(c.tile * st.d)}>;
var<workgroup> Vs: array<${u.staged}, ${u.x(c.tile * st.dv)}>;
var<workgroup> Ss: array<${u.scores}, ${u.s(scratchElements(c).s)}>;
var<workgroup> Dp: array<${u.scores}, ${u.s(scratchElements(c).s)}>;
var<workgroup> Ps: array<${u.probabilities}, ${u.s(scratchElements(c).p)}>;

${SEQUENCE_WGSL}

${WORKGROUP_INDEX_WGSL}

${matrixEntryPoint(c)}
${queryTileWgsl('ROWS')}
  let sgc = min(sg, SUBGROUPS - 1u);
  let row = lane % ${M}u;
  let part = lane / ${M}u;
  let i = first + i32(sgc * ${M}u + row);
  ${stageQ('Xs', 'q', c.d)}
  workgroupBarrier();
${qf.map((f, kk) => `  let ${f} = subgroupMatrixLoad<${left}, row_major>(&Xs, sgc * ${M}u * XS + ${u.x(kk * K)}u, XS);`).join('\n')}
  workgroupBarrier();
  ${stageQ('Xs', 'dout', c.dv)}
  workgroupBarrier();
${df.map((f, c2) => `  let ${f} = subgroupMatrixLoad<${left}, row_major>(&Xs, sgc * ${M}u * XS + ${u.x(c2 * K)}u, XS);`).join('\n')}
${ROW_STATISTICS_WGSL}
${gf.map((f) => `  var ${f} = ${result}();`).join('\n')}
  let range = keyRange(sp, first, last);
  for (var k0 = range.x; k0 < range.y; k0 += i32(TILE)) {
    workgroupBarrier();
    ${stageKeyTile}
    workgroupBarrier();
${[...sf, ...pf].map((f) => `    var ${f} = ${result}();`).join('\n')}
${sf.flatMap((f, j) => qf.map((a, kk) => `    ${f} = subgroupMatrixMultiplyAccumulate(${a}, subgroupMatrixLoad<${right}, col_major>(&Ks, ${j * N}u * KS + ${u.x(kk * K)}u, KS), ${f});`)).join('\n')}
${pf.flatMap((f, j) => df.map((a, c2) => `    ${f} = subgroupMatrixMultiplyAccumulate(${a}, subgroupMatrixLoad<${right}, col_major>(&Vs, ${j * N}u * VS + ${u.x(c2 * K)}u, VS), ${f});`)).join('\n')}
${sf.map((f, j) => `    subgroupMatrixStore<row_major>(&Ss, ${scratch(j)}, ${f}, SS);`).join('\n')}
${pf.map((f, j) => `    subgroupMatrixStore<row_major>(&Dp, ${scratch(j)}, ${f}, SS);`).join('\n')}
    workgroupBarrier();
    // A tile every row sees whole skips the per-score mask test (it cost a fifth of the kernel).
    let open = k0 + i32(TILE) <= range.y && blockVisible(sp, first, last, k0, k0 + i32(TILE) - 1);
${openOrMaskedWgsl(dsStep, '    ')}
    workgroupBarrier();
    // Each dS fragment is loaded once and feeds d/16 multiply-accumulates.
${dsf.map((f, kc) => `    let ${f} = subgroupMatrixLoad<${left}, row_major>(&Ps, sgc * ${u.s(M * st.p)}u + ${u.s(kc * K)}u, PS);`).join('\n')}
${gf
  .flatMap((f, n) =>
    dsf.map(
      (a, kc) =>
        `    ${f} = subgroupMatrixMultiplyAccumulate(${a}, subgroupMatrixLoad<${right}, row_major>(&Ks, ${kc * K}u * KS + ${u.x(n * N)}u, KS), ${f});`,
    ),
  )
  .join('\n')}
  }
${writeFragments(c, gf, 'dq', 'D', 'r <= last', '(sp.qStart + u32(r)) * p.hq + h', 'p.scale')}
}
`;
}

/** The opening every tensor-core dK/dV kernel shares: extensions, inputs, dK and dV, constants. */
export function dkDvHeaderWgsl(c: MatrixKernelConfig): string {
  return `${matrixKernelHeader(c)}
${backwardInputsWgsl(rowVectorType(c.wideLoads))}
@group(0) @binding(6) var<storage, read_write> dk: array<f16>;
@group(0) @binding(7) var<storage, read_write> dv: array<f16>;
@group(0) @binding(8) var<uniform> p: Params;

${matrixConstantsWgsl(c)}`;
}

/**
 * The query tile's lse and delta (into `Lq`, `Dq`), as one set of the dK/dV kernels' query-tile
 * staging, so that they wait out the same memory latency as its q and dO rows. With vector scores
 * the arrays hold vectors of four queries (a lane reads its four columns' statistics at once), and
 * each row's go to their components.
 */
export function rowStatisticsSet(c: Pick<MatrixBackwardConfig, 'tile' | 'vectorScores'>): StagingSet {
  const at = (k: number) => (c.vectorScores ? `[es${k} / 4u][es${k} % 4u]` : `[es${k}]`);
  return {
    count: c.tile,
    index: 'es',
    load: (k, inRange, declare = true) => `    ${declare ? 'var ' : ''}esv${k} = vec2f(0.0, 0.0);
    if (${inRange}i0 + i32(es${k}) < range.y) { esv${k} = rowStats(sp, h, i0 + i32(es${k})); }`,
    declare: (k) => `var esv${k}: vec2f;`,
    store: (k) => `      Lq${at(k)} = esv${k}.x;
      Dq${at(k)} = esv${k}.y;`,
  };
}

/** The dK/dV kernels' arrays of the query tile's lse and delta, which {@link rowStatisticsSet} stages. */
export function rowStatisticsArraysWgsl(c: Pick<MatrixBackwardConfig, 'tile' | 'vectorScores'>): string {
  const type = c.vectorScores ? `vec4<f32>, ${c.tile / 4}` : `f32, ${c.tile}`;
  return `var<workgroup> Lq: array<${type}>;
var<workgroup> Dq: array<${type}>;`;
}

/** WGSL of the tensor-core dK/dV pass: one workgroup per (key tile, KV head), over its group's heads. */
export function flashDkDvMatrixWgsl(c: MatrixBackwardConfig): string {
  const { M, N, K, rows, threads, perLane: queriesPerLane, left, right, result } = matrixShape(c);
  const sf = names('sf', c.tile / N);
  const pf = names('pf', c.tile / N);
  const kAcc = names('kacc', c.d / N);
  const vAcc = names('vacc', c.dv / N);
  const st = strides(c);
  const u = vectorUnits(c);
  const scratch = (j: number) => `sgc * ${u.s(M * st.s)}u + ${u.s(j * N)}u`;
  const stageOwn = (dest: string, src: string, width: number, destStride: number) =>
    stageRowsVec4Wgsl({ dest, src, width, destStride, ...ownRows(c, 'keys', threads) });
  const rowStatistics = rowStatisticsSet(c);
  // The query tile in one step: q, dO and their statistics wait out one memory latency, not three
  // (staged one after the other, they took half the kernel's time on the H200).
  const stageQueryTile = unrolledStagingSetsWgsl(threads, [
    tileRows(c, 'queries', 'Qs', 'q', 'eq'),
    tileRows(c, 'queries', 'Os', 'dout', 'eo'),
    rowStatistics,
  ]);
  const products = (acc: string[], from: string, operand: string, width: string) =>
    acc
      .flatMap((f, n) =>
        Array.from(
          { length: c.tile / K },
          (_, kc) =>
            `      ${f} = subgroupMatrixMultiplyAccumulate(subgroupMatrixLoad<${left}, row_major>(&${from}, sgc * ${u.s(M * st.p)}u + ${u.s(kc * K)}u, PS), subgroupMatrixLoad<${right}, row_major>(&${operand}, ${kc * K}u * ${width} + ${u.x(n * N)}u, ${width}), ${f});`,
        ),
      )
      .join('\n');
  // P = exp(S · scale − lse) and dS = P ∘ (dP − delta) over the lane's queries of its row: one at
  // a time, or four (vectors `qv` of the row and of the statistics; each query still masked on its
  // own).
  const seen = (ii: string, masked: boolean) =>
    masked ? `j <= last && ${ii} < range.y && visible(sp, ${ii}, j)` : 'j <= last';
  const elementwise = (masked: boolean) =>
    c.vectorScores
      ? `      for (var qv = part * ${queriesPerLane / 4}u; qv < (part + 1u) * ${queriesPerLane / 4}u; qv++) {
        let at = sgc * ${M}u * SS + row * SS + qv;
        let sv = Ss[at];
        let dpv = Dp[at];
        let lsev = Lq[qv];
        let deltav = Dq[qv];
        var prob = vec4<f32>(0.0);
        var ds = vec4<f32>(0.0);
${COMPONENTS.map(
  (x, k) => `        {
          let ii = i0 + i32(4u * qv + ${k}u);
          if (${seen('ii', masked)}) {
            prob.${x} = exp(sv.${x} * p.scale - lsev.${x});
            ds.${x} = prob.${x} * (dpv.${x} - deltav.${x});
          }
        }`,
).join('\n')}
        let pat = sgc * ${M}u * PS + row * PS + qv;
        Pt[pat] = vec4<f16>(prob);
        Dt[pat] = vec4<f16>(ds);
      }`
      : `      for (var qq = part * ${queriesPerLane}u; qq < (part + 1u) * ${queriesPerLane}u; qq++) {
        let ii = i0 + i32(qq);
        let at = sgc * ${M}u * SS + row * SS + qq;
        var prob = 0.0;
        var ds = 0.0;
        if (${seen('ii', masked)}) {
          prob = exp(Ss[at] * p.scale - Lq[qq]);
          ds = prob * (Dp[at] - Dq[qq]);
        }
        let pat = sgc * ${M}u * PS + row * PS + qq;
        Pt[pat] = f16(prob);
        Dt[pat] = f16(ds);
      }`;
  return `${dkDvHeaderWgsl(c)}
// Row strides in each array's elements.
const KS = ${u.x(st.d)}u;
const VS = ${u.x(st.dv)}u;
const SS = ${u.s(st.s)}u;
const PS = ${u.s(st.p)}u;
var<workgroup> Kown: array<${u.staged}, ${u.x(rows * st.d)}>;
var<workgroup> Vown: array<${u.staged}, ${u.x(rows * st.dv)}>;
var<workgroup> Qs: array<${u.staged}, ${u.x(c.tile * st.d)}>;
var<workgroup> Os: array<${u.staged}, ${u.x(c.tile * st.dv)}>;
${rowStatisticsArraysWgsl(c)}
var<workgroup> Ss: array<${u.scores}, ${u.s(scratchElements(c).s)}>;
var<workgroup> Dp: array<${u.scores}, ${u.s(scratchElements(c).s)}>;
var<workgroup> Pt: array<${u.probabilities}, ${u.s(scratchElements(c).p)}>;
var<workgroup> Dt: array<${u.probabilities}, ${u.s(scratchElements(c).p)}>;

${SEQUENCE_WGSL}

${WORKGROUP_INDEX_WGSL}

${matrixEntryPoint(c)}
${keyTileWgsl('ROWS')}
  let sgc = min(sg, SUBGROUPS - 1u);
  let row = lane % ${M}u;
  let part = lane / ${M}u;
  let j = first + i32(sgc * ${M}u + row);
  ${stageOwn('Kown', 'k', c.d, st.d)}
  ${stageOwn('Vown', 'v', c.dv, st.dv)}
${[...kAcc, ...vAcc].map((f) => `  var ${f} = ${result}();`).join('\n')}
  let range = queryRange(sp, first, last);
  for (var g = 0u; g < p.group; g++) {
    let h = hk * p.group + g;
    for (var i0 = range.x; i0 < range.y; i0 += i32(TILE)) {
      workgroupBarrier();
      ${stageQueryTile}
      workgroupBarrier();
${[...sf, ...pf].map((f) => `      var ${f} = ${result}();`).join('\n')}
${sf.flatMap((f, jq) => Array.from({ length: c.d / K }, (_, kk) => `      ${f} = subgroupMatrixMultiplyAccumulate(subgroupMatrixLoad<${left}, row_major>(&Kown, sgc * ${M}u * KS + ${u.x(kk * K)}u, KS), subgroupMatrixLoad<${right}, col_major>(&Qs, ${jq * N}u * KS + ${u.x(kk * K)}u, KS), ${f});`)).join('\n')}
${pf.flatMap((f, jq) => Array.from({ length: c.dv / K }, (_, kk) => `      ${f} = subgroupMatrixMultiplyAccumulate(subgroupMatrixLoad<${left}, row_major>(&Vown, sgc * ${M}u * VS + ${u.x(kk * K)}u, VS), subgroupMatrixLoad<${right}, col_major>(&Os, ${jq * N}u * VS + ${u.x(kk * K)}u, VS), ${f});`)).join('\n')}
${sf.map((f, jq) => `      subgroupMatrixStore<row_major>(&Ss, ${scratch(jq)}, ${f}, SS);`).join('\n')}
${pf.map((f, jq) => `      subgroupMatrixStore<row_major>(&Dp, ${scratch(jq)}, ${f}, SS);`).join('\n')}
      workgroupBarrier();
      // A query tile that sees every key of this one whole skips the per-score mask test.
      let open = i0 + i32(TILE) <= range.y && blockVisible(sp, i0, i0 + i32(TILE) - 1, first, last);
${openOrMaskedWgsl(elementwise, '      ')}
      workgroupBarrier();
${products(vAcc, 'Pt', 'Os', 'VS')}
${products(kAcc, 'Dt', 'Qs', 'KS')}
    }
  }
${writeFragments(c, kAcc, 'dk', 'D', 'r <= last', '(sp.kStart + u32(r)) * p.hkv + hk', 'p.scale')}
${writeFragments(c, vAcc, 'dv', 'DV', 'r <= last', '(sp.kStart + u32(r)) * p.hkv + hk', '1.0')}
}
`;
}

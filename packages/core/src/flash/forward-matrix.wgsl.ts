/**
 * Flash-attention forward on tensor cores (subgroup matrices, f16 operands, f32 accumulation).
 *
 * A workgroup owns `rowFragments` fragments of M query rows, and its `subgroups` subgroups split the
 * work on them by columns: each computes the scores of its own slice of every key tile, and the
 * output for its own slice of the value columns. Every subgroup therefore holds all of Q in
 * registers but only its share of the output accumulator, which keeps enough registers free for
 * the compiler; and every K or V fragment a subgroup loads from workgroup memory feeds one
 * multiply-accumulate per row fragment. Tiles of keys, then of values, are staged once per
 * workgroup with vec4 loads, of 16 bytes where the config asks (`wideLoads`); with
 * `prefetchValues` a tile's value loads are issued right after its scores and stored after its
 * softmax, which then overlaps their latency.
 *
 * Subgroup matrices are opaque, so the output accumulator cannot be rescaled row by row as the
 * online softmax needs at every tile. The running max is lazy instead: a row's max moves only when
 * a tile's max exceeds it by more than FLASH_LAZY_RESCALE (base 2; forward-tile.wgsl.ts), so
 * P = exp2(S − m) stays below 2^8 and fits f16; only then do the accumulators round-trip through
 * workgroup memory to be rescaled, which in practice happens on a row's first tile or two (a row's
 * first visible tile needs none: its accumulator is still zero). The sum is normalised once, at the end. One pass
 * over the keys, where a max known in advance would need two (Q·Kᵀ twice).
 *
 * Scores reach the lanes through workgroup memory. `lanesPerRow` lanes of a subgroup share a row,
 * each keeping a running sum over its part of the subgroup's slice; a tile's max is combined with
 * shuffles over those lanes and through workgroup memory over the subgroups, so every lane of a row
 * holds the same max. A lane walks its part starting at an offset given by its row, so the lanes of
 * a subgroup read different banks; or, with `vectorScores`, four keys at a time.
 *
 * Every workgroup array may hold vectors (`vectorStaging`, `vectorScores`): subgroup-matrix loads
 * and stores read them with offsets and strides counted in vectors, and the staging and softmax
 * then move four values per access where scalars took one (36.7 -> 32.0 ms at n = 16384 on the
 * H200, flash-shapes vectors).
 */
import { WORKGROUP_INDEX_WGSL } from '../dispatch.js';
import { COMPONENTS, rowVectorType } from '../wgsl.js';
import {
  heldInTurnsWgsl,
  MASKED,
  queryTileWgsl,
  SEQUENCE_WGSL,
  type StagedRowsVec4,
  stageRowsVec4Prefetched,
  stageRowsVec4Wgsl,
} from './common.wgsl.js';
import {
  type ForwardTileShape,
  fragmentGridNames,
  lazyRescaleWgsl,
  lazyRowArraysWgsl,
  lazyTileMaxWgsl,
  probabilityWgsl,
  rowSumWgsl,
  subgroupPlace,
  throughScoresWgsl,
  tileScoresWgsl,
  valueProductsWgsl,
  vectorProbabilitiesWgsl,
} from './forward-tile.wgsl.js';
import {
  type MatrixKernelConfig,
  matrixEntryPoint,
  matrixKernelHeader,
  matrixShape,
  rowGroupsOf,
  rowGroupsUnsupported,
} from './matrix-kernel.js';

/**
 * Generation parameters of the tensor-core forward. `subgroups` split the columns of each key tile
 * (`tile / subgroups` keys each) and of the output (`dv / subgroups` columns each).
 */
export interface MatrixForwardConfig extends MatrixKernelConfig {
  /** Fragments of M query rows the workgroup owns; every subgroup multiplies all of them. */
  rowFragments: number;
  /**
   * Whether each tile's value loads are issued right after its scores, before the softmax, and
   * stored after it, so that the softmax's work overlaps their latency (at the cost of holding the
   * loaded values in registers through it).
   */
  prefetchValues?: boolean;
  /**
   * Whether the staging array holds vectors of four f16 (`array<vec4<f16>>`, which subgroup-matrix
   * loads read with offsets and strides in vectors), so that each loaded vector is stored whole:
   * one or two stores per load where an f16 array takes four or eight.
   */
  vectorStaging?: boolean;
  /**
   * Whether the scores and probabilities are arrays of vectors too (`vec4<f32>`, `vec4<f16>`), a
   * lane reading and writing four consecutive keys of its row at once: a quarter of the
   * workgroup-memory accesses of its softmax. Needs keys per lane in multiples of 4.
   */
  vectorScores?: boolean;
  /**
   * Groups of `rowFragments` fragments each, the workgroup's rows: every group has `subgroups`
   * subgroups of its own (so `rowGroups · subgroups` in all), and all share each staged key and
   * value tile, which is staged once for `rowGroups` times the rows. Q is staged a group at a
   * time. 1 (the default): one group.
   */
  rowGroups?: number;
}

/** Query rows of one workgroup: every row group's. */
export function matrixForwardRows(c: MatrixForwardConfig): number {
  return rowGroupsOf(c) * c.rowFragments * c.matrix.M;
}

/** Subgroups of one workgroup: every row group's. */
export function matrixForwardSubgroups(c: MatrixForwardConfig): number {
  return rowGroupsOf(c) * c.subgroups;
}

/**
 * How the work divides: rows (the workgroup's, and one row group's), keys and output columns per
 * subgroup, lanes per row, keys per lane.
 */
function split(c: MatrixForwardConfig) {
  const rows = matrixForwardRows(c);
  const groupRows = c.rowFragments * c.matrix.M;
  const keys = c.tile / c.subgroups;
  const lanesPerRow = c.subgroupSize / groupRows;
  return { rows, groupRows, keys, columns: c.dv / c.subgroups, lanesPerRow, perLane: keys / lanesPerRow };
}

/**
 * Row strides of the workgroup arrays, in elements: each row padded by 16 bytes, so that the rows of
 * a matrix load (or store) start on different banks instead of all on the same one.
 */
function strides(c: MatrixForwardConfig) {
  return { q: c.d + 8, k: c.d + 8, v: c.dv + 8, s: c.tile + 4, p: c.tile + 8 };
}

/**
 * 32-bit registers per lane that Q's fragments and the output accumulator take, past which Q stays
 * in workgroup memory and its fragments are loaded at every use. With d = 128 both fit (64 + 64);
 * MLA's prefill (d = 288, dv = 256: 144 + 128) spills when Q is held too.
 */
const HELD_REGISTERS = 192;

/** Whether Q's fragments are read from workgroup memory at every use instead of held in registers. */
export function matrixForwardQueryInWorkgroup(c: MatrixForwardConfig): boolean {
  const { M, N, K } = c.matrix;
  const query = c.rowFragments * (c.d / K) * ((M * K) / 2 / c.subgroupSize);
  const output = c.rowFragments * (c.dv / c.subgroups / N) * ((M * N) / c.subgroupSize);
  return query + output > HELD_REGISTERS;
}

/**
 * Loads each invocation issues to stage a tile of values: with {@link MatrixForwardConfig.prefetchValues}
 * each holds that many vectors (4 registers each) through the softmax.
 */
export function matrixForwardValueLoads(c: MatrixForwardConfig): number {
  return Math.ceil((c.tile * c.dv) / (c.wideLoads ? 8 : 4) / (matrixForwardSubgroups(c) * c.subgroupSize));
}

/**
 * f16 elements of the staging area: a tile of keys or of values, or a row group's Q rows when Q is
 * held (staged a group at a time).
 */
function stagingElements(c: MatrixForwardConfig): number {
  const st = strides(c);
  const tile = c.tile * Math.max(st.k, st.v);
  return matrixForwardQueryInWorkgroup(c) ? tile : Math.max(tile, split(c).groupRows * st.q);
}

/** f16 elements of Q's own workgroup array (none when Q is held in registers). */
function queryElements(c: MatrixForwardConfig): number {
  return matrixForwardQueryInWorkgroup(c) ? matrixForwardRows(c) * strides(c).q : 0;
}

/**
 * Workgroup memory the kernel declares, in bytes: staging, Q where it is not held, scores (f32),
 * probabilities (f16), each subgroup's per-row statistic, each row's scale factor and the rescale
 * flag.
 */
export function matrixForwardSharedBytes(c: MatrixForwardConfig): number {
  const rows = matrixForwardRows(c);
  const st = strides(c);
  return (
    (stagingElements(c) + queryElements(c)) * 2 +
    rows * (st.s * 4 + st.p * 2) +
    c.subgroups * rows * 4 +
    rows * 4 +
    16
  );
}

const isPowerOfTwo = (x: number) => Number.isInteger(x) && x >= 1 && (x & (x - 1)) === 0;

/** Why a shape cannot use the tensor-core forward, or undefined when it can. */
export function matrixForwardUnsupported(c: MatrixForwardConfig): string | undefined {
  const { N, K } = c.matrix;
  const { groupRows: rows, keys, columns, lanesPerRow, perLane } = split(c);
  if (c.d % K !== 0) return `d = ${c.d} is not a multiple of the matrix K = ${K}`;
  if (c.tile % K !== 0) return `tile ${c.tile} is not a multiple of the matrix K = ${K}`;
  if (!Number.isInteger(keys) || keys % N !== 0) {
    return `tile ${c.tile} does not split into multiples of N = ${N} over ${c.subgroups} subgroups`;
  }
  if (!Number.isInteger(columns) || columns % N !== 0) {
    return `dv = ${c.dv} does not split into multiples of N = ${N} over ${c.subgroups} subgroups`;
  }
  if (!isPowerOfTwo(lanesPerRow))
    return `subgroup size ${c.subgroupSize} is not a power-of-two multiple of ${rows} rows`;
  if (!isPowerOfTwo(perLane))
    return `${keys} keys do not split into a power of two per lane over ${lanesPerRow} lanes`;
  if (c.vectorScores && perLane % 4 !== 0)
    return `vector scores need 4 keys per lane or more, not ${perLane}`;
  const groups = rowGroupsUnsupported(c);
  if (groups) return groups;
  if (rowGroupsOf(c) > 1 && matrixForwardQueryInWorkgroup(c)) return 'row groups need Q held in registers';
  return undefined;
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/** WGSL of the tensor-core forward (f16 q, k, v, o; f32 lse). */
export function flashForwardMatrixWgsl(c: MatrixForwardConfig): string {
  const { M, N, K, left, right, result } = matrixShape(c);
  const { rows, groupRows, keys, columns, lanesPerRow, perLane } = split(c);
  const R = c.rowFragments;
  // Row groups: each subgroup's slice of the keys and columns (`sgc`) within its group, and the
  // group's first row (`rowBase`); one group keeps the kernel's text as it was.
  const rowGroups = rowGroupsOf(c);
  const grouped = rowGroups > 1;
  const allSubgroups = matrixForwardSubgroups(c);
  const threads = allSubgroups * c.subgroupSize;
  const st = strides(c);
  const q = fragmentGridNames('qf', R, c.d / K);
  const queryInWorkgroup = matrixForwardQueryInWorkgroup(c);
  const queryFragment = (r: number, kk: number) =>
    queryInWorkgroup
      ? `subgroupMatrixLoad<${left}, row_major>(&Qs, ${r * M * st.q + kk * K}u, ${st.q}u)`
      : q[r]?.[kk];
  const o = fragmentGridNames('of', R, columns / N);
  // The staging array's element: f16, or vectors of four (offsets and strides into it divided by 4).
  const unit = c.vectorStaging ? 4 : 1;
  const xs = (f16Elements: number) => f16Elements / unit;
  // Likewise the scores' and probabilities' arrays, and a lane's keys in groups of four (not
  // rotated by row like single keys: rows 36 words apart already put the 16-byte reads of eight
  // lanes on different banks).
  const vectorScores = c.vectorScores === true;
  const sUnit = vectorScores ? 4 : 1;
  const sv = (elements: number) => elements / sUnit;
  const groups = perLane / 4;
  const component = (k: number) => COMPONENTS[k % 4];

  // The steps of a key tile that other walks share (forward-tile.wgsl.ts), in this kernel's shape.
  const tile: ForwardTileShape = {
    matrix: c.matrix,
    rowFragments: R,
    keys,
    columns,
    lanesPerRow,
    perLane,
    staging: 'Xs',
    keyStride: st.k,
    valueStride: st.v,
    stagingUnit: unit,
    scoreStride: st.s,
    probabilityStride: st.p,
    scoreUnit: sUnit,
    accumulators: o,
    types: { left, right, result },
    ...(grouped && { rowGroup: { rowBase: 'rowBase', subgroups: `${allSubgroups}u` } }),
  };
  // S = Q·Kᵀ for the subgroup's slice of the staged key tile, stored to its columns of Ss.
  const scores = tileScoresWgsl(tile, c.d / K, queryFragment, '    ');

  const staged = (src: 'k' | 'v'): StagedRowsVec4 => ({
    dest: 'Xs',
    src,
    rows: c.tile,
    width: src === 'k' ? c.d : c.dv,
    destStride: src === 'k' ? st.k : st.v,
    tokenStart: 'sp.kStart',
    heads: 'p.hkv',
    head: 'hk',
    first: 'k0',
    end: 'range.y',
    threads,
    wide: c.wideLoads,
    vectorDest: c.vectorStaging,
  });
  const stage = (src: 'k' | 'v') => stageRowsVec4Wgsl(staged(src));
  const values = c.prefetchValues
    ? stageRowsVec4Prefetched(staged('v'))
    : { declarations: '', loads: '', stores: stage('v') };

  const scoreTile = `    workgroupBarrier();
    ${stage('k')}
    workgroupBarrier();
${scores}
    ${values.loads}
    workgroupBarrier();
    let open = tileOpen(sp, k0, first, last, range.y);
${
  vectorScores
    ? range(groups)
        .map(
          (g) =>
            `    let jv${g} = sgc * ${keys / 4}u + part * ${groups}u + ${g}u;\n${range(4)
              .map((i) => `    let jj${4 * g + i} = 4u * jv${g} + ${i}u;`)
              .join('\n')}`,
        )
        .join('\n')
    : range(perLane)
        .map(
          (k) => `    let jj${k} = sgc * ${keys}u + part * ${perLane}u + ((${k}u + row) & ${perLane - 1}u);`,
        )
        .join('\n')
}`;

  // The lane's keys, unrolled: an open tile needs no mask test, the others test every key.
  const eachKey = (body: (k: number, seen: string) => string) => `    if (open) {
${range(perLane)
  .map((k) => body(k, 'true'))
  .join('\n')}
    } else {
${range(perLane)
  .map(
    (k) =>
      `      let seen${k} = k0 + i32(jj${k}) < range.y && visible(sp, i, k0 + i32(jj${k}));\n${body(k, `seen${k}`)}`,
  )
  .join('\n')}
    }`;

  // A key's score: from the lane's vector of four loaded before, or from its own element.
  const score = (k: number) =>
    vectorScores ? `sv${Math.floor(k / 4)}.${component(k)}` : `Ss[row * ${st.s}u + jj${k}]`;
  // P = exp2(S − m), a masked key's 0, added to the lane's sum in key order and stored.
  const probabilities = vectorScores
    ? vectorProbabilitiesWgsl(tile, '    ')
    : range(perLane)
        .map((k) => `    { let pr = ${probabilityWgsl(k)}; l += pr; Ps[row * ${st.p}u + jj${k}] = f16(pr); }`)
        .join('\n');
  // The tile's scores in registers, masked ones at MASKED; the row's max over the tile, from every
  // lane and subgroup; the lazy max; then the probabilities.
  const tileStep = `${range(perLane)
    .map((k) => `    var x${k} = ${MASKED};`)
    .join('\n')}
${
  vectorScores
    ? range(groups)
        .map((g) => `    let sv${g} = Ss[row * ${st.s / 4}u + jv${g}];`)
        .join('\n')
    : ''
}
${eachKey((k, seen) => `      if (${seen}) { x${k} = ${score(k)} * scale2; }`)}
${lazyTileMaxWgsl(tile, '    ')}
${probabilities}`;

  const products = valueProductsWgsl(tile, c.tile, '    ');

  // The accumulator reaches the lanes through the subgroup's columns of Ss, `keys` columns at a
  // time: to be rescaled (then loaded back), and at the end to be written out.
  // RowScale holds each row's 1 / sum by then. Where rows are grouped, a subgroup's columns are its
  // slice's and its rows its group's.
  const { firstRow, slice } = subgroupPlace(tile);
  const writeOut = throughScoresWgsl(
    tile,
    '  ',
    (chunk, width) => `    for (var e = lane; e < ${(groupRows * width) / 4}u; e += ${c.subgroupSize}u) {
      let r = ${firstRow}e / ${width / 4}u;
      let at = r * ${sv(st.s)}u + ${slice} * ${sv(keys)}u + ${vectorScores ? '' : '4u * '}(e % ${width / 4}u);
      let oi = first + i32(r);
      if (oi <= last) {
        o[((sp.qStart + u32(oi) + split * p.splitRows) * p.hq + h) * ${c.dv / 4}u + ${slice} * ${columns / 4}u + ${(chunk * width) / 4}u + e % ${width / 4}u] =
          vec4<f16>(${vectorScores ? 'Ss[at]' : 'vec4<f32>(Ss[at], Ss[at + 1u], Ss[at + 2u], Ss[at + 3u])'} * RowScale[r]);
      }
    }`,
    false,
  );

  // Q's rows into the staging array (or Qs), then each subgroup's fragments held from there.
  const queryStaging = (rowsStaged: number, first: string) =>
    stageRowsVec4Wgsl({
      dest: queryInWorkgroup ? 'Qs' : 'Xs',
      src: 'q',
      rows: rowsStaged,
      width: c.d,
      destStride: st.q,
      tokenStart: 'sp.qStart',
      heads: 'p.hq',
      head: 'h',
      first,
      end: 'last + 1',
      threads,
      wide: c.wideLoads,
      vectorDest: !queryInWorkgroup && c.vectorStaging,
    });
  const queryWgsl = () => `  ${queryStaging(rows, 'first')}
  workgroupBarrier();
${
  queryInWorkgroup
    ? ''
    : q
        .flatMap((frags, r) =>
          frags.map(
            (f, kk) =>
              `  let ${f} = subgroupMatrixLoad<${left}, row_major>(&Xs, ${xs(r * M * st.q + kk * K)}u, ${xs(st.q)}u);`,
          ),
        )
        .join('\n')
}`;
  // Grouped: one group's rows at a time through the staging array, the group's subgroups loading
  // their fragments in its turn.
  const groupedQueryWgsl = () =>
    heldInTurnsWgsl(
      q.flatMap((frags, r) =>
        frags.map((name, kk) => ({
          name,
          load: `subgroupMatrixLoad<${left}, row_major>(&Xs, ${xs(r * M * st.q + kk * K)}u, ${xs(st.q)}u)`,
        })),
      ),
      left,
      range(rowGroups).map((g) => ({
        staging: queryStaging(groupRows, `first + ${g * groupRows}`),
        when: `rowBase == ${g * groupRows}u`,
      })),
    );
  return `${matrixKernelHeader(c)}
@group(0) @binding(0) var<storage, read> q: array<${rowVectorType(c.wideLoads)}>;
@group(0) @binding(1) var<storage, read> k: array<${rowVectorType(c.wideLoads)}>;
@group(0) @binding(2) var<storage, read> v: array<${rowVectorType(c.wideLoads)}>;
@group(0) @binding(3) var<storage, read> launch: array<u32>;
@group(0) @binding(4) var<storage, read_write> o: array<vec4<f16>>;
@group(0) @binding(5) var<storage, read_write> lse: array<f32>;
@group(0) @binding(6) var<uniform> p: Params;

const D = ${c.d}u;
const DV = ${c.dv}u;
const ROWS = ${rows}u;
const TILE = ${c.tile}u;
const THREADS = ${threads}u;
const SUBGROUPS = ${c.subgroups}u;
const LOG2E = 1.4426950408889634;
var<workgroup> Xs: array<${c.vectorStaging ? 'vec4<f16>' : 'f16'}, ${xs(stagingElements(c))}>;
${queryInWorkgroup ? `var<workgroup> Qs: array<f16, ${queryElements(c)}>;` : ''}
var<workgroup> Ss: array<${vectorScores ? 'vec4<f32>' : 'f32'}, ${sv(rows * st.s)}>;
var<workgroup> Ps: array<${vectorScores ? 'vec4<f16>' : 'f16'}, ${sv(rows * st.p)}>;
${lazyRowArraysWgsl(c.subgroups, rows)}

${SEQUENCE_WGSL}

${WORKGROUP_INDEX_WGSL}

// Whether every row in [first, last] sees every key of the tile at k0: then no key needs a test.
fn tileOpen(sp: Span, k0: i32, first: i32, last: i32, end: i32) -> bool {
  let k1 = k0 + i32(TILE) - 1;
  return k1 < end && blockVisible(sp, first, last, k0, k1);
}

${matrixEntryPoint({ ...c, subgroups: allSubgroups })}
${queryTileWgsl('ROWS', true)}
${
  grouped
    ? `  // Narrower subgroups than built for would add subgroups: they repeat the last one's work. The
  // subgroup's slice of the keys and columns in its row group, and the group's first row.
  let sgAll = min(sg, ${allSubgroups - 1}u);
  let sgc = sgAll % SUBGROUPS;
  let rowBase = (sgAll / SUBGROUPS) * ${groupRows}u;
  // This lane's row of the workgroup, and its part of the subgroup's slice of each tile.
  let row = rowBase + lane % ${groupRows}u;
  let part = lane / ${groupRows}u;`
    : `  // Narrower subgroups than built for would add subgroups: they repeat the last one's work.
  let sgc = min(sg, SUBGROUPS - 1u);
  // This lane's row, and its part of the subgroup's slice of each tile.
  let row = lane % ROWS;
  let part = lane / ROWS;`
}
  let i = first + i32(row);
  // Scores in base 2: exp(x) = exp2(x · log2 e).
  let scale2 = p.scale * LOG2E;
${grouped ? groupedQueryWgsl() : queryWgsl()}
  let range = splitRange(keyRange(sp, first, last), split);

  if (li == 0u) { rescaleFlag[0] = 0u; }
  // This row's lazy max (base 2, the same in every lane of the row) and this lane's part of its sum.
  var m = ${MASKED};
  var l = 0.0;
${o
  .flat()
  .map((f) => `  var ${f} = ${result}();`)
  .join('\n')}
${values.declarations}
  for (var k0 = range.x; k0 < range.y; k0 += i32(TILE)) {
${scoreTile}
${tileStep}
    ${values.stores}
${lazyRescaleWgsl(tile, '    ')}
${products}
  }
${rowSumWgsl(tile)}
  if (${grouped ? `sgc == 0u && sg < ${allSubgroups}u` : 'sg == 0u'} && part == 0u) {
    RowScale[row] = select(0.0, 1.0 / l, l > 0.0);
    // A row with no key gets lse = -inf (and an output of 0).
    if (i <= last) {
      lse[split * p.lseSplit + sp.lseBase + h * p.lseHeadStride + u32(i)] = select(p.negInf, (m + log2(l)) * ${Math.LN2}, l > 0.0);
    }
  }
${writeOut}
}
`;
}

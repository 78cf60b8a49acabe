/**
 * Backward of selected-block attention on tensor cores, deterministic (no atomics), from the saved
 * `stats = [lse | delta]`.
 *
 * dQ: one workgroup per (token, KV head), like the forward: the group's query and upstream-gradient
 * rows are fragments in registers; per tile of selected keys, S = Q·Kᵀ and dP = dO·Vᵀ (each
 * subgroup a 16-key slice), dS = P ⊙ (dP - delta) in f16 through workgroup memory, and dQ += dS·K
 * with each subgroup owning a slice of dQ's columns.
 *
 * dK and dV: one workgroup per (tile of keys of one selection block, KV head). The workgroup stages
 * its keys once, walks the tokens whose selection lists the block in token order (the inverted
 * selection, select/inverse.ts, so the sums run in the same order every time), and for each
 * recomputes the G heads' probabilities against its keys and adds Pᵀ·dO (dV) or dSᵀ·Q (dK); each
 * subgroup owns 16 keys. dK and dV are separate kernels so that none
 * binds more than 8 storage buffers.
 */
import {
  enables,
  fragmentGridNames,
  paramsStruct,
  rowVectorType,
  type StagingSet,
  stageRowsVec4Set,
  stageRowsVec4Wgsl,
  subgroupMainWgsl,
  subgroupMatrixTypes,
  unrolledStagingSetsWgsl,
  WORKGROUP_INDEX_WGSL,
} from '@webattn/core';
import { NSA_SEQUENCE_WGSL } from '../layout.js';
import {
  groupRowsOf,
  keyRowsOf,
  loadFragmentsWgsl,
  type RowsOf,
  sliceProductWgsl,
  storeSliceWgsl,
} from '../matrix.wgsl.js';
import { SELECTED_PARAMS } from './selected.wgsl.js';
import {
  type SelectedMatrixConfig,
  selectedKeyTilesLoopWgsl,
  tokenOfWorkgroupWgsl,
} from './selected-matrix.wgsl.js';

/**
 * Uniform parameters of the tensor-core backward: the forward's, where the block table starts,
 * where the inverted selection's entries and chunk starts begin, its lists (blocks · KV heads)
 * and the tokens per chunk.
 */
export const SELECTED_MATRIX_BACKWARD_PARAMS = [
  ...SELECTED_PARAMS,
  ['blockTable', 'u32'],
  ['inverseEntries', 'u32'],
  ['slots', 'u32'],
  ['chunkStart', 'u32'],
  ['keyChunk', 'u32'],
] as const;

/** How the work divides: row fragments and rows (the group, padded), key slices (subgroups), invocations. */
export function split(c: SelectedMatrixConfig) {
  const fragments = Math.ceil(c.group / c.matrix.M);
  const rows = fragments * c.matrix.M;
  const subgroups = c.tile / c.matrix.N;
  return { fragments, rows, subgroups, threads: subgroups * c.subgroupSize };
}

/** Row strides of the workgroup arrays in elements, padded by 16 bytes against bank conflicts. */
export function strides(c: SelectedMatrixConfig) {
  return { k: c.d + 8, v: c.dv + 8, s: c.tile + 4, p: c.tile + 8, out: c.matrix.N + 4 };
}

/**
 * Elements of the dQ kernel's value array: the group's dO rows, then each value tile, then (once
 * dP is taken) the tile's dS. Sharing it keeps 64-key tiles within 48 KiB at d = 128.
 */
function dqValuesLength(c: SelectedMatrixConfig): number {
  const { rows } = split(c);
  const st = strides(c);
  return Math.max(Math.max(c.tile, rows) * st.v, rows * st.p);
}

/** Workgroup memory of the dQ kernel in bytes. */
export function selectedDqMatrixSharedBytes(c: SelectedMatrixConfig): number {
  const { rows, subgroups } = split(c);
  const st = strides(c);
  return (
    Math.max(c.tile, rows) * st.k * 2 +
    dqValuesLength(c) * 2 +
    2 * rows * st.s * 4 +
    rows * 8 +
    subgroups * c.matrix.M * st.out * 4
  );
}

/** Workgroup memory of the dK or dV kernel in bytes. */
export function selectedKeysMatrixSharedBytes(c: SelectedMatrixConfig, grad: 'dk' | 'dv'): number {
  const { rows, subgroups } = split(c);
  const st = strides(c);
  return (
    c.tile * (st.k + (grad === 'dk' ? st.v : 0)) * 2 +
    rows * (st.k + st.v) * 2 +
    (grad === 'dk' ? 2 : 1) * rows * st.s * 4 +
    rows * st.p * 2 +
    rows * 8 +
    subgroups * c.matrix.M * st.out * 4
  );
}

/** Why a shape cannot use the tensor-core backward, or undefined when it can. */
export function selectedBackwardMatrixUnsupported(c: SelectedMatrixConfig): string | undefined {
  const { M, N, K } = c.matrix;
  const { subgroups } = split(c);
  if (M !== N || N !== K) return `matrix shape ${M}x${N}x${K} is not square`;
  if (c.blockSize % c.tile !== 0) return `block size ${c.blockSize} is not a multiple of the tile ${c.tile}`;
  if (!Number.isInteger(subgroups) || subgroups < 1) return `tile ${c.tile} is not a multiple of N = ${N}`;
  if (c.d % K !== 0 || c.dv % K !== 0) return `d = ${c.d}, dv = ${c.dv} are not multiples of K = ${K}`;
  if ((c.d / N) % subgroups !== 0) return `d = ${c.d} does not split into ${subgroups} slices of N = ${N}`;
  if (c.group > 2 * M) return `group ${c.group} is more than two fragments of ${M} rows`;
  return undefined;
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/**
 * Where key tile `tile` of the inverted selection's list `slot` (a block of one KV head) lies: the
 * KV head `g`, the block's sequence `sq` and length `len`, the tile's first key `k0` in it; the
 * workgroup returns when the tile starts past the sequence's end (a short last block).
 */
const KEY_TILE_OF_LIST_WGSL = `  let g = slot % p.kvHeads;
  let s0 = tables[p.blockTable + slot / p.kvHeads];
  let sq = sequenceOf(s0);
  let len = i32(sq.length);
  let k0 = i32(s0 - sq.start) + i32(tile * TILE);
  if (k0 >= len) { return; }`;

/**
 * The opening of the dK and dV kernels: one workgroup per (chunk of a block's token list, key tile
 * of the block), the chunks of all lists in list order (see inverseChunksWgsl). Defines the chunk,
 * the tile, its list `slot` and what {@link KEY_TILE_OF_LIST_WGSL} defines, and the chunk's range
 * `mFirst..mEnd` of the list's entries.
 */
export const CHUNK_OF_LIST_WGSL = `  // One workgroup per (chunk of a block's token list, key tile of the block); the chunks of all
  // lists in list order (see inverseChunksWgsl).
  let w = workgroupIndex(wid, nwg);
  let tilesPerBlock = u32(p.blockSize) / TILE;
  let chunk = w / tilesPerBlock;
  let tile = w % tilesPerBlock;
  // Read-only storage at uniform addresses: the chunk's list, block, sequence and tile are uniform.
  if (chunk >= inverse[p.chunkStart + p.slots]) { return; }
  // The list whose chunks include this one: the last whose first chunk is not after it.
  var lo = 0u;
  var hi = p.slots;
  loop {
    if (hi - lo <= 1u) { break; }
    let mid = (lo + hi) / 2u;
    if (inverse[p.chunkStart + mid] <= chunk) { lo = mid; } else { hi = mid; }
  }
  let slot = lo;
${KEY_TILE_OF_LIST_WGSL}
  let mFirst = inverse[slot] + (chunk - inverse[p.chunkStart + slot]) * p.keyChunk;
  let mEnd = min(mFirst + p.keyChunk, inverse[slot + 1u]);`;

/**
 * The head of the dK/dV kernels' loop over their chunk's tokens, its brace left open for the
 * body: defines the token's position `pos` and index `t`, after a barrier that lets the body
 * overwrite the previous token's rows. With `indexAhead` each token's position is read during the
 * token before.
 */
export function chunkTokensLoopWgsl(c: Pick<SelectedMatrixConfig, 'indexAhead'>): string {
  const comment = `  // The chunk's tokens that selected the block, in order, from the inverted selection: read-only
  // storage at uniform addresses, so the loop is uniform. Tokens before k0 cannot see the tile's keys.`;
  const body = `    if (pos < k0) { continue; }
    workgroupBarrier();
    let t = sq.start + u32(pos);`;
  return c.indexAhead
    ? `${comment}
  // Each token's position read during the token before: its rows' loads need not wait for it.
  var nextPos = 0;
  if (mFirst < mEnd) { nextPos = i32(inverse[p.inverseEntries + mFirst]); }
  for (var m = mFirst; m < mEnd; m++) {
    let pos = nextPos;
    if (m + 1u < mEnd) { nextPos = i32(inverse[p.inverseEntries + m + 1u]); }
${body}`
    : `${comment}
  for (var m = mFirst; m < mEnd; m++) {
    let pos = i32(inverse[p.inverseEntries + m]);
${body}`;
}

/**
 * The rows of the key tile for stageRowsVec4Set (d = dv): `c.tile` rows of k or v from key `k0`
 * of KV head `g`, those before `end` (a WGSL i32 expression) staged, staged by `threads`
 * invocations, 16 bytes per load where `c.wideLoads`.
 */
export function keyTileRows(c: SelectedMatrixConfig, threads: number, end: string) {
  return { ...keyRowsOf(c.tile, end), width: c.d, destStride: strides(c).k, threads, wide: c.wideLoads };
}

/**
 * The bindings of q, k, v and dO for the role-split kernels' header: as `vec4<u32>`, eight f16 per
 * load, where `c.wideLoads`.
 */
export function rowBindings(c: SelectedMatrixConfig): Record<'q' | 'k' | 'v' | 'dout', string> {
  const type = `array<${rowVectorType(c.wideLoads)}>`;
  return {
    q: `read> q: ${type}`,
    k: `read> k: ${type}`,
    v: `read> v: ${type}`,
    dout: `read> dout: ${type}`,
  };
}

/** Header shared by the three kernels: extensions, params, the sequence lookup, the entry point. */
export function header(c: SelectedMatrixConfig, bindings: string[]): string {
  return `${enables({ subgroupMatrix: true, subgroupSizeControl: c.pinSubgroupSize })}
${paramsStruct(SELECTED_MATRIX_BACKWARD_PARAMS)}
${bindings.map((b, i) => `@group(0) @binding(${i}) var<storage, ${b};`).join('\n')}
@group(0) @binding(${bindings.length}) var<uniform> p: Params;

const GROUP = ${c.group}u;
const TOPN = ${c.topN}u;
const TILE = ${c.tile}u;
const LOG2E = 1.4426950408889634;

${NSA_SEQUENCE_WGSL}

${WORKGROUP_INDEX_WGSL}`;
}

/**
 * The group's lse (base 2) and delta of token t into `Lse2` and `Delta`, as one set of a staging
 * step (rows past the group get lse +inf and delta 0, so their probabilities are 0).
 */
export function rowStatsSet(rows: number): StagingSet {
  return {
    count: rows,
    index: 'es',
    load: (k, inRange) => `    var esl${k} = 3.0e38;
    var esd${k} = 0.0;
    if (${inRange}es${k} < GROUP) {
      let row = t * p.heads + g * GROUP + es${k};
      esl${k} = stats[row] * LOG2E;
      esd${k} = stats[p.tokens * p.heads + row];
    }`,
    store: (k) => `      Lse2[es${k}] = esl${k};
      Delta[es${k}] = esd${k};`,
  };
}

/** The workgroup arrays {@link rowStatsSet} fills: each row's lse (base 2) and delta. */
export function rowStatsArraysWgsl(rows: number): string {
  return `var<workgroup> Lse2: array<f32, ${rows}>;
var<workgroup> Delta: array<f32, ${rows}>;`;
}

/**
 * The role-split kernels' subgroup index `sgc` and its key slice `slice` (of `SLICES`), for
 * `subgroups` subgroups.
 */
export function roleSliceWgsl(subgroups: number): string {
  return `  // Narrower subgroups than built for would add subgroups: they repeat the last one's work.
  let sgc = min(sg, ${subgroups - 1}u);
  let slice = sgc % SLICES;`;
}

/**
 * Token t's group rows of q and dO (into `qDest`, `oDest`) and their statistics in one unrolled
 * step: every load of the three before the first store, so that the token waits out the memory
 * latency once, not three times (the flash backward's dK/dV kernel lost half its time that way).
 */
function tokenRowsWgsl(c: SelectedMatrixConfig, qDest: string, oDest: string): string {
  const { rows, threads } = split(c);
  const st = strides(c);
  const groupRows = groupRowsOf(rows);
  return unrolledStagingSetsWgsl(threads, [
    stageRowsVec4Set({ dest: qDest, src: 'q', width: c.d, destStride: st.k, threads, ...groupRows }, 'eq'),
    stageRowsVec4Set(
      { dest: oDest, src: 'dout', width: c.dv, destStride: st.v, threads, ...groupRows },
      'eo',
    ),
    rowStatsSet(rows),
  ]);
}

/** A result fragment to write out: its name, its first row and its first column (a WGSL u32 expression). */
export interface OutFragment {
  name: string;
  row: string;
  col: string;
}

/**
 * Writes result fragments to a storage array of f16, scaled by `factor`, one fragment at a time
 * through the subgroup's slice of `scratch` (f32, `Xout` with padded rows unless given; fragments
 * are f32 and the storage f16). `target(row, col)` is the element's storage reference,
 * `valid(row)` whether the row exists.
 */
export function writeFragmentsWgsl(
  c: SelectedMatrixConfig,
  frags: OutFragment[],
  target: (row: string, col: string) => string,
  valid: (row: string) => string,
  factor: string,
  scratch: { array: string; stride: number } = { array: 'Xout', stride: strides(c).out },
): string {
  const { M, N } = c.matrix;
  const { array, stride } = scratch;
  const base = `sgc * ${M * stride}u`;
  return frags
    .map(
      ({ name, row, col }) => `  subgroupMatrixStore<row_major>(&${array}, ${base}, ${name}, ${stride}u);
  workgroupBarrier();
  for (var e = lane; e < ${M * N}u; e += ${c.subgroupSize}u) {
    let r = ${row} + e / ${N}u;
    let cc = ${col} + e % ${N}u;
    if (${valid('r')}) { ${target('r', 'cc')} = f16(${array}[${base} + (e / ${N}u) * ${stride}u + e % ${N}u] * ${factor}); }
  }
  workgroupBarrier();`,
    )
    .join('\n');
}

/**
 * dQ += dS·K for the subgroup's `cols` columns of dQ (fragments `dq[r][n]`): per K-step of the
 * tile, each row fragment's dS loaded once from `ds` (row stride `p`, from `dsOffset`) and each
 * key fragment of the subgroup's columns once from `keys`.
 */
export function dsKeyProductsWgsl(
  c: SelectedMatrixConfig,
  o: { ds: string; dsOffset: number; keys: string; cols: number; dq: string[][] },
): string {
  const { M, N, K } = c.matrix;
  const { left, right } = subgroupMatrixTypes(c.matrix);
  const st = strides(c);
  const fragments = o.dq.length;
  return range(c.tile / K)
    .map(
      (kc) => `      {
${range(fragments)
  .map(
    (r) =>
      `        let ds${r} = subgroupMatrixLoad<${left}, row_major>(&${o.ds}, ${o.dsOffset + r * M * st.p + kc * K}u, ${st.p}u);`,
  )
  .join('\n')}
${range(o.cols / N)
  .map(
    (
      n,
    ) => `        { let kf = subgroupMatrixLoad<${right}, row_major>(&${o.keys}, ${kc * K * st.k}u + sgc * ${o.cols}u + ${n * N}u, ${st.k}u);
${range(fragments)
  .map((r) => `          ${o.dq[r]?.[n]} = subgroupMatrixMultiplyAccumulate(ds${r}, kf, ${o.dq[r]?.[n]});`)
  .join('\n')}
        }`,
  )
  .join('\n')}
      }`,
    )
    .join('\n');
}

/** WGSL of the tensor-core dQ kernel. Bindings: q, k, v, selected, tables, dout, stats, dq. */
export function selectedDqMatrixWgsl(c: SelectedMatrixConfig): string {
  const { M, N, K } = c.matrix;
  const { result } = subgroupMatrixTypes(c.matrix);
  const { fragments, rows, subgroups, threads } = split(c);
  const st = strides(c);
  const qf = fragmentGridNames('qf', fragments, c.d / K);
  const of = fragmentGridNames('of', fragments, c.dv / K);
  const cols = c.d / subgroups;
  const dq = range(fragments).map((r) => range(cols / N).map((n) => `dq${r}_${n}`));
  const stage = (dest: string, src: string, width: number, stride: number, o: RowsOf) =>
    stageRowsVec4Wgsl({ dest, src, width, destStride: stride, threads, ...o });
  const keyRows = keyRowsOf(c.tile);
  const store = (from: string, dest: string, indent: string) =>
    storeSliceWgsl({ matrix: c.matrix, from, fragments, dest, stride: st.s, indent }).join('\n');
  const products = (into: string, frags: string[][], keys: string, stride: number, steps: number) =>
    sliceProductWgsl({
      matrix: c.matrix,
      into,
      fragments,
      steps,
      left: (r, kk) => frags[r]?.[kk] ?? '',
      keys,
      stride,
      indent: '    ',
    });
  return `${header(c, ['read> q: array<vec4<f16>>', 'read> k: array<vec4<f16>>', 'read> v: array<vec4<f16>>', 'read> selected: array<i32>', 'read> tables: array<u32>', 'read> dout: array<vec4<f16>>', 'read> stats: array<f32>', 'read_write> dq: array<f16>'])}
const SUBGROUPS = ${subgroups}u;
// Key and value tiles (the group's q and dO rows before the first); once a tile's dP is taken,
// its dS [row][key] (row stride ${st.p}) in the value tile's place.
var<workgroup> Ks: array<f16, ${Math.max(c.tile, rows) * st.k}>;
var<workgroup> Vs: array<f16, ${dqValuesLength(c)}>;
var<workgroup> Ss: array<f32, ${rows * st.s}>;
var<workgroup> Ds: array<f32, ${rows * st.s}>;
${rowStatsArraysWgsl(rows)}
var<workgroup> Xout: array<f32, ${subgroups * M * st.out}>;

${subgroupMainWgsl(threads, c)}
${tokenOfWorkgroupWgsl(c)}
  let sgc = min(sg, SUBGROUPS - 1u);
  ${tokenRowsWgsl(c, 'Ks', 'Vs')}
  workgroupBarrier();
${loadFragmentsWgsl(c.matrix, qf, 'Ks', st.k)}
${loadFragmentsWgsl(c.matrix, of, 'Vs', st.v)}
${dq
  .flat()
  .map((name) => `  var ${name} = ${result}();`)
  .join('\n')}
  let scale2 = p.scale * LOG2E;
${selectedKeyTilesLoopWgsl(c)}
      workgroupBarrier();
      ${stage('Ks', 'k', c.d, st.k, keyRows)}
      ${stage('Vs', 'v', c.dv, st.v, keyRows)}
      workgroupBarrier();
${products('sf', qf, 'Ks', st.k, c.d / K).join('\n')}
${products('pf', of, 'Vs', st.v, c.dv / K).join('\n')}
${store('sf', 'Ss', '      ')}
${store('pf', 'Ds', '      ')}
      workgroupBarrier();
      for (var e = li; e < ${rows * c.tile}u; e += ${threads}u) {
        let r = e / TILE;
        let col = e % TILE;
        let at = r * ${st.s}u + col;
        let prob = select(0.0, exp2(Ss[at] * scale2 - Lse2[r]), k0 + i32(col) <= pos);
        Vs[r * ${st.p}u + col] = f16(prob * (Ds[at] - Delta[r]));
      }
      workgroupBarrier();
${dsKeyProductsWgsl(c, { ds: 'Vs', dsOffset: 0, keys: 'Ks', cols, dq })}
    }
  }
${writeFragmentsWgsl(
  c,
  dq.flatMap((f, r) => f.map((name, n) => ({ name, row: `${r * M}u`, col: `sgc * ${cols}u + ${n * N}u` }))),
  (row, col) => `dq[(t * p.heads + g * GROUP + ${row}) * ${c.d}u + ${col}]`,
  (row) => `${row} < GROUP`,
  'p.scale',
)}
}
`;
}

/**
 * WGSL of the tensor-core dK (`grad = 'dk'`) or dV kernel: one workgroup per (chunk of a block's
 * token list, key tile of the block), each writing its chunk's part of the tile's gradient to
 * `partials` (f32) for {@link selectedKeysSumWgsl}. Bindings: q, k, v, inverse, tables, dout,
 * stats, partials for dK; q, k, inverse, tables, dout, stats, partials for dV.
 */
export function selectedKeysMatrixWgsl(c: SelectedMatrixConfig, grad: 'dk' | 'dv'): string {
  const { M, N, K } = c.matrix;
  const { left, right, result } = subgroupMatrixTypes(c.matrix);
  const { fragments, rows, subgroups, threads } = split(c);
  const st = strides(c);
  const dk = grad === 'dk';
  const width = dk ? c.d : c.dv;
  const acc = range(width / N).map((n) => `acc${n}`);
  const stage = (dest: string, src: string, w: number, stride: number, o: RowsOf) =>
    stageRowsVec4Wgsl({ dest, src, width: w, destStride: stride, threads, ...o });
  const keyRows = keyRowsOf(c.tile, 'len');
  const store = (from: string, dest: string, indent: string) =>
    storeSliceWgsl({ matrix: c.matrix, from, fragments, dest, stride: st.s, indent }).join('\n');
  // S (or dP) for the subgroup's 16 keys: the group's rows of `rowsArray` times the keys of `keys`.
  const sliceProducts = (into: string, rowsArray: string, keys: string, stride: number, steps: number) =>
    sliceProductWgsl({
      matrix: c.matrix,
      into,
      fragments,
      steps,
      left: (r, kk) =>
        `subgroupMatrixLoad<${left}, row_major>(&${rowsArray}, ${r * M * stride + kk * K}u, ${stride}u)`,
      keys,
      stride,
      indent: '        ',
    });
  const bindings = [
    'read> q: array<vec4<f16>>',
    'read> k: array<vec4<f16>>',
    ...(dk ? ['read> v: array<vec4<f16>>'] : []),
    'read> inverse: array<u32>',
    'read> tables: array<u32>',
    'read> dout: array<vec4<f16>>',
    'read> stats: array<f32>',
    'read_write> partials: array<f32>',
  ];
  // The gradient's rows multiply: Q for dK, dO for dV.
  const [xs, xStride] = dk ? ['Qs', st.k] : ['Os', st.v];
  return `${header(c, bindings)}
const SUBGROUPS = ${subgroups}u;
const THREADS = ${threads}u;
var<workgroup> Ks: array<f16, ${c.tile * st.k}>;
${dk ? `var<workgroup> Vs: array<f16, ${c.tile * st.v}>;` : ''}
// The group's q and dO rows of the token being added.
var<workgroup> Qs: array<f16, ${rows * st.k}>;
var<workgroup> Os: array<f16, ${rows * st.v}>;
var<workgroup> Ss: array<f32, ${rows * st.s}>;
${dk ? `var<workgroup> Ds: array<f32, ${rows * st.s}>;` : ''}
// P (dV) or dS (dK) of the token's rows against the tile's keys, f16.
var<workgroup> Ps: array<f16, ${rows * st.p}>;
${rowStatsArraysWgsl(rows)}
var<workgroup> Xout: array<f32, ${subgroups * M * st.out}>;

${subgroupMainWgsl(threads, c)}
${CHUNK_OF_LIST_WGSL}
  let sgc = min(sg, SUBGROUPS - 1u);
  let scale2 = p.scale * LOG2E;
  ${stage('Ks', 'k', c.d, st.k, keyRows)}
  ${dk ? stage('Vs', 'v', c.dv, st.v, keyRows) : ''}
${acc.map((name) => `  var ${name} = ${result}();`).join('\n')}
${chunkTokensLoopWgsl(c)}
      ${tokenRowsWgsl(c, 'Qs', 'Os')}
      workgroupBarrier();
${sliceProducts('sf', 'Qs', 'Ks', st.k, c.d / K).join('\n')}
${store('sf', 'Ss', '        ')}
${
  dk
    ? `${sliceProducts('pf', 'Os', 'Vs', st.v, c.dv / K).join('\n')}
${store('pf', 'Ds', '        ')}`
    : ''
}
      workgroupBarrier();
      for (var e = li; e < ${rows * c.tile}u; e += THREADS) {
        let r = e / TILE;
        let col = e % TILE;
        let key = k0 + i32(col);
        let at = r * ${st.s}u + col;
        let prob = select(0.0, exp2(Ss[at] * scale2 - Lse2[r]), key <= pos && key < len);
        Ps[r * ${st.p}u + col] = f16(${dk ? 'prob * (Ds[at] - Delta[r])' : 'prob'});
      }
      workgroupBarrier();
${range(fragments)
  .map(
    (r) => `      {
        let pt = subgroupMatrixLoad<${left}, col_major>(&Ps, ${r * M * st.p}u + sgc * ${N}u, ${st.p}u);
${acc
  .map(
    (name, n) =>
      `        ${name} = subgroupMatrixMultiplyAccumulate(pt, subgroupMatrixLoad<${right}, row_major>(&${xs}, ${r * M * xStride + n * N}u, ${xStride}u), ${name});`,
  )
  .join('\n')}
      }`,
  )
  .join('\n')}
  }
  // The chunk's part of the tile's gradient, f32, summed over the chunks in order (and scaled) by
  // selectedKeysSumWgsl: [chunk][tile][key][column].
  let out = ((chunk * tilesPerBlock + tile) * TILE + sgc * ${N}u) * ${width}u;
${acc.map((name, n) => `  subgroupMatrixStore<row_major>(&partials, out + ${n * N}u, ${name}, ${width}u);`).join('\n')}
}
`;
}

/** Invocations per workgroup of the chunk sum. */
export const SELECTED_KEYS_SUM_THREADS = 256;

/**
 * WGSL adding, for every (list, key tile), its chunks' partial gradients in chunk order (the same
 * sums every run, no atomics) into dK (times the softmax scale) or dV, f16; with `grad = 'dkdv'`,
 * into both from the fused kernel's rows of dV's then dK's columns (d = dv). One workgroup per
 * (list, key tile), lists in the tensor-core kernels' order. Bindings: inverse, tables, partials,
 * then dk or dv, or dv and dk.
 */
export function selectedKeysSumWgsl(
  c: Pick<SelectedMatrixConfig, 'tile' | 'd' | 'dv'>,
  grad: 'dk' | 'dv' | 'dkdv',
): string {
  const width = grad === 'dk' ? c.d : grad === 'dv' ? c.dv : 2 * c.d;
  const threads = SELECTED_KEYS_SUM_THREADS;
  const outputs = grad === 'dkdv' ? ['dv', 'dk'] : [grad];
  const row = '(sq.start + u32(k0) + r) * p.kvHeads + g';
  const write =
    grad === 'dkdv'
      ? `let col = e % ${width}u;
      if (col < ${c.d}u) {
        dv[(${row}) * ${c.d}u + col] = f16(sum);
      } else {
        dk[(${row}) * ${c.d}u + col - ${c.d}u] = f16(sum * p.scale);
      }`
      : `${grad}[(${row}) * ${width}u + e % ${width}u] = f16(sum * ${grad === 'dk' ? 'p.scale' : '1.0'});`;
  return `${enables({ f16: true })}
${paramsStruct(SELECTED_MATRIX_BACKWARD_PARAMS)}
@group(0) @binding(0) var<storage, read> inverse: array<u32>;
@group(0) @binding(1) var<storage, read> tables: array<u32>;
@group(0) @binding(2) var<storage, read> partials: array<f32>;
${outputs.map((name, i) => `@group(0) @binding(${3 + i}) var<storage, read_write> ${name}: array<f16>;`).join('\n')}
@group(0) @binding(${3 + outputs.length}) var<uniform> p: Params;

const TILE = ${c.tile}u;

${NSA_SEQUENCE_WGSL}

${WORKGROUP_INDEX_WGSL}

@compute @workgroup_size(${threads})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let w = workgroupIndex(wid, nwg);
  let tilesPerBlock = u32(p.blockSize) / TILE;
  if (w >= p.slots * tilesPerBlock) { return; }
  let slot = w / tilesPerBlock;
  let tile = w % tilesPerBlock;
${KEY_TILE_OF_LIST_WGSL}
  let first = inverse[p.chunkStart + slot];
  let end = inverse[p.chunkStart + slot + 1u];
  for (var e = li; e < ${c.tile * width}u; e += ${threads}u) {
    let r = e / ${width}u;
    if (k0 + i32(r) < len) {
      var sum = 0.0;
      for (var chunk = first; chunk < end; chunk++) {
        sum += partials[(chunk * tilesPerBlock + tile) * ${c.tile * width}u + e];
      }
      ${write}
    }
  }
}
`;
}

/**
 * Selected-block attention on tensor cores, group-centric: one workgroup per (token, KV head) runs
 * the G query heads of the group as the rows of one (or two) 16-row matrix fragments, so every
 * selected key and value row is loaded once for the whole group and every load feeds a
 * multiply-accumulate of all G heads.
 *
 * Per tile of keys (a selection block, or a part of one): K and V are staged with vec4 loads (or
 * 16-byte ones, `wideLoads`); each subgroup computes a 16-key slice of S = Q·Kᵀ from Q fragments
 * it keeps in registers (with `scoreParts`, its part of d's share of that slice, the lanes adding
 * the parts: more subgroups, each holding less, over the same workgroup memory); the
 * lanes turn S into probabilities with a one-pass online softmax (lanes sharing a row combine with
 * shuffles); each subgroup multiplies P by its slice of V's columns into fresh accumulators, which
 * leave through workgroup memory to be added, rescaled by the row's correction, to a running output
 * that every invocation keeps for its share of the rows and columns in registers. Matrix fragments
 * are opaque, so this round trip is what rescaling row by row costs. Core's flash forward keeps
 * its accumulators and rescales them only when a row's max jumps; here that, together with K and V
 * staged in one step, was slower on the H200 (docs/perf-notes.md, 2026-11-30).
 */
import {
  enables,
  fragmentGridNames,
  type PrefetchedStaging,
  paramsStruct,
  rowVectorType,
  shuffleFoldWgsl,
  stageRowsVec4Set,
  stageRowsVec4Wgsl,
  subgroupMainWgsl,
  subgroupMatrixTypes,
  unrolledStagingSetsWgsl,
  WORKGROUP_INDEX_WGSL,
} from '@webattn/core';
import { NSA_SEQUENCE_WGSL } from '../layout.js';
import { groupRowsOf, groupScoresWgsl, keyRowsOf, loadFragmentsWgsl, type RowsOf } from '../matrix.wgsl.js';
import { SELECTED_PARAMS } from './selected.wgsl.js';

/** Generation parameters of the tensor-core selected attention (f16 storage). */
export interface SelectedMatrixConfig {
  d: number;
  dv: number;
  topN: number;
  /** Query heads per KV head; padded to whole fragments of M rows. */
  group: number;
  blockSize: number;
  matrix: { M: number; N: number; K: number };
  /** Subgroup size the kernel is built for, pinned with `@subgroup_size` when `pinSubgroupSize`. */
  subgroupSize: number;
  pinSubgroupSize: boolean;
  /** Keys per staged tile: the block size, or a part of it; one N-wide slice per subgroup. */
  tile: number;
  /**
   * The forward only: over how many parts of d each key slice's scores are split, one subgroup
   * each (1 unless given). Each such subgroup holds its part's Q fragments and its share of the
   * output's columns; the lanes add the parts' scores.
   */
  scoreParts?: number;
  /**
   * The forward and the role-split backward kernels: whether K and V (and there q and dO) are read
   * 16 bytes per load (`array<vec4<u32>>`), not 8. d and dv are multiples of 16 wherever the
   * kernels apply, so every row starts on 16 bytes.
   */
  wideLoads?: boolean;
  /**
   * The forward and the dQ kernels: whether consecutive workgroups take consecutive tokens of one
   * KV head (the head outermost), not the KV heads of one token. The workgroups resident at once
   * then read one head's K and V, a quarter of the bytes at hkv = 4, which L2 can hold.
   */
  kvHeadMajor?: boolean;
  /**
   * The forward only: whether its workgroup arrays hold vectors (`vec4<f16>`, `vec4<f32>`; the
   * subgroup-matrix loads and stores count their offsets and strides in vectors), so that a staged
   * load is stored whole and a lane reads four scores, writes four probabilities and updates four
   * outputs per access. Needs four keys per lane (or a multiple) and outputs in fours.
   */
  vectorArrays?: boolean;
  /**
   * Whether the kernels that walk a token's selected blocks (or a block's listing tokens) read each
   * next index one step ahead, so that a tile's loads, whose addresses it gives, do not first wait
   * for that read from global memory.
   */
  indexAhead?: boolean;
  /**
   * The role-split dQ kernel: whether each key tile's K and V are loaded during the tile before:
   * their loads issued right after that tile is staged, held in registers through its products,
   * stored when their turn comes, so that their latency passes during that work instead of
   * stalling the workgroup at every tile (core's RolesConfig.prefetchTiles). Its walk
   * (selectedPrefetchedKeyTilesLoopWgsl) reads each next slot's block as it issues that tile's
   * loads, so `indexAhead` does not apply to it.
   */
  prefetchTiles?: boolean;
}

/**
 * The opening of the kernels with one workgroup per (token, KV head): defines the token `t`, the
 * KV head `g`, the token's sequence `sq` and its position `pos` in it.
 */
export function tokenOfWorkgroupWgsl(c: Pick<SelectedMatrixConfig, 'kvHeadMajor'>): string {
  return `  let w = workgroupIndex(wid, nwg);
  if (w >= p.tokens * p.kvHeads) { return; }
${
  c.kvHeadMajor
    ? `  let t = w % p.tokens;
  let g = w / p.tokens;`
    : `  let t = w / p.kvHeads;
  let g = w % p.kvHeads;`
}
  // Read-only storage at uniform addresses: pos and the slots are uniform.
  let sq = sequenceOf(t);
  let pos = i32(t - sq.start);`;
}

/**
 * The opening of the forward kernels up to their shape's constants: q, k and v (16 bytes per load
 * with `wideLoads`), the selection, the sequence tables, o (of `output` elements) and lse, then
 * TOPN, GROUP, TILE, and the workgroup's ROWS and SUBGROUPS.
 */
export function selectedForwardHeaderWgsl(
  c: Pick<SelectedMatrixConfig, 'pinSubgroupSize' | 'wideLoads' | 'topN' | 'group' | 'tile'>,
  output: string,
  workgroup: { rows: number; subgroups: number },
): string {
  return `${enables({ subgroupMatrix: true, subgroupSizeControl: c.pinSubgroupSize })}
${paramsStruct(SELECTED_PARAMS)}
@group(0) @binding(0) var<storage, read> q: array<vec4<f16>>;
@group(0) @binding(1) var<storage, read> k: array<${rowVectorType(c.wideLoads)}>;
@group(0) @binding(2) var<storage, read> v: array<${rowVectorType(c.wideLoads)}>;
@group(0) @binding(3) var<storage, read> selected: array<i32>;
@group(0) @binding(4) var<storage, read> tables: array<u32>;
@group(0) @binding(5) var<storage, read_write> o: array<${output}>;
@group(0) @binding(6) var<storage, read_write> lse: array<f32>;
@group(0) @binding(7) var<uniform> p: Params;

const TOPN = ${c.topN}u;
const GROUP = ${c.group}u;
const ROWS = ${workgroup.rows}u;
const TILE = ${c.tile}u;
const SUBGROUPS = ${workgroup.subgroups}u;
const LOG2E = 1.4426950408889634;`;
}

/** How the work divides: key slices, each over `parts` of d, one subgroup per (slice, part). */
function split(c: SelectedMatrixConfig) {
  const fragments = Math.ceil(c.group / c.matrix.M);
  const rows = fragments * c.matrix.M;
  const slices = c.tile / c.matrix.N;
  const parts = c.scoreParts ?? 1;
  const subgroups = slices * parts;
  const threads = subgroups * c.subgroupSize;
  const lanesPerRow = threads / rows;
  return {
    fragments,
    rows,
    slices,
    parts,
    subgroups,
    threads,
    lanesPerRow,
    perLane: c.tile / lanesPerRow,
    columns: c.dv / subgroups,
    outPerThread: (rows * c.dv) / threads,
  };
}

/** Row strides of the workgroup arrays in elements, padded by 16 bytes against bank conflicts. */
function strides(c: SelectedMatrixConfig) {
  return { k: c.d + 8, v: c.dv + 8, s: c.tile + 4, p: c.tile + 8, o: c.dv + 4 };
}

/** Workgroup memory of the kernel in bytes: K and V tiles, scores or outputs (f32), probabilities, stats. */
export function selectedMatrixSharedBytes(c: SelectedMatrixConfig): number {
  const { rows, parts } = split(c);
  const st = strides(c);
  const keys = Math.max(c.tile, rows) * st.k;
  return keys * 2 + c.tile * st.v * 2 + rows * Math.max(parts * st.s, st.o) * 4 + rows * st.p * 2 + rows * 8;
}

/** The block the token's selection lists in `slot` (a WGSL u32 expression), -1 past its last. */
export const slotBlockWgsl = (slot: string) => `selected[(t * p.kvHeads + g) * TOPN + ${slot}]`;

/**
 * The head of the tensor-core kernels' loop over token t's selected blocks (for KV head g) and each
 * block's key tiles up to the token, both braces left open for the body: defines the block `J`
 * and the tile's first key `k0`. With `indexAhead` each slot's block is read during the slot
 * before.
 */
export function selectedKeyTilesLoopWgsl(c: Pick<SelectedMatrixConfig, 'indexAhead'>): string {
  const tiles = `    for (var k0 = J * p.blockSize; k0 < (J + 1) * p.blockSize && k0 <= pos; k0 += i32(TILE)) {`;
  return c.indexAhead
    ? `  // Each slot's block read during the slot before: its tiles' loads need not wait for it.
  var nextBlock = ${slotBlockWgsl('0u')};
  for (var slot = 0u; slot < TOPN; slot++) {
    let J = nextBlock;
    if (J < 0) { break; }
    if (slot + 1u < TOPN) { nextBlock = ${slotBlockWgsl('slot + 1u')}; }
${tiles}`
    : `  for (var slot = 0u; slot < TOPN; slot++) {
    let J = ${slotBlockWgsl('slot')};
    if (J < 0) { break; }
${tiles}`;
}

/**
 * The loop over token t's selected blocks (for KV head g) and their key tiles with each tile's rows
 * loaded a tile ahead (SelectedMatrixConfig.prefetchTiles): one loop over the tiles, both braces
 * left open for the body as in {@link selectedKeyTilesLoopWgsl}, defining `J` and `k0` and storing
 * the tile (`tile.stores`, between barriers) before issuing the next tile's loads. It visits the
 * tiles that loop does, in its order: each block's tiles up to the token, the blocks until a slot
 * lists -1.
 */
export function selectedPrefetchedKeyTilesLoopWgsl(tile: PrefetchedStaging): string {
  // The first slot from `from` whose block has a tile at or before the token (-1 where a slot
  // lists -1 first, or none is left), into aheadSlot and aheadBlock.
  const seek = (from: string) => `aheadBlock = -1;
    for (aheadSlot = ${from}; aheadSlot < TOPN; aheadSlot++) {
      let b = ${slotBlockWgsl('aheadSlot')};
      if (b < 0 || b * p.blockSize <= pos) { aheadBlock = b; break; }
    }`;
  return `  // The tile whose rows are in flight: its slot, block (-1: none) and first key.
  var aheadSlot = 0u;
  var aheadBlock = -1;
  ${seek('0u')}
  var aheadK0 = aheadBlock * p.blockSize;
${tile.declarations}
  if (aheadBlock >= 0) {
    let k0 = aheadK0;
    ${tile.loads}
  }
  loop {
    let J = aheadBlock;
    if (J < 0) { break; }
    let k0 = aheadK0;
    // The tile after this one: the block's next up to the token, else the next slot's first.
    aheadK0 = k0 + i32(TILE);
    if (aheadK0 >= (J + 1) * p.blockSize || aheadK0 > pos) {
      ${seek('aheadSlot + 1u')}
      aheadK0 = aheadBlock * p.blockSize;
    }
    {
      // The last tile's products are done with the staged rows.
      workgroupBarrier();
      ${tile.stores}
      workgroupBarrier();
      if (aheadBlock >= 0) {
        let k0 = aheadK0;
        ${tile.loads}
      }`;
}

const isPowerOfTwo = (x: number) => Number.isInteger(x) && x >= 1 && (x & (x - 1)) === 0;

/** Why a shape cannot use the kernel, or undefined when it can. */
export function selectedMatrixUnsupported(c: SelectedMatrixConfig): string | undefined {
  const { M, N, K } = c.matrix;
  const { rows, slices, parts, subgroups, lanesPerRow, perLane, columns, outPerThread } = split(c);
  if (M !== N || N !== K) return `matrix shape ${M}x${N}x${K} is not square`;
  if (c.blockSize % c.tile !== 0) return `block size ${c.blockSize} is not a multiple of the tile ${c.tile}`;
  if (!Number.isInteger(slices) || slices < 1) return `tile ${c.tile} is not a multiple of N = ${N}`;
  if (!Number.isInteger(parts) || parts < 1) return `scoreParts ${parts} is not a positive integer`;
  if (c.d % (parts * K) !== 0) return `d = ${c.d} does not split into ${parts} parts of K = ${K}`;
  if (!Number.isInteger(columns) || columns % N !== 0) {
    return `dv = ${c.dv} does not split into multiples of N = ${N} over ${subgroups} subgroups`;
  }
  if (c.group > 2 * M) return `group ${c.group} is more than two fragments of ${M} rows`;
  if (!isPowerOfTwo(lanesPerRow) || lanesPerRow > c.subgroupSize) {
    return `${rows} rows do not share ${subgroups * c.subgroupSize} invocations in powers of two within a subgroup`;
  }
  if (!Number.isInteger(perLane)) return `${c.tile} keys do not split over ${lanesPerRow} lanes`;
  if (!Number.isInteger(outPerThread)) return `${rows}x${c.dv} outputs do not split over the invocations`;
  if (c.vectorArrays && (perLane % 4 !== 0 || outPerThread % 4 !== 0)) {
    return `vector arrays need keys per lane (${perLane}) and outputs per invocation (${outPerThread}) in fours`;
  }
  return undefined;
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/** WGSL of the tensor-core selected attention: f16 q, k, v, o; f32 lse `[tokens, heads]`. */
export function selectedMatrixWgsl(c: SelectedMatrixConfig): string {
  const { M, N, K } = c.matrix;
  const { left, right, result } = subgroupMatrixTypes(c.matrix);
  const { fragments, rows, slices, parts, subgroups, threads, lanesPerRow, perLane, columns, outPerThread } =
    split(c);
  const st = strides(c);
  const qf = fragmentGridNames('qf', fragments, c.d / K / parts);
  // Entries of the workgroup arrays: elements, or vectors of four (offsets and strides divided by 4).
  const vectors = c.vectorArrays === true;
  const unit = vectors ? 4 : 1;
  const u = (elements: number) => elements / unit;
  // Split scores: the subgroup's key slice, its part of d, and where that part's scores go.
  const partOf =
    parts > 1
      ? { slice: 'slice', firstColumn: `dPart * ${u(c.d / parts)}u`, first: `dPart * ${u(rows * st.s)}u` }
      : {};
  // The lanes' score (or four) at entry `at`: the parts' sum.
  const score = (at: string) => {
    const terms = range(parts).map((part) => `Fs[${part > 0 ? `${u(part * rows * st.s)}u + ` : ''}${at}]`);
    return terms.length > 1 ? `(${terms.join(' + ')})` : `${terms[0]}`;
  };
  const stage = (dest: string, src: string, width: number, stride: number, rowsOf: RowsOf) =>
    stageRowsVec4Wgsl({ dest, src, width, destStride: stride, threads, vectorDest: vectors, ...rowsOf });
  const keyRows = keyRowsOf(c.tile);
  // The group's query rows of token t, zero past the group.
  const queryRows = groupRowsOf(rows);
  // K and V in one step, every load issued before the first store, so a tile waits out the
  // memory latency once (K, then V: 71.0 -> 70.1 ms at 65,536 tokens on the H200 with 64-key
  // tiles, 247.5 -> 150.6 with 16-key tiles).
  const rowsSet = (dest: string, src: string, width: number, stride: number, index: string) =>
    stageRowsVec4Set(
      { dest, src, width, destStride: stride, threads, wide: c.wideLoads, vectorDest: vectors, ...keyRows },
      index,
    );
  const stageKeysAndValues = unrolledStagingSetsWgsl(threads, [
    rowsSet('Ks', 'k', c.d, st.k, 'e'),
    rowsSet('Vs', 'v', c.dv, st.v, 'f'),
  ]);

  const scores = groupScoresWgsl({
    matrix: c.matrix,
    qf,
    keyStride: st.k,
    dest: 'Fs',
    destStride: st.s,
    ...partOf,
    keyUnit: unit,
    destUnit: unit,
  });

  const products = range(columns / N)
    .map((n) => {
      const lines = range(fragments).map((r) => `    var of${r} = ${result}();`);
      for (let kc = 0; kc < c.tile / K; kc++) {
        lines.push(
          `    { let vf = subgroupMatrixLoad<${right}, row_major>(&Vs, ${u(kc * K * st.v)}u + sgc * ${u(columns)}u + ${u(n * N)}u, ${u(st.v)}u);`,
          ...range(fragments).map(
            (r) =>
              `      of${r} = subgroupMatrixMultiplyAccumulate(subgroupMatrixLoad<${left}, row_major>(&Ps, ${u(r * M * st.p + kc * K)}u, ${u(st.p)}u), vf, of${r});`,
          ),
          '    }',
        );
      }
      lines.push(
        ...range(fragments).map(
          (r) =>
            `    subgroupMatrixStore<row_major>(&Fs, ${u(r * M * st.o)}u + sgc * ${u(columns)}u + ${u(n * N)}u, of${r}, ${u(st.o)}u);`,
        ),
      );
      return `    {\n${lines.join('\n')}\n    }`;
    })
    .join('\n');

  const fold = (v: string, op: (a: string, b: string) => string) => shuffleFoldWgsl(v, lanesPerRow, op);

  // The row's part of the tile: scores (masked past the token), and after the max, probabilities
  // stored and summed; one key per step, or four per access.
  const softmaxScores = vectors
    ? `      for (var j4 = 0u; j4 < ${perLane / 4}u; j4++) {
        let col = part * ${perLane}u + 4u * j4;
        let s4 = ${score(`row * ${u(st.s)}u + col / 4u`)} * scale2;
        for (var i = 0u; i < 4u; i++) {
          x[4u * j4 + i] = select(MASKED, s4[i], k0 + i32(col + i) <= pos);
          tileMax = max(tileMax, x[4u * j4 + i]);
        }
      }`
    : `      for (var j = 0u; j < ${perLane}u; j++) {
        let col = part * ${perLane}u + j;
        x[j] = select(MASKED, ${score(`row * ${st.s}u + col`)} * scale2, k0 + i32(col) <= pos);
        tileMax = max(tileMax, x[j]);
      }`;
  const probability = (j: string) => `select(0.0, exp2(x[${j}] - mNew), x[${j}] > MASKED)`;
  const softmaxProbabilities = vectors
    ? `      for (var j4 = 0u; j4 < ${perLane / 4}u; j4++) {
        var p4 = vec4<f32>();
        for (var i = 0u; i < 4u; i++) {
          p4[i] = ${probability('4u * j4 + i')};
          sum += p4[i];
        }
        Ps[row * ${u(st.p)}u + part * ${perLane / 4}u + j4] = vec4<f16>(p4);
      }`
    : `      for (var j = 0u; j < ${perLane}u; j++) {
        let prob = ${probability('j')};
        sum += prob;
        Ps[row * ${st.p}u + part * ${perLane}u + j] = f16(prob);
      }`;
  // The running output: this invocation's entries li + threads · j of the [ROWS][DV] block (of its
  // vectors of four columns, with vector arrays).
  const entries = outPerThread / unit;
  const rowEntries = c.dv / unit;
  const element = vectors ? 'vec4<f32>' : 'f32';

  return `${selectedForwardHeaderWgsl(c, vectors ? 'vec4<f16>' : 'f16', { rows, subgroups })}
const DV = ${c.dv}u;
const MASKED = -3.0e38;

// The key tile (the group's queries before the first), the value tile.
var<workgroup> Ks: array<${vectors ? 'vec4<f16>' : 'f16'}, ${u(Math.max(c.tile, rows) * st.k)}>;
var<workgroup> Vs: array<${vectors ? 'vec4<f16>' : 'f16'}, ${u(c.tile * st.v)}>;
// Scores of the tile${parts > 1 ? " (each part of d's in turn)" : ''}, then the tile's contribution to the output: [row][column], f32.
var<workgroup> Fs: array<${element}, ${u(rows * Math.max(parts * st.s, st.o))}>;
var<workgroup> Ps: array<${vectors ? 'vec4<f16>' : 'f16'}, ${u(rows * st.p)}>;
// Per row: the tile's rescaling of the running output, then the final sum of exponentials.
var<workgroup> Alpha: array<f32, ROWS>;
var<workgroup> Sums: array<f32, ROWS>;

${NSA_SEQUENCE_WGSL}

${WORKGROUP_INDEX_WGSL}

${subgroupMainWgsl(threads, c)}
${tokenOfWorkgroupWgsl(c)}
  // Narrower subgroups than built for would add subgroups: they repeat the last one's work.
  let sgc = min(sg, SUBGROUPS - 1u);${
    parts > 1
      ? `
  // The subgroup's key slice and part of d for the scores.
  let slice = sgc % ${slices}u;
  let dPart = sgc / ${slices}u;`
      : ''
  }
  ${stage('Ks', 'q', c.d, st.k, queryRows)}
  workgroupBarrier();
${loadFragmentsWgsl(c.matrix, qf, 'Ks', st.k, partOf.firstColumn, unit)}
  // The key tiles overwrite the queries' staging.
  workgroupBarrier();
  // This invocation's row of the softmax and its part of the row's keys.
  // Lanes sharing a row are neighbours in one subgroup, for the shuffles.
  let row = sgc * ${c.subgroupSize / lanesPerRow}u + lane / ${lanesPerRow}u;
  let part = lane % ${lanesPerRow}u;
  let scale2 = p.scale * LOG2E;
  var m = MASKED;
  var l = 0.0;
  var acc: array<${element}, ${entries}>;
${selectedKeyTilesLoopWgsl(c)}
      ${stageKeysAndValues}
      workgroupBarrier();
${scores}
      workgroupBarrier();
      // One-pass online softmax of the row's part of the tile; keys after the token are masked.
      var x: array<f32, ${perLane}>;
      var tileMax = MASKED;
${softmaxScores}
      ${fold('tileMax', (a, b) => `max(${a}, ${b})`)}
      let mNew = max(m, tileMax);
      var sum = 0.0;
${softmaxProbabilities}
      ${fold('sum', (a, b) => `${a} + ${b}`)}
      let alpha = exp2(m - mNew);
      l = l * alpha + sum;
      m = mNew;
      if (part == 0u) { Alpha[row] = alpha; }
      workgroupBarrier();
${products}
      workgroupBarrier();
      for (var j = 0u; j < ${entries}u; j++) {
        let e = li + ${threads}u * j;
        let r = e / ${rowEntries}u;
        acc[j] = acc[j] * Alpha[r] + Fs[r * ${u(st.o)}u + e % ${rowEntries}u];
      }
    }
  }
  if (part == 0u) { Sums[row] = l; }
  workgroupBarrier();
  let firstRow = t * p.heads + g * GROUP;
  for (var j = 0u; j < ${entries}u; j++) {
    let e = li + ${threads}u * j;
    let r = e / ${rowEntries}u;
    // Every token selects its own block, so the sum is positive; the guard keeps a corrupt selection finite.
    if (r < GROUP) {
      o[(firstRow + r) * ${rowEntries}u + e % ${rowEntries}u] = ${vectors ? 'vec4<f16>' : 'f16'}(select(${element}(0.0), acc[j] / Sums[r], Sums[r] > 0.0));
    }
  }
  if (part == 0u && row < GROUP) { lse[firstRow + row] = (m + log2(l)) * ${Math.LN2}; }
}
`;
}

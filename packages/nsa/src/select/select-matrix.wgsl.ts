/**
 * Block selection on tensor cores: the same importance and picks as the scalar kernel
 * (select.wgsl.ts), with the compressed-attention scores of the G query heads computed as matrix
 * products. One workgroup per (`tokens` consecutive tokens, KV head), so that each staged tile of
 * compressed keys serves every token of the workgroup (their staging was half the kernel's time
 * with one token per workgroup): each subgroup owns one 16-row fragment of one token's query rows,
 * held in registers, and scores it against the whole tile. The probabilities exp(s - lse) are
 * summed over the heads per (token, compressed block), and each tile adds its blocks to the
 * selection blocks they overlap, weighted by overlap / stride, tile after tile in increasing order
 * (the same sums every run). Where each token has one subgroup with a lane per compressed block of
 * the tile, the probabilities reach the selection blocks by shuffles within it (no barrier, no
 * round trip through workgroup memory); otherwise through workgroup memory. Tokens of one
 * workgroup may belong to different sequences (packed batches): the keys are walked once per run
 * of tokens sharing a sequence.
 *
 * Then each token's picks are made by one subgroup with subgroup operations only, no barrier: the
 * k-th pick is the best block ordered after the (k-1)-th (score descending, index ascending), which
 * is the scalar kernel's repeated arg-max with the same ties, without writing anything back.
 */
import {
  alignedWorkgroupLength,
  computeAttributesWgsl,
  enables,
  paramsStruct,
  rowVectorType,
  stageRowsVec4Prefetched,
  stageRowsVec4Set,
  subgroupMatrixTypes,
  unrolledStagingSetsWgsl,
  WORKGROUP_INDEX_WGSL,
} from '@webattn/core';
import { NSA_SEQUENCE_WGSL } from '../layout.js';
import { addOverlapsWgsl, type BlockGeometry, SELECT_PARAMS } from './select.wgsl.js';
import { PICKABLE_WGSL, picksWgsl, tileProbabilitiesWgsl } from './select-matrix-steps.wgsl.js';
import { STREAMING_DIAGNOSTIC, streamingPicksWgsl, streamingStateWgsl } from './select-streaming.wgsl.js';

/** Generation parameters of the tensor-core selection (f16 q and compressed keys). */
export interface SelectMatrixConfig {
  d: number;
  topN: number;
  geometry: BlockGeometry;
  /** Query heads per KV head; padded to whole fragments of M rows. */
  group: number;
  /** The most selection blocks a query can see (the longest sequence's). */
  maxBlocks: number;
  matrix: { M: number; N: number; K: number };
  subgroupSize: number;
  pinSubgroupSize: boolean;
  /** Compressed keys per staged tile, a multiple of N. */
  tile: number;
  /** Consecutive tokens per workgroup. */
  tokens: number;
  /** Whether the compressed keys are read 16 bytes per load (bound as `vec4<u32>`), not 8. */
  wideLoads?: boolean;
  /**
   * Whether the key tile's array holds `vec4<f16>` (subgroup-matrix loads count its offsets and
   * strides in vectors), so that each loaded vector is stored whole: one or two stores per load
   * where f16 elements take four or eight.
   */
  vectorStaging?: boolean;
  /**
   * Whether each compressed block's scores of a token's heads are consecutive (Sᵀ stored
   * column-major into an array of vec4<f32>), so that the lane of a block reads its heads four at
   * a time, and the heads' lse with them: a quarter of the reads of the row-major scores.
   */
  headMajorScores?: boolean;
  /**
   * Whether each token keeps its top-n in registers while walking, offering each selection block
   * once its score is final (select-streaming.wgsl.ts), instead of holding a score per selection
   * block in workgroup memory until the walk ends. Needs the shuffled probabilities, tiles of whole
   * selection blocks' strides and a top-n that fits the subgroup's lanes.
   */
  streamingPicks?: boolean;
}

function split(c: SelectMatrixConfig) {
  const fragments = Math.ceil(c.group / c.matrix.M);
  const subgroups = c.tokens * fragments;
  return {
    fragments,
    /**
     * Whether the query fragments load straight from q: when the group fills whole fragments, a
     * fragment's rows are consecutive heads of one token. Otherwise they are staged, zero-padded,
     * through the key tile's array first (a fragment read from q would reach past the group).
     */
    direct: c.group % c.matrix.M === 0,
    /** Query rows per token, the group padded to whole fragments. */
    tokenRows: fragments * c.matrix.M,
    rows: subgroups * c.matrix.M,
    subgroups,
    threads: subgroups * c.subgroupSize,
  };
}

/**
 * Whether a tile's probabilities reach the selection blocks through shuffles instead of workgroup
 * memory: when each token has one subgroup (one row fragment) of exactly one lane per compressed
 * block of the tile, pinned, and the selection blocks a tile touches fit in a subgroup.
 */
export function selectMatrixShuffles(c: SelectMatrixConfig): boolean {
  const R = c.geometry.blockSize / c.geometry.stride;
  const Kr = c.geometry.kernelSize / c.geometry.stride;
  const span = Math.floor((c.tile - 1 + Kr) / R) + 2;
  return c.pinSubgroupSize && c.subgroupSize === c.tile && split(c).fragments === 1 && span <= c.subgroupSize;
}

/** Invocations per workgroup: one subgroup per row fragment of every token. */
export function selectMatrixThreads(c: SelectMatrixConfig): number {
  return split(c).threads;
}

/**
 * Row strides in elements (scores f32, keys f16), padded by 16 bytes against bank conflicts: the
 * scores' rows are a token's heads when head-major (20 words apart, the 16-byte reads of eight
 * lanes land on different banks), the tile's blocks otherwise.
 */
function strides(c: SelectMatrixConfig) {
  return { k: c.d + 8, s: (c.headMajorScores ? split(c).tokenRows : c.tile) + 4 };
}

/** f32 entries of the scores' array: a row per (token, block) when head-major, per (token, head) otherwise. */
function scoreElements(c: SelectMatrixConfig): number {
  const { rows } = split(c);
  return (c.headMajorScores ? c.tokens * c.tile : rows) * strides(c).s;
}

/** Elements of the key tile's array, which holds the queries first when they are staged. */
function keyTileLength(c: SelectMatrixConfig): number {
  const { direct, rows } = split(c);
  return (direct ? c.tile : Math.max(c.tile, rows)) * strides(c).k;
}

/** Per token: its scores (one per selection block), none where the top-n is kept while walking. */
const scoreLength = (c: SelectMatrixConfig) =>
  c.streamingPicks ? 0 : alignedWorkgroupLength(c.maxBlocks, 4);

/**
 * Workgroup memory in bytes: key tile (or the staged queries), scores, each (token, compressed
 * block)'s probability (unless shuffled), the heads' lse, each token's block scores and its visible
 * count and own block.
 */
export function selectMatrixSharedBytes(c: SelectMatrixConfig): number {
  const { rows } = split(c);
  return (
    keyTileLength(c) * 2 +
    scoreElements(c) * 4 +
    (selectMatrixShuffles(c) ? 0 : c.tokens * c.tile * 4) +
    rows * 4 +
    c.tokens * scoreLength(c) * 4 +
    2 * alignedWorkgroupLength(c.tokens, 4) * 4
  );
}

/** Why a shape cannot use the kernel, or undefined when it can. */
export function selectMatrixUnsupported(c: SelectMatrixConfig): string | undefined {
  const { M, N, K } = c.matrix;
  if (M !== N || N !== K) return `matrix shape ${M}x${N}x${K} is not square`;
  if (c.tile % N !== 0 || c.tile < N) return `tile ${c.tile} is not a multiple of N = ${N}`;
  if (c.d % K !== 0) return `d = ${c.d} is not a multiple of K = ${K}`;
  if (c.group > 2 * M) return `group ${c.group} is more than two fragments of ${M} rows`;
  if (!Number.isInteger(c.tokens) || c.tokens < 1) return `tokens ${c.tokens} is not a positive integer`;
  if (c.headMajorScores && !selectMatrixShuffles(c)) {
    return 'head-major scores need one subgroup per token with a lane per compressed block';
  }
  if (c.streamingPicks) {
    const R = c.geometry.blockSize / c.geometry.stride;
    if (!selectMatrixShuffles(c))
      return 'streaming picks need one subgroup per token with a lane per compressed block';
    if (c.subgroupSize > 32)
      return `streaming picks need subgroups of at most 32 lanes, not ${c.subgroupSize}`;
    if (c.topN > c.subgroupSize)
      return `streaming picks keep topN = ${c.topN} blocks in ${c.subgroupSize} lanes`;
    if (c.tile % R !== 0)
      return `streaming picks need tile ${c.tile} to hold whole selection blocks of ${R} strides`;
  }
  return undefined;
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/** WGSL of the tensor-core selection kernel. */
export function selectMatrixWgsl(c: SelectMatrixConfig): string {
  const { M, N, K } = c.matrix;
  const { left, right, result } = subgroupMatrixTypes(c.matrix);
  const { fragments, direct, tokenRows, rows, subgroups, threads } = split(c);
  const st = strides(c);
  const keyFrags = c.tile / N;
  const steps = c.d / K;
  const T = c.tokens;
  const shuffles = selectMatrixShuffles(c);
  const streaming = c.streamingPicks === true;
  const unsupported = selectMatrixUnsupported(c);
  if (unsupported) throw new Error(`selectMatrixWgsl: ${unsupported}`);
  // Each token's score per selection block, unless its top-n is kept while walking.
  const scoreArray = streaming ? '' : `var<workgroup> score: array<f32, ${T * scoreLength(c)}>;\n`;
  const scoreZeroing = streaming
    ? ''
    : `  for (var e = li; e < ${T * scoreLength(c)}u; e += THREADS) { score[e] = 0.0; }\n`;
  const lseUnit = c.headMajorScores ? 4 : 1;
  // The key tile's entries: f16, or vectors of four (offsets and strides divided by 4).
  const unit = c.vectorStaging ? 4 : 1;
  const ks = (elements: number) => elements / unit;
  // Blocks per lane the picks keep in registers (32 at the reference config up to 65,536 tokens).
  const cached = Math.min(Math.ceil(c.maxBlocks / c.subgroupSize), 32);

  // Every token's G query rows at rows u · tokenRows .., zero past the group and past the tokens.
  const queries = direct
    ? ''
    : unrolledStagingSetsWgsl(
        threads,
        range(T).map((u) =>
          stageRowsVec4Set(
            {
              dest: 'Ks',
              vectorDest: c.vectorStaging,
              src: 'q',
              width: c.d,
              destStride: st.k,
              destOffset: u * tokenRows * st.k,
              threads,
              rows: tokenRows,
              tokenStart: `(tFirst + ${u}u) * p.heads + g * GROUP`,
              heads: '1u',
              head: '0u',
              first: '0',
              end: `select(0, i32(GROUP), ${u}u < count)`,
            },
            `q${u}_`,
          ),
        ),
      );
  // The compressed keys of a run's sequence, prefetched: the next tile's loads are issued before
  // this one is scored.
  const keys = stageRowsVec4Prefetched({
    dest: 'Ks',
    vectorDest: c.vectorStaging,
    src: 'cmpK',
    width: c.d,
    destStride: st.k,
    threads,
    rows: c.tile,
    tokenStart: 'sq.cmpStart',
    heads: 'p.kvHeads',
    head: 'g',
    first: 'cn',
    end: 'runVisible',
    wide: c.wideLoads,
  });
  // This subgroup's row fragment against every key fragment of the tile, stored to its rows of Ss.
  const scores = [
    ...range(keyFrags).map((j) => `    var sf${j} = ${result}();`),
    ...range(steps).flatMap((kk) => [
      ...range(keyFrags).map(
        (j) =>
          `    sf${j} = subgroupMatrixMultiplyAccumulate(qf${kk}, subgroupMatrixLoad<${right}, col_major>(&Ks, ${ks(j * N * st.k + kk * K)}u, ${ks(st.k)}u), sf${j});`,
      ),
    ]),
    ...range(keyFrags).map((j) =>
      c.headMajorScores
        ? `    subgroupMatrixStore<col_major>(&Ss, sgc * ${(c.tile * st.s) / 4}u + ${(j * N * st.s) / 4}u, sf${j}, ${st.s / 4}u);`
        : `    subgroupMatrixStore<row_major>(&Ss, sgc * ${M * st.s}u + ${j * N}u, sf${j}, ${st.s}u);`,
    ),
  ].join('\n');

  return `${enables({ subgroupMatrix: true, subgroupSizeControl: c.pinSubgroupSize })}
${streaming ? `${STREAMING_DIAGNOSTIC}\n` : ''}${paramsStruct(SELECT_PARAMS)}
@group(0) @binding(0) var<storage, read> q: array<${direct ? 'f16' : 'vec4<f16>'}>;
@group(0) @binding(1) var<storage, read> cmpK: array<${rowVectorType(c.wideLoads)}>;
@group(0) @binding(2) var<storage, read> lse: array<f32>;
@group(0) @binding(3) var<storage, read> tables: array<u32>;
@group(0) @binding(4) var<storage, read_write> selected: array<i32>;
@group(0) @binding(5) var<uniform> p: Params;

const THREADS = ${threads}u;
const TOPN = ${c.topN}u;
const GROUP = ${c.group}u;
const TILE = ${c.tile}u;
const TOKENS = ${T}u;
const SUBGROUPS = ${subgroups}u;
const LOG2E = 1.4426950408889634;
// Every workgroup array is whole 16-byte units (see core's workgroup-alignment.ts).
// The staged tile of compressed keys${direct ? '' : ' (the queries before the first)'}.
var<workgroup> Ks: array<${c.vectorStaging ? 'vec4<f16>' : 'f16'}, ${ks(keyTileLength(c))}>;
var<workgroup> Ss: array<${c.headMajorScores ? `vec4<f32>, ${scoreElements(c) / 4}` : `f32, ${scoreElements(c)}`}>;
// Each (token, compressed block of the tile)'s probability summed over the heads, each row's lse in
// base 2, each token's selection-block scores, visible compressed blocks and own block.
${shuffles ? '' : `var<workgroup> probability: array<f32, ${T * c.tile}>;`}
var<workgroup> lse2: array<${c.headMajorScores ? `vec4<f32>, ${rows / 4}` : `f32, ${rows}`}>;
${scoreArray}var<workgroup> tokenVisible: array<i32, ${alignedWorkgroupLength(T, 4)}>;
var<workgroup> tokenOwn: array<i32, ${alignedWorkgroupLength(T, 4)}>;

${NSA_SEQUENCE_WGSL}

${WORKGROUP_INDEX_WGSL}

${shuffles ? '' : addOverlapsWgsl(c.geometry)}

// Compressed blocks token t sees (those whose last token is not after it) and its own block.
fn tokenBlocks(t: u32) -> vec2<i32> {
  let sq = sequenceOf(t);
  let pos = i32(t - sq.start);
  var visible = 0;
  if (pos >= p.kernelSize - 1) { visible = min(i32(sq.cmpLength), (pos - p.kernelSize + 1) / p.stride + 1); }
  return vec2<i32>(visible, pos / p.blockSize);
}

${streaming ? '' : PICKABLE_WGSL}

${computeAttributesWgsl(threads, c)}
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) li: u32, @builtin(subgroup_id) sg: u32,
        @builtin(subgroup_invocation_id) sgLane: u32, @builtin(num_subgroups) sgCount: u32,
        @builtin(subgroup_size) sgSize: u32) {
  let w = workgroupIndex(wid, nwg);
  if (w >= ((p.tokens + TOKENS - 1u) / TOKENS) * p.kvHeads) { return; }
  let tFirst = (w / p.kvHeads) * TOKENS;
  let g = w % p.kvHeads;
  // Tokens of this workgroup (at least one); uniform, like everything read from read-only storage
  // at uniform addresses below.
  let count = min(TOKENS, p.tokens - tFirst);
  // Narrower subgroups than built for would add subgroups: they repeat the last one's fragment.
  let sgc = min(sg, SUBGROUPS - 1u);
  for (var u = li; u < TOKENS; u += THREADS) {
    var blocks = vec2<i32>(0, -1);
    if (u < count) { blocks = tokenBlocks(tFirst + u); }
    tokenVisible[u] = blocks.x;
    tokenOwn[u] = blocks.y;
  }
${scoreZeroing}  // Each row's lse in base 2 (0 past the group and the tokens): four rows per entry when head-major.
  for (var e = li; e < ${rows / lseUnit}u; e += THREADS) {
    var x = ${c.headMajorScores ? 'vec4<f32>()' : '0.0'};
    for (var k = 0u; k < ${lseUnit}u; k++) {
      let r = e * ${lseUnit}u + k;
      let u = r / ${tokenRows}u;
      let h = r % ${tokenRows}u;
      if (u < count && h < GROUP) {
        let sq = sequenceOf(tFirst + u);
        x${c.headMajorScores ? '[k]' : ''} = lse[sq.lseBase + (g * GROUP + h) * p.lseHeadStride + tFirst + u - sq.start] * LOG2E;
      }
    }
    lse2[e] = x;
  }
  ${queries}
  workgroupBarrier();
  // This subgroup's row fragment of the queries, held for the whole walk; read from q, its token
  // clamped to the last (the rows of tokens past it are never used), or from the staged queries.
${direct ? `  let qRow = (min(tFirst + sgc / ${fragments}u, p.tokens - 1u) * p.heads + g * GROUP + (sgc % ${fragments}u) * ${M}u) * ${c.d}u;\n` : ''}${range(
  steps,
)
  .map((kk) =>
    direct
      ? `  let qf${kk} = subgroupMatrixLoad<${left}, row_major>(&q, qRow + ${kk * K}u, ${c.d}u);`
      : `  let qf${kk} = subgroupMatrixLoad<${left}, row_major>(&Ks, sgc * ${ks(M * st.k)}u + ${ks(kk * K)}u, ${ks(st.k)}u);`,
  )
  .join('\n')}
  let scale2 = p.scale * LOG2E;
${keys.declarations}
${streaming ? `${streamingStateWgsl()}\n` : ''}
  // Runs of tokens sharing a sequence: [u0, u1) walks its sequence's compressed keys, as far as its
  // last token sees.
  var u0 = 0u;
  loop {
    if (u0 >= count) { break; }
    let sq = sequenceOf(tFirst + u0);
    var u1 = u0 + 1u;
    loop {
      if (u1 >= count) { break; }
      if (sequenceOf(tFirst + u1).start != sq.start) { break; }
      u1++;
    }
    let runVisible = tokenBlocks(tFirst + u1 - 1u).x;
    {
      let cn = 0;
      ${keys.loads}
    }
    for (var c0 = 0; c0 < runVisible; c0 += i32(TILE)) {
      workgroupBarrier();
      ${keys.stores}
      workgroupBarrier();
      {
        let cn = c0 + i32(TILE);
        ${keys.loads}
      }
${scores}
      workgroupBarrier();
${tileProbabilitiesWgsl({
  ...c,
  tokenRows,
  scoreStride: st.s,
  scoreLength: scoreLength(c),
  shuffles,
  streaming,
  ...(c.headMajorScores && { headMajor: { group: c.group } }),
})}
    }
    u0 = u1;
  }
  workgroupBarrier();

${streaming ? streamingPicksWgsl() : picksWgsl({ scoreLength: scoreLength(c), cached })}
}
`;
}

/**
 * Block selection on tensor cores: the same importance and picks as the scalar kernel
 * (select.wgsl.ts), with the compressed-attention scores of the token's G query heads computed as
 * matrix products. One workgroup per (token, KV head): the group's query rows are one or two
 * 16-row fragments kept in registers; each tile of compressed keys is staged once, each subgroup
 * scores a 16-key slice of it, and the probabilities exp(s - lse) are summed over the heads per
 * compressed block. Each tile then adds its blocks to the selection blocks they overlap, weighted
 * by overlap / stride, tile after tile in increasing order (the same sums every run).
 */
import {
  alignedWorkgroupLength,
  enables,
  paramsStruct,
  stageRowsVec4Prefetched,
  stageRowsVec4Wgsl,
  WORKGROUP_INDEX_WGSL,
} from '@webattn/core';
import { NSA_SEQUENCE_WGSL } from '../layout.js';
import { fragmentGrid, groupRowsOf, groupScoresWgsl, loadFragmentsWgsl } from '../matrix.wgsl.js';
import { ADD_OVERLAPS_WGSL, SELECT_PARAMS, selectTopNWgsl } from './select.wgsl.js';

/** Generation parameters of the tensor-core selection (f16 q and compressed keys). */
export interface SelectMatrixConfig {
  d: number;
  topN: number;
  /** Query heads per KV head; padded to whole fragments of M rows. */
  group: number;
  /** The most selection blocks a query can see (the longest sequence's). */
  maxBlocks: number;
  matrix: { M: number; N: number; K: number };
  subgroupSize: number;
  pinSubgroupSize: boolean;
  /** Compressed keys per staged tile, one N-wide slice per subgroup. */
  tile: number;
}

function split(c: SelectMatrixConfig) {
  const fragments = Math.ceil(c.group / c.matrix.M);
  const subgroups = c.tile / c.matrix.N;
  return { fragments, rows: fragments * c.matrix.M, subgroups, threads: subgroups * c.subgroupSize };
}

/** Row strides in elements, padded by 16 bytes against bank conflicts. */
function strides(c: SelectMatrixConfig) {
  return { k: c.d + 8, s: c.tile + 4 };
}

/** Workgroup memory in bytes: key tile (or the queries), scores, probabilities, block scores, picks. */
export function selectMatrixSharedBytes(c: SelectMatrixConfig): number {
  const { rows, threads } = split(c);
  const st = strides(c);
  return (
    Math.max(c.tile, rows) * st.k * 2 +
    rows * st.s * 4 +
    c.tile * 4 +
    rows * 4 +
    alignedWorkgroupLength(c.maxBlocks, 4) * 4 +
    threads * 8 +
    alignedWorkgroupLength(c.topN, 4) * 4
  );
}

/** Why a shape cannot use the kernel, or undefined when it can. */
export function selectMatrixUnsupported(c: SelectMatrixConfig): string | undefined {
  const { M, N, K } = c.matrix;
  const { subgroups, threads } = split(c);
  if (M !== N || N !== K) return `matrix shape ${M}x${N}x${K} is not square`;
  if (!Number.isInteger(subgroups) || subgroups < 1) return `tile ${c.tile} is not a multiple of N = ${N}`;
  if (c.d % K !== 0) return `d = ${c.d} is not a multiple of K = ${K}`;
  if (c.group > 2 * M) return `group ${c.group} is more than two fragments of ${M} rows`;
  if (threads < c.tile) return `${threads} invocations cannot sum ${c.tile} columns`;
  if ((threads & (threads - 1)) !== 0) return `${threads} invocations are not a power of two`;
  return undefined;
}

const _range = (n: number) => Array.from({ length: n }, (_, i) => i);

/** WGSL of the tensor-core selection kernel. */
export function selectMatrixWgsl(c: SelectMatrixConfig): string {
  const { K } = c.matrix;
  const { fragments, rows, subgroups, threads } = split(c);
  const st = strides(c);
  const qf = fragmentGrid('qf', fragments, c.d / K);
  const stage = (
    src: string,
    rowsOf: Omit<
      Parameters<typeof stageRowsVec4Wgsl>[0],
      'dest' | 'src' | 'width' | 'threads' | 'destStride'
    >,
  ) => stageRowsVec4Wgsl({ dest: 'Ks', src, width: c.d, destStride: st.k, threads, ...rowsOf });
  // The compressed keys, prefetched: the next tile's loads are issued before this one is scored (its
  // staging was half the kernel's time at 65536 tokens when loaded and stored in one step).
  const keys = stageRowsVec4Prefetched({
    dest: 'Ks',
    src: 'cmpK',
    width: c.d,
    destStride: st.k,
    threads,
    rows: c.tile,
    tokenStart: 'sq.cmpStart',
    heads: 'p.kvHeads',
    head: 'g',
    first: 'cn',
    end: 'visibleBlocks',
  });
  const scores = groupScoresWgsl({ matrix: c.matrix, qf, keyStride: st.k, dest: 'Ss', destStride: st.s });

  return `${enables({ subgroupMatrix: true })}
${c.pinSubgroupSize ? 'enable subgroup_size_control;' : ''}
${paramsStruct(SELECT_PARAMS)}
@group(0) @binding(0) var<storage, read> q: array<vec4<f16>>;
@group(0) @binding(1) var<storage, read> cmpK: array<vec4<f16>>;
@group(0) @binding(2) var<storage, read> lse: array<f32>;
@group(0) @binding(3) var<storage, read> tables: array<u32>;
@group(0) @binding(4) var<storage, read_write> selected: array<i32>;
@group(0) @binding(5) var<uniform> p: Params;

const THREADS = ${threads}u;
const TOPN = ${c.topN}u;
const GROUP = ${c.group}u;
const TILE = ${c.tile}u;
const SUBGROUPS = ${subgroups}u;
const LOG2E = 1.4426950408889634;
// Every workgroup array is whole 16-byte units (see core's workgroup-alignment.ts).
// The staged tile of compressed keys (the group's queries before the first).
var<workgroup> Ks: array<f16, ${Math.max(c.tile, rows) * st.k}>;
var<workgroup> Ss: array<f32, ${rows * st.s}>;
// The group's probability of each compressed block of the tile, and each head's lse in base 2.
var<workgroup> probability: array<f32, TILE>;
var<workgroup> lse2: array<f32, ${rows}>;
var<workgroup> score: array<f32, ${alignedWorkgroupLength(c.maxBlocks, 4)}>;
var<workgroup> bestScore: array<f32, THREADS>;
var<workgroup> bestBlock: array<i32, THREADS>;
var<workgroup> slots: array<i32, ${alignedWorkgroupLength(c.topN, 4)}>;

${NSA_SEQUENCE_WGSL}

${WORKGROUP_INDEX_WGSL}

${ADD_OVERLAPS_WGSL}

@compute @workgroup_size(${threads})${c.pinSubgroupSize ? ` @subgroup_size(${c.subgroupSize})` : ''}
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) li: u32, @builtin(subgroup_id) sg: u32,
        @builtin(subgroup_invocation_id) sgLane: u32, @builtin(num_subgroups) sgCount: u32) {
  let w = workgroupIndex(wid, nwg);
  if (w >= p.tokens * p.kvHeads) { return; }
  let t = w / p.kvHeads;
  let g = w % p.kvHeads;
  // Read-only storage at uniform addresses: pos, own and the block counts are uniform.
  let sq = sequenceOf(t);
  let pos = i32(t - sq.start);
  let own = pos / p.blockSize;
  let sgc = min(sg, SUBGROUPS - 1u);
  // Compressed blocks visible to the token: those whose last token is not after it.
  var visibleBlocks = 0;
  if (pos >= p.kernelSize - 1) { visibleBlocks = min(i32(sq.cmpLength), (pos - p.kernelSize + 1) / p.stride + 1); }
  for (var J = i32(li); J <= own; J += i32(THREADS)) { score[J] = 0.0; }
  for (var h = li; h < GROUP; h += THREADS) {
    lse2[h] = lse[sq.lseBase + (g * GROUP + h) * p.lseHeadStride + u32(pos)] * LOG2E;
  }
  ${stage('q', groupRowsOf(rows))}
  workgroupBarrier();
${loadFragmentsWgsl(c.matrix, qf, 'Ks', st.k)}
  workgroupBarrier();
  let scale2 = p.scale * LOG2E;
${keys.declarations}
  {
    let cn = 0;
    ${keys.loads}
  }
  for (var c0 = 0; c0 < visibleBlocks; c0 += i32(TILE)) {
    ${keys.stores}
    workgroupBarrier();
    {
      let cn = c0 + i32(TILE);
      ${keys.loads}
    }
${scores}
    workgroupBarrier();
    if (li < TILE) {
      var sum = 0.0;
      if (c0 + i32(li) < visibleBlocks) {
        for (var h = 0u; h < GROUP; h++) { sum += exp2(Ss[h * ${st.s}u + li] * scale2 - lse2[h]); }
      }
      probability[li] = sum;
    }
    workgroupBarrier();
    // The selection blocks this tile's compressed blocks overlap, one per invocation.
    let firstJ = (c0 * p.stride) / p.blockSize;
    let lastJ = min(own, ((c0 + i32(TILE) - 1) * p.stride + p.kernelSize - 1) / p.blockSize);
    for (var J = firstJ + i32(li); J <= lastJ; J += i32(THREADS)) { addOverlaps(J, c0, min(visibleBlocks, c0 + i32(TILE))); }
  }
  workgroupBarrier();

  let sgIndex = sg;
${selectTopNWgsl({ subgroups: true })}
}
`;
}

/**
 * Block selection (NSA spec section 4), one workgroup per (token, KV head): the importance of each
 * selection block J is the compressed-attention probability, summed over the GQA group's query
 * heads, of every compressed block overlapping J, weighted by overlap / stride. Probabilities are
 * recomputed from q, the compressed keys and the compressed branch's lse, so the `[n, M]`
 * probability matrix never exists. Then the forced blocks (the first `initBlocks`, and the
 * `localBlocks` ending at the query) and repeated arg-max picks (ties to the lowest index) fill the
 * query's `min(topN, J_t + 1)` slots, `J_t` being its own block; unused slots hold -1.
 */
import { enables, paramsStruct, WORKGROUP_INDEX_WGSL } from '@webattn/core';
import type { NsaConfig } from '../config.js';
import { type GroupDotsConfig, groupDotsElement, groupDotsWgsl } from '../group-dots.wgsl.js';
import { NSA_SEQUENCE_WGSL } from '../layout.js';

/** Uniform parameters of the selection kernel. */
export const SELECT_PARAMS = [
  ['tokens', 'u32'],
  ['heads', 'u32'],
  ['kvHeads', 'u32'],
  ['group', 'u32'],
  ['dim', 'u32'],
  ['scale', 'f32'],
  ['kernelSize', 'i32'],
  ['stride', 'i32'],
  ['blockSize', 'i32'],
  ['initBlocks', 'i32'],
  ['localBlocks', 'i32'],
  ['lseHeadStride', 'u32'],
  ['tokenTable', 'u32'],
] as const;

/**
 * Generation parameters: storage dtype, slots per query, the most selection blocks a query can see,
 * and the query heads per KV head and head dim the kernel is specialised for.
 */
export interface SelectKernelConfig extends GroupDotsConfig {
  topN: number;
  geometry: BlockGeometry;
  maxBlocks: number;
  /** Reduce each pick's arg-max with subgroup operations (the adapter has subgroups). */
  subgroups: boolean;
}

/** Invocations per workgroup; each takes every THREADS-th block. */
export const SELECT_THREADS = 64;

/** Compressed blocks whose probabilities are held in workgroup memory at once. */
export const SELECT_CHUNK = 256;

/**
 * The end of the selection kernels, once `score[J]` holds every visible selection block's
 * importance: the forced blocks, then repeated arg-max picks (ties to the lowest index), written to
 * the query's slots with -1 in unused ones. Needs `li`, `t`, `g`, `own`, THREADS, TOPN and the
 * workgroup arrays `score`, `slots`, `bestScore`, `bestBlock` (THREADS entries each for the last
 * two). With `subgroups`, each pick's arg-max reduces within each subgroup, then over the
 * subgroups' results (two barriers per pick instead of 1 + log2 THREADS); that needs the builtins
 * `sgLane` (subgroup_invocation_id), `sgIndex` (subgroup_id) and `sgCount` (num_subgroups).
 */
export function selectTopNWgsl(o: { subgroups: boolean }): string {
  const reduce = o.subgroups
    ? `    // The subgroup's best, ties to the lowest block; then the subgroups' results, the same way.
    let sgBest = subgroupMax(best);
    let sgAt = subgroupMin(select(0xffffffffu, u32(at), at >= 0 && best == sgBest));
    if (sgLane == 0u) {
      bestScore[sgIndex] = sgBest;
      bestBlock[sgIndex] = select(i32(sgAt), -1, sgAt == 0xffffffffu);
    }
    workgroupBarrier();
    if (li == 0u) {
      for (var k = 1u; k < sgCount; k++) {
        let s = bestScore[k];
        let b = bestBlock[k];
        if (s > bestScore[0] || (s == bestScore[0] && b >= 0 && (bestBlock[0] < 0 || b < bestBlock[0]))) {
          bestScore[0] = s;
          bestBlock[0] = b;
        }
      }
    }`
    : `    bestScore[li] = best;
    bestBlock[li] = at;
    workgroupBarrier();
    for (var half = THREADS / 2u; half > 0u; half /= 2u) {
      if (li < half) {
        let s = bestScore[li + half];
        let b = bestBlock[li + half];
        if (s > bestScore[li] || (s == bestScore[li] && b >= 0 && (bestBlock[li] < 0 || b < bestBlock[li]))) {
          bestScore[li] = s;
          bestBlock[li] = b;
        }
      }
      workgroupBarrier();
    }`;
  return `  // Forced blocks first, scored -1 so no pick repeats them.
  let used = min(i32(TOPN), own + 1);
  // The first initBlocks blocks up to its own, then localBlocks more ending at its own; the count
  // is computed by every invocation, so it is uniform.
  let forced = min(p.initBlocks, own + 1) + clamp(own + 1 - p.initBlocks, 0, p.localBlocks);
  if (li == 0u) {
    var at = 0;
    for (var b = 0; b < p.initBlocks; b++) {
      if (b <= own) { slots[at] = b; score[b] = -1.0; at++; }
    }
    for (var b = 0; b < p.localBlocks; b++) {
      if (b + p.initBlocks <= own) { slots[at] = own - b; score[own - b] = -1.0; at++; }
    }
  }
  workgroupBarrier();

  // Repeated arg-max over the blocks the token can see, ties to the lowest index.
  for (var slot = 0; slot < i32(TOPN); slot++) {
    var best = -2.0;
    var at = -1;
    for (var J = i32(li); J <= own; J += i32(THREADS)) {
      if (score[J] > best) { best = score[J]; at = J; }
    }
${reduce}
    if (li == 0u && slot >= forced && slot < used) {
      slots[slot] = bestBlock[0];
      score[bestBlock[0]] = -1.0;
    }
    workgroupBarrier();
  }
  for (var slot = li; slot < TOPN; slot += THREADS) {
    selected[(t * p.kvHeads + g) * TOPN + slot] = select(-1, slots[slot], i32(slot) < used);
  }
`;
}

/** Where compressed and selection blocks lie, which fixes their overlaps (config.ts checks it). */
export type BlockGeometry = Pick<NsaConfig, 'kernelSize' | 'stride' | 'blockSize'>;

/**
 * WGSL of `addOverlaps(at, first, J, c0, end)`: adds to `score[at + J]` the probabilities
 * (`probability[first + i - c0]`) of compressed blocks i in [c0, end) that overlap selection block J,
 * weighted by overlap / stride, in increasing i (the same sum every run). `at` and `first` place one
 * token's arrays where a workgroup holds several. Every selection kernel declares the two arrays.
 *
 * Specialised on the geometry: with R = blockSize / stride and Kr = kernelSize / stride, the blocks
 * overlapping J are i = J·R - Kr + 1 + m for m in [0, R + Kr - 1), and the m-th overlaps J by
 * min(m + 1, R) - max(m + 1 - Kr, 0) strides, a whole number; so the terms are unrolled with their
 * weights as constants. (A loop over a uniform geometry, with its divisions, was a third of the
 * tensor-core selection's time.)
 */
export function addOverlapsWgsl(g: BlockGeometry): string {
  const { first, weights } = overlapTerms(g);
  const terms = weights.map(
    (weight, m) =>
      `  if (i0 + ${m} >= c0 && i0 + ${m} < end) { sum += ${weight}.0 * probability[first + u32(i0 + ${m} - c0)]; }`,
  );
  return `fn addOverlaps(at: u32, first: u32, J: i32, c0: i32, end: i32) {
  // The first compressed block overlapping J; the term for block i0 + m weighs its overlap in strides.
  let i0 = ${first('J')};
  var sum = score[at + u32(J)];
${terms.join('\n')}
  score[at + u32(J)] = sum;
}`;
}

/**
 * The compressed blocks overlapping a selection block (see {@link addOverlapsWgsl}): a WGSL
 * expression of the first one's index for selection block `J`, and the weight (overlap in strides)
 * of the first, second, ... of them.
 */
export function overlapTerms(g: BlockGeometry): { first: (J: string) => string; weights: number[] } {
  const R = g.blockSize / g.stride;
  const Kr = g.kernelSize / g.stride;
  return {
    first: (J) => `${J} * ${R} - ${Kr - 1}`,
    weights: Array.from({ length: R + Kr - 1 }, (_, m) => Math.min(m + 1, R) - Math.max(m + 1 - Kr, 0)),
  };
}

/** WGSL of the selection kernel. */
export function selectWgsl(c: SelectKernelConfig): string {
  return `${enables({ f16: c.dtype === 'f16', subgroups: c.subgroups })}
${paramsStruct(SELECT_PARAMS)}
@group(0) @binding(0) var<storage, read> q: array<${groupDotsElement(c)}>;
@group(0) @binding(1) var<storage, read> cmpK: array<${groupDotsElement(c)}>;
@group(0) @binding(2) var<storage, read> lse: array<f32>;
@group(0) @binding(3) var<storage, read> tables: array<u32>;
@group(0) @binding(4) var<storage, read_write> selected: array<i32>;
@group(0) @binding(5) var<uniform> p: Params;

const THREADS = ${SELECT_THREADS}u;
const TOPN = ${c.topN}u;
const CHUNK = ${SELECT_CHUNK}u;
const GROUP = ${c.group}u;
var<workgroup> score: array<f32, ${c.maxBlocks}>;
var<workgroup> probability: array<f32, CHUNK>;
var<workgroup> bestScore: array<f32, THREADS>;
var<workgroup> bestBlock: array<i32, THREADS>;
var<workgroup> slots: array<i32, TOPN>;

${NSA_SEQUENCE_WGSL}

${WORKGROUP_INDEX_WGSL}

${addOverlapsWgsl(c.geometry)}

${groupDotsWgsl(c)}

// The group's compressed-attention probability of compressed block i for token t, summed over heads.
fn groupProbability(t: u32, sq: Sequence, g: u32, i: i32) -> f32 {
  let dots = groupDots(t * p.heads + g * GROUP, (sq.cmpStart + u32(i)) * p.kvHeads + g);
  var total = 0.0;
  for (var hh = 0u; hh < GROUP; hh++) {
    total += exp(dots[hh] * p.scale - lse[sq.lseBase + (g * GROUP + hh) * p.lseHeadStride + t - sq.start]);
  }
  return total;
}

@compute @workgroup_size(${SELECT_THREADS})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32${
    c.subgroups
      ? `,
        @builtin(subgroup_invocation_id) sgLane: u32, @builtin(subgroup_id) sgIndex: u32, @builtin(num_subgroups) sgCount: u32`
      : ''
  }) {
  let w = workgroupIndex(wid, nwg);
  if (w >= p.tokens * p.kvHeads) { return; }
  let t = w / p.kvHeads;
  let g = w % p.kvHeads;
  let sq = sequenceOf(t);
  let pos = i32(t - sq.start);
  let own = pos / p.blockSize;
  // Compressed blocks visible to the token: those whose last token is not after it.
  var visibleBlocks = 0;
  if (pos >= p.kernelSize - 1) { visibleBlocks = min(i32(sq.cmpLength), (pos - p.kernelSize + 1) / p.stride + 1); }

  // The group's probability of each visible compressed block is computed once, a chunk of blocks
  // at a time, by all invocations; then each selection block adds the chunk's blocks overlapping
  // it, weighted by overlap / stride, in increasing block order (the same sum every run).
  for (var J = i32(li); J <= own; J += i32(THREADS)) { score[J] = 0.0; }
  for (var c0 = 0; c0 < visibleBlocks; c0 += i32(CHUNK)) {
    for (var ii = li; ii < CHUNK; ii += THREADS) {
      let i = c0 + i32(ii);
      var pc = 0.0;
      if (i < visibleBlocks) { pc = groupProbability(t, sq, g, i); }
      probability[ii] = pc;
    }
    workgroupBarrier();
    for (var J = i32(li); J <= own; J += i32(THREADS)) { addOverlaps(0u, 0u, J, c0, min(visibleBlocks, c0 + i32(CHUNK))); }
    workgroupBarrier();
  }
  workgroupBarrier();

${selectTopNWgsl({ subgroups: c.subgroups })}
}
`;
}

/**
 * The plain kernels of one NSA decode step (spec section 11) over an {@link NsaCache}'s keys: the
 * newest token of each sequence attends its prefix. The compressed attention is core's flash
 * forward (decode.ts), which runs each KV head's query heads as one tile's rows and splits the
 * keys; around it, all plain (every tier), f32 arithmetic:
 * - the compressed probabilities, one invocation per (sequence, KV head, compressed block, part
 *   of the group): the group's exp(s − lse) summed, from the compressed attention's lse;
 * - selection, one workgroup per (sequence, KV head): those probabilities spread over the
 *   selection blocks, then the forward's forced blocks and picks (shared WGSL);
 * - selected and window attention, one workgroup per (sequence, KV head, slot, part of the group),
 *   a slot being a selected block or a part of the window, each writing its heads' normalised
 *   outputs and log-sum-exps over the slot's keys;
 * - the combine, one workgroup per (sequence, query head): each branch's slots merged by their
 *   log-sum-exps in order, then the gated sum of the three branches.
 */
import { type Dtype, enables, MASKED, paramsStruct, WORKGROUP_INDEX_WGSL } from '@webattn/core';
import { SIGMOID_WGSL } from '../combine/combine.wgsl.js';
import type { NsaConfig } from '../config.js';
import { groupDotsElement, groupDotsWgsl } from '../group-dots.wgsl.js';
import { addOverlapsWgsl, type BlockGeometry, selectTopNWgsl } from '../select/select.wgsl.js';

/** Uniform parameters of the decode kernels. */
export const DECODE_PARAMS = [
  ['batch', 'u32'],
  ['heads', 'u32'],
  ['kvHeads', 'u32'],
  ['group', 'u32'],
  ['capacity', 'u32'],
  ['cmpCapacity', 'u32'],
  ['scale', 'f32'],
  ['kernelSize', 'i32'],
  ['stride', 'i32'],
  ['blockSize', 'i32'],
  ['initBlocks', 'i32'],
  ['localBlocks', 'i32'],
  ['windowSize', 'i32'],
] as const;

/**
 * Generation parameters: storage dtype, head dims, query heads per KV head, slots, and the most
 * selection blocks a sequence can have.
 */
export interface DecodeKernelConfig {
  dtype: Dtype;
  d: number;
  dv: number;
  group: number;
  topN: number;
  maxBlocks: number;
  geometry: BlockGeometry;
  /** Parts of THREADS keys the window is cut into: ⌈(windowSize + 1) / THREADS⌉. */
  windowParts: number;
}

/** Invocations per workgroup of the decode kernels; keys per chunk. */
export const DECODE_THREADS = 64;

/** The decode kernels' config for an NSA config, a storage dtype and the longest sequence's selection blocks. */
export function decodeKernelConfig(
  config: Pick<NsaConfig, 'headDim' | 'vHeadDim' | 'heads' | 'kvHeads' | 'topN' | 'windowSize'> &
    BlockGeometry,
  dtype: Dtype,
  maxBlocks: number,
): DecodeKernelConfig {
  return {
    dtype,
    d: config.headDim,
    dv: config.vHeadDim,
    group: config.heads / config.kvHeads,
    topN: config.topN,
    maxBlocks,
    geometry: config,
    windowParts: Math.ceil((config.windowSize + 1) / DECODE_THREADS),
  };
}

/** Keys whose values the selected attention loads together, before using any. */
const VALUE_BATCH = 8;

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/**
 * Query heads of a group that one workgroup of the selected attention, or one invocation of the
 * compressed probabilities, takes: the largest divisor of the group up to 4. On the H200 at batch
 * 8 x 16,384 (group 16) four heads per invocation took the compressed probabilities from 46 to
 * 30 us; the selected attention took 127 us with four heads per workgroup against 112 with the
 * whole group, before its loads were issued together, and was not timed with the whole group after.
 */
export function decodeHeadsPerPart(group: number): number {
  return [4, 3, 2, 1].find((h) => group % h === 0)!;
}

/** Compressed blocks one workgroup of the compressed probabilities takes: one per part of the group's invocations. */
function probabilityBlocksPerWorkgroup(group: number): number {
  return Math.floor(DECODE_THREADS / (group / decodeHeadsPerPart(group)));
}

/** Workgroups of the compressed probabilities for a batch: ⌈cmpCapacity / blocks per workgroup⌉ per (sequence, KV head). */
export function decodeProbabilitiesWorkgroups(
  c: { group: number },
  pairs: number,
  cmpCapacity: number,
): number {
  return pairs * Math.ceil(cmpCapacity / probabilityBlocksPerWorkgroup(c.group));
}

function header(c: DecodeKernelConfig, bindings: string[]): string {
  return `${enables({ f16: c.dtype === 'f16' })}
${paramsStruct(DECODE_PARAMS)}
${bindings.map((b, i) => `@group(0) @binding(${i}) var<storage, ${b.replaceAll('DTYPE', c.dtype)};`).join('\n')}
@group(0) @binding(${bindings.length}) var<uniform> p: Params;

const D = ${c.d}u;
const DV = ${c.dv}u;
const TOPN = ${c.topN}u;
// A row's attention parts: its selected blocks, then its window's parts of THREADS keys.
const SLOTS = ${c.topN + c.windowParts}u;
const THREADS = ${DECODE_THREADS}u;
const COLUMNS = ${Math.ceil(c.dv / DECODE_THREADS)}u;

${WORKGROUP_INDEX_WGSL}
${bindings.some((b) => b.includes(' lengths:')) ? LENGTH_HELPERS_WGSL : ''}`;
}

/**
 * The newest token's position in sequence b and its number of compressed blocks, for the kernels
 * that bind the cache's `lengths` (read-only storage at a uniform address: uniform).
 */
const LENGTH_HELPERS_WGSL = `
fn position(b: u32) -> i32 { return i32(lengths[b]) - 1; }
fn compressedBlocks(b: u32) -> i32 {
  let len = i32(lengths[b]);
  return select(0, (len - p.kernelSize) / p.stride + 1, len >= p.kernelSize);
}`;

/**
 * The compressed probabilities the selection scores from: for every (sequence t, KV head g,
 * compressed block i) the group's `exp(q_h·k_i · scale − lse_h)` summed, 0 past the sequence's
 * blocks. Each invocation takes one block and a part of the group's heads
 * ({@link decodeHeadsPerPart}); the parts are summed in order. Bindings: q, cmpK, lse (the
 * compressed attention's, `[batch, heads]`), lengths, probabilities (f32
 * `[batch, kvHeads, cmpCapacity]`). Workgroups: {@link decodeProbabilitiesWorkgroups}.
 */
export function decodeProbabilitiesWgsl(c: DecodeKernelConfig): string {
  const H = decodeHeadsPerPart(c.group);
  const parts = c.group / H;
  // The dot products' loads issued one at a time: at batch 8 on the H200 the unrolled form took
  // 35 / 110 us at 16,384 / 65,536 cached tokens against 30 / 93.
  const dots = { dtype: c.dtype, group: H, dim: c.d };
  return `${header(c, [`read> q: array<${groupDotsElement(dots)}>`, `read> cmpK: array<${groupDotsElement(dots)}>`, 'read> lse: array<f32>', 'read> lengths: array<u32>', 'read_write> probabilities: array<f32>'])}
const PARTS = ${parts}u;
const H = ${H}u;
const CHUNK = ${probabilityBlocksPerWorkgroup(c.group)}u;
var<workgroup> partial: array<f32, THREADS>;

${groupDotsWgsl(dots)}

@compute @workgroup_size(${DECODE_THREADS})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let chunks = (p.cmpCapacity + CHUNK - 1u) / CHUNK;
  let w = workgroupIndex(wid, nwg);
  if (w >= p.batch * p.kvHeads * chunks) { return; }
  // The (sequence, KV head) pair; this invocation's compressed block and part of the group.
  let pair = w / chunks;
  let t = pair / p.kvHeads;
  let g = pair % p.kvHeads;
  let local = li / PARTS;
  let i = (w % chunks) * CHUNK + local;
  let heads = t * p.heads + g * p.group + (li % PARTS) * H;
  var total = 0.0;
  if (local < CHUNK && i32(i) < compressedBlocks(t)) {
    let dots = groupDots(heads, (t * p.cmpCapacity + i) * p.kvHeads + g);
    for (var hh = 0u; hh < H; hh++) { total += exp(dots[hh] * p.scale - lse[heads + hh]); }
  }
  partial[li] = total;
  workgroupBarrier();
  if (li % PARTS == 0u && local < CHUNK && i < p.cmpCapacity) {
    var sum = 0.0;
    for (var part = 0u; part < PARTS; part++) { sum += partial[li + part]; }
    probabilities[pair * p.cmpCapacity + i] = sum;
  }
}
`;
}

/**
 * Workgroup memory of {@link decodeSelectWgsl} in bytes: a score per selection block the longest
 * sequence has, each invocation's best score and block, the slots.
 */
export function decodeSelectSharedBytes(c: Pick<DecodeKernelConfig, 'maxBlocks' | 'topN'>): number {
  return (c.maxBlocks + 2 * DECODE_THREADS + c.topN) * 4;
}

/**
 * Selection for the newest token of each sequence, from the compressed probabilities: each
 * selection block's score is its overlapping blocks' probabilities, read from storage (the shared
 * addOverlaps, over the binding named `probability`), then the forward's forced blocks and picks.
 * Bindings: probability (the compressed probabilities), lengths, selected (i32
 * `[batch, kvHeads, topN]`, -1 in unused slots).
 */
export function decodeSelectWgsl(c: DecodeKernelConfig): string {
  return `${header(c, ['read> probability: array<f32>', 'read> lengths: array<u32>', 'read_write> selected: array<i32>'])}
var<workgroup> score: array<f32, ${c.maxBlocks}>;
var<workgroup> bestScore: array<f32, THREADS>;
var<workgroup> bestBlock: array<i32, THREADS>;
var<workgroup> slots: array<i32, TOPN>;

${addOverlapsWgsl(c.geometry)}

@compute @workgroup_size(${DECODE_THREADS})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let w = workgroupIndex(wid, nwg);
  if (w >= p.batch * p.kvHeads) { return; }
  let t = w / p.kvHeads;
  let g = w % p.kvHeads;
  let own = position(t) / p.blockSize;
  let blocks = compressedBlocks(t);
  for (var J = i32(li); J <= own; J += i32(THREADS)) {
    score[J] = 0.0;
    addOverlaps(0u, w * p.cmpCapacity, J, 0, blocks);
  }
  workgroupBarrier();
${selectTopNWgsl({ subgroups: false })}
}
`;
}

/**
 * Selected and window attention, one workgroup per (sequence, KV head, slot, part of the group)
 * over the slot's keys (a selected block, or a part of THREADS keys of the window), for the part's
 * {@link decodeHeadsPerPart} query heads: each invocation scores one key for every head of the
 * part (the key read once), each head's online softmax is kept by one invocation, and each
 * invocation accumulates its output columns for every head. Writes each head's normalised output
 * and log-sum-exp over the slot, or lse MASKED for an unused slot. Bindings: q, k (the cache's
 * keys, as the group dot products read them), v, selected, lengths, blockO (f32
 * `[batch, heads, slots, dv]`), blockLse (f32 `[batch, heads, slots]`).
 */
export function decodeSelectedWgsl(c: DecodeKernelConfig): string {
  const G = decodeHeadsPerPart(c.group);
  const dots = { dtype: c.dtype, group: G, dim: c.d, keys: 'k', unrolled: true };
  return `${header(c, [`read> q: array<${groupDotsElement(dots)}>`, `read> k: array<${groupDotsElement(dots)}>`, 'read> v: array<DTYPE>', 'read> selected: array<i32>', 'read> lengths: array<u32>', 'read_write> blockO: array<f32>', 'read_write> blockLse: array<f32>'])}
// Heads per workgroup, and the group's parts.
const G = ${G}u;
const PARTS = ${c.group / G}u;
// Each head's scores, then probabilities, for the keys of a chunk: [G][THREADS].
var<workgroup> chunkP: array<f32, ${G * DECODE_THREADS}>;
var<workgroup> headMax: array<f32, G>;
var<workgroup> headSum: array<f32, G>;
var<workgroup> headRescale: array<f32, G>;

${groupDotsWgsl(dots)}

@compute @workgroup_size(${DECODE_THREADS})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let w = workgroupIndex(wid, nwg);
  if (w >= p.batch * p.kvHeads * SLOTS * PARTS) { return; }
  // The (sequence, KV head) pair, the slot, and the part's first query row.
  let pair = w / (SLOTS * PARTS);
  let slot = (w / PARTS) % SLOTS;
  let b = pair / p.kvHeads;
  let g = pair % p.kvHeads;
  let qRow = b * p.heads + g * p.group + (w % PARTS) * G;
  let pos = position(b);
  // The slot's keys [first, last]: a selected block, or a part of the window [pos - windowSize, pos].
  var first = max(0, pos - p.windowSize) + i32(slot - TOPN) * i32(THREADS);
  var last = min(first + i32(THREADS) - 1, pos);
  if (slot < TOPN) {
    let J = selected[pair * TOPN + slot];
    first = select(pos + 1, J * p.blockSize, J >= 0);
    last = min(first + p.blockSize - 1, pos);
  }
  if (first > last) {
    for (var h = li; h < G; h += THREADS) { blockLse[(qRow + h) * SLOTS + slot] = ${MASKED}; }
    return;
  }
  for (var h = li; h < G; h += THREADS) { headMax[h] = ${MASKED}; headSum[h] = 0.0; }
  var acc: array<f32, ${G * Math.ceil(c.dv / DECODE_THREADS)}>;
  workgroupBarrier();
  for (var k0 = first; k0 <= last; k0 += i32(THREADS)) {
    let count = min(i32(THREADS), last - k0 + 1);
    // Keys past the block's end score MASKED, so that their probability is 0.
    var scores: array<f32, G>;
    for (var h = 0u; h < G; h++) { scores[h] = ${MASKED}; }
    if (i32(li) < count) {
      scores = groupDots(qRow, (b * p.capacity + u32(k0) + li) * p.kvHeads + g);
      for (var h = 0u; h < G; h++) { scores[h] *= p.scale; }
    }
    for (var h = 0u; h < G; h++) { chunkP[h * THREADS + li] = scores[h]; }
    workgroupBarrier();
    for (var h = li; h < G; h += THREADS) {
      var m = headMax[h];
      for (var j = 0u; j < THREADS; j++) { m = max(m, chunkP[h * THREADS + j]); }
      var sum = 0.0;
      for (var j = 0u; j < THREADS; j++) {
        let prob = select(0.0, exp(chunkP[h * THREADS + j] - m), chunkP[h * THREADS + j] > ${MASKED});
        chunkP[h * THREADS + j] = prob;
        sum += prob;
      }
      headRescale[h] = exp(headMax[h] - m);
      headSum[h] = headSum[h] * headRescale[h] + sum;
      headMax[h] = m;
    }
    workgroupBarrier();
    for (var c = 0u; c < COLUMNS; c++) {
      let e = li + THREADS * c;
      if (e < DV) {
        for (var h = 0u; h < G; h++) { acc[h * COLUMNS + c] *= headRescale[h]; }
        // ${VALUE_BATCH} keys' values loaded before any is used; a key past the block's end reads
        // the last one and weighs 0.
        for (var j0 = 0; j0 < count; j0 += ${VALUE_BATCH}) {
${range(VALUE_BATCH)
  .map(
    (j) =>
      `          let x${j} = f32(v[((b * p.capacity + u32(k0 + min(j0 + ${j}, count - 1))) * p.kvHeads + g) * DV + e]);`,
  )
  .join('\n')}
          for (var h = 0u; h < G; h++) {
            let at = h * THREADS + u32(j0);
            acc[h * COLUMNS + c] += ${range(VALUE_BATCH)
              .map((j) => `chunkP[at + ${j}u] * x${j}`)
              .join(' + ')};
          }
        }
      }
    }
    workgroupBarrier();
  }
  for (var c = 0u; c < COLUMNS; c++) {
    let e = li + THREADS * c;
    if (e < DV) {
      for (var h = 0u; h < G; h++) { blockO[((qRow + h) * SLOTS + slot) * DV + e] = acc[h * COLUMNS + c] / headSum[h]; }
    }
  }
  for (var h = li; h < G; h += THREADS) { blockLse[(qRow + h) * SLOTS + slot] = headMax[h] + log(headSum[h]); }
}
`;
}

/**
 * Each row's selected blocks and window parts merged by their log-sum-exps, each branch in slot
 * order, and the gated sum of the three branches. Bindings: blockO, blockLse, gate, oCmp, o
 * `[batch, heads, dv]`.
 */
export function decodeCombineWgsl(c: DecodeKernelConfig): string {
  return `${header(c, ['read> blockO: array<f32>', 'read> blockLse: array<f32>', 'read> gate: array<DTYPE>', 'read> oCmp: array<DTYPE>', 'read_write> o: array<DTYPE>'])}

${SIGMOID_WGSL}

// The max over the slots [lo, hi) of a row's parts, and the parts' weights' sum against it.
fn partsMax(row: u32, lo: u32, hi: u32) -> f32 {
  var m = ${MASKED};
  for (var s = lo; s < hi; s++) { m = max(m, blockLse[row * SLOTS + s]); }
  return m;
}
fn partsTotal(row: u32, lo: u32, hi: u32, m: f32) -> f32 {
  var total = 0.0;
  for (var s = lo; s < hi; s++) {
    let x = blockLse[row * SLOTS + s];
    total += select(0.0, exp(x - m), x > ${MASKED});
  }
  return total;
}
// Column e of the merged output of the slots [lo, hi), unnormalised.
fn partsColumn(row: u32, lo: u32, hi: u32, m: f32, e: u32) -> f32 {
  var sum = 0.0;
  for (var s = lo; s < hi; s++) {
    let x = blockLse[row * SLOTS + s];
    if (x > ${MASKED}) { sum += exp(x - m) * blockO[(row * SLOTS + s) * DV + e]; }
  }
  return sum;
}

@compute @workgroup_size(${DECODE_THREADS})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let row = workgroupIndex(wid, nwg);
  if (row >= p.batch * p.heads) { return; }
  let mSel = partsMax(row, 0u, TOPN);
  let mWin = partsMax(row, TOPN, SLOTS);
  let totalSel = partsTotal(row, 0u, TOPN, mSel);
  let totalWin = partsTotal(row, TOPN, SLOTS, mWin);
  let gc = sigmoid(f32(gate[row * 3u]));
  let gs = sigmoid(f32(gate[row * 3u + 1u])) * select(0.0, 1.0 / totalSel, totalSel > 0.0);
  let gw = sigmoid(f32(gate[row * 3u + 2u])) * select(0.0, 1.0 / totalWin, totalWin > 0.0);
  for (var e = li; e < DV; e += THREADS) {
    let selected = partsColumn(row, 0u, TOPN, mSel, e);
    let window = partsColumn(row, TOPN, SLOTS, mWin, e);
    o[row * DV + e] = ${c.dtype}(gc * f32(oCmp[row * DV + e]) + gs * selected + gw * window);
  }
}
`;
}

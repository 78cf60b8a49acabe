/**
 * The plain kernels of one NSA decode step (spec section 11) over an {@link NsaCache}'s keys: the
 * newest token of each sequence attends its prefix. The compressed and the window attention are
 * core's flash forward (decode.ts), which runs each KV head's query heads as one tile's rows and
 * splits the keys; around them, all plain (every tier), f32 arithmetic:
 * - the compressed probabilities, one invocation per (sequence, KV head, compressed block): the
 *   group's exp(s − lse) summed, from the compressed attention's lse;
 * - selection, one workgroup per (sequence, KV head): those probabilities spread over the
 *   selection blocks, then the forward's forced blocks and picks (shared WGSL);
 * - selected attention, one workgroup per (sequence, KV head, selected block) for the whole query
 *   group, each writing every head's normalised output and log-sum-exp over its block;
 * - the combine, one workgroup per (sequence, query head): the blocks merged by their log-sum-exps
 *   in slot order, then the gated sum of the three branches.
 */
import { type Dtype, enables, paramsStruct, WORKGROUP_INDEX_WGSL } from '@webattn/core';
import { SIGMOID_WGSL } from '../combine/combine.wgsl.js';
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
}

/** Invocations per workgroup of the decode kernels; keys per chunk. */
export const DECODE_THREADS = 64;

/**
 * Query heads of a group that one workgroup of the selected attention, or one invocation of the
 * compressed probabilities, takes: the largest divisor of the group up to 4. A whole group of 16
 * per workgroup left the selected attention at 512 workgroups at batch 8, each invocation walking
 * 16 heads' products one after another.
 */
export function decodeHeadsPerPart(group: number): number {
  return [4, 3, 2, 1].find((h) => group % h === 0)!;
}

/** Workgroups of the compressed probabilities for a batch: ⌈cmpCapacity / blocks per workgroup⌉ per (sequence, KV head). */
export function decodeProbabilitiesWorkgroups(
  c: { group: number },
  pairs: number,
  cmpCapacity: number,
): number {
  const parts = c.group / decodeHeadsPerPart(c.group);
  return pairs * Math.ceil(cmpCapacity / Math.floor(DECODE_THREADS / parts));
}

const MASKED = '-3.0e38';

function header(c: DecodeKernelConfig, bindings: string[]): string {
  return `${enables({ f16: c.dtype === 'f16' })}
${paramsStruct(DECODE_PARAMS)}
${bindings.map((b, i) => `@group(0) @binding(${i}) var<storage, ${b.replaceAll('DTYPE', c.dtype)};`).join('\n')}
@group(0) @binding(${bindings.length}) var<uniform> p: Params;

const D = ${c.d}u;
const DV = ${c.dv}u;
const TOPN = ${c.topN}u;
const THREADS = ${DECODE_THREADS}u;
const COLUMNS = ${Math.ceil(c.dv / DECODE_THREADS)}u;

${WORKGROUP_INDEX_WGSL}

// The newest token's position in sequence b and its number of compressed blocks (read-only
// storage at a uniform address: uniform).
fn position(b: u32) -> i32 { return i32(lengths[b]) - 1; }
fn compressedBlocks(b: u32) -> i32 {
  let len = i32(lengths[b]);
  return select(0, (len - p.kernelSize) / p.stride + 1, len >= p.kernelSize);
}`;
}

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
  const dots = { dtype: c.dtype, group: H, dim: c.d };
  return `${header(c, [`read> q: array<${groupDotsElement(dots)}>`, `read> cmpK: array<${groupDotsElement(dots)}>`, 'read> lse: array<f32>', 'read> lengths: array<u32>', 'read_write> probabilities: array<f32>'])}
const PARTS = ${parts}u;
const H = ${H}u;
const CHUNK = ${Math.floor(DECODE_THREADS / parts)}u;
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
 * Selected attention, one workgroup per (sequence, KV head, slot, part of the group) over the block
 * in that slot, for the part's {@link decodeHeadsPerPart} query heads: each invocation scores one
 * key for every head of the part (the key read once), each head's online softmax is kept by one
 * invocation, and each invocation accumulates its output columns for every head. Writes each head's normalised output and log-sum-exp for the
 * block, or lse MASKED for an unused slot. Bindings: q, k (the cache's keys, as the group dot
 * products read them), v, selected, lengths, blockO (f32 `[batch, heads, topN, dv]`), blockLse (f32
 * `[batch, heads, topN]`).
 */
export function decodeSelectedWgsl(c: DecodeKernelConfig): string {
  const G = decodeHeadsPerPart(c.group);
  const dots = { dtype: c.dtype, group: G, dim: c.d, keys: 'k' };
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
  if (w >= p.batch * p.kvHeads * TOPN * PARTS) { return; }
  // The (sequence, KV head) pair, the slot, and the part's first query row.
  let pair = w / (TOPN * PARTS);
  let slot = (w / PARTS) % TOPN;
  let b = pair / p.kvHeads;
  let g = pair % p.kvHeads;
  let qRow = b * p.heads + g * p.group + (w % PARTS) * G;
  let J = selected[pair * TOPN + slot];
  if (J < 0) {
    for (var h = li; h < G; h += THREADS) { blockLse[(qRow + h) * TOPN + slot] = ${MASKED}; }
    return;
  }
  for (var h = li; h < G; h += THREADS) { headMax[h] = ${MASKED}; headSum[h] = 0.0; }
  var acc: array<f32, ${G * Math.ceil(c.dv / DECODE_THREADS)}>;
  workgroupBarrier();
  let first = J * p.blockSize;
  let last = min(first + p.blockSize - 1, position(b));
  for (var k0 = first; k0 <= last; k0 += i32(THREADS)) {
    let count = min(i32(THREADS), last - k0 + 1);
    if (i32(li) < count) {
      let scores = groupDots(qRow, (b * p.capacity + u32(k0) + li) * p.kvHeads + g);
      for (var h = 0u; h < G; h++) { chunkP[h * THREADS + li] = scores[h] * p.scale; }
    }
    workgroupBarrier();
    for (var h = li; h < G; h += THREADS) {
      var m = headMax[h];
      for (var j = 0; j < count; j++) { m = max(m, chunkP[h * THREADS + u32(j)]); }
      var sum = 0.0;
      for (var j = 0; j < count; j++) {
        let prob = exp(chunkP[h * THREADS + u32(j)] - m);
        chunkP[h * THREADS + u32(j)] = prob;
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
        for (var j = 0; j < count; j++) {
          let x = f32(v[((b * p.capacity + u32(k0 + j)) * p.kvHeads + g) * DV + e]);
          for (var h = 0u; h < G; h++) { acc[h * COLUMNS + c] += chunkP[h * THREADS + u32(j)] * x; }
        }
      }
    }
    workgroupBarrier();
  }
  for (var c = 0u; c < COLUMNS; c++) {
    let e = li + THREADS * c;
    if (e < DV) {
      for (var h = 0u; h < G; h++) { blockO[((qRow + h) * TOPN + slot) * DV + e] = acc[h * COLUMNS + c] / headSum[h]; }
    }
  }
  for (var h = li; h < G; h += THREADS) { blockLse[(qRow + h) * TOPN + slot] = headMax[h] + log(headSum[h]); }
}
`;
}

/**
 * The selected blocks merged by their log-sum-exps in slot order, and the gated sum of the three
 * branches. Bindings: blockO, blockLse, gate, oCmp, oWin, o `[batch, heads, dv]`.
 */
export function decodeCombineWgsl(c: DecodeKernelConfig): string {
  return `${header(c, ['read> blockO: array<f32>', 'read> blockLse: array<f32>', 'read> lengths: array<u32>', 'read> gate: array<DTYPE>', 'read> oCmp: array<DTYPE>', 'read> oWin: array<DTYPE>', 'read_write> o: array<DTYPE>'])}

${SIGMOID_WGSL}

@compute @workgroup_size(${DECODE_THREADS})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  _ = &lengths;
  let row = workgroupIndex(wid, nwg);
  if (row >= p.batch * p.heads) { return; }
  var m = ${MASKED};
  for (var s = 0u; s < TOPN; s++) { m = max(m, blockLse[row * TOPN + s]); }
  var total = 0.0;
  for (var s = 0u; s < TOPN; s++) {
    let x = blockLse[row * TOPN + s];
    total += select(0.0, exp(x - m), x > ${MASKED});
  }
  let inv = select(0.0, 1.0 / total, total > 0.0);
  let gc = sigmoid(f32(gate[row * 3u]));
  let gs = sigmoid(f32(gate[row * 3u + 1u]));
  let gw = sigmoid(f32(gate[row * 3u + 2u]));
  for (var e = li; e < DV; e += THREADS) {
    var selected = 0.0;
    for (var s = 0u; s < TOPN; s++) {
      let x = blockLse[row * TOPN + s];
      if (x > ${MASKED}) { selected += exp(x - m) * blockO[(row * TOPN + s) * DV + e]; }
    }
    o[row * DV + e] = ${c.dtype}(gc * f32(oCmp[row * DV + e]) + gs * selected * inv + gw * f32(oWin[row * DV + e]));
  }
}
`;
}

/**
 * The selection inverted: for every (selection block, KV head), the tokens whose selection lists
 * the block, in token order, as a CSR table `[offsets | entries]` (entries are positions within
 * the sequence). Deterministic kernels without float atomics: one workgroup per group of
 * INVERSE_GROUP blocks and KV head counts their tokens, one workgroup turns the counts into
 * offsets, and one workgroup per group and KV head writes their tokens. The tensor-core dK/dV
 * kernels read it at uniform addresses, so the loops over a block's tokens are uniform. A fourth
 * kernel cuts each list into chunks of at most `chunk` tokens (at least one chunk per list, empty
 * ones included) and writes where each list's chunks start in the chunk order, after the entries:
 * the tensor-core dK/dV kernels run a workgroup per chunk, so that a block every token selects
 * (the first) is not one workgroup's walk over every token.
 */
import { enables, paramsStruct, WORKGROUP_INDEX_WGSL } from '@webattn/core';
import { NSA_SEQUENCE_WGSL } from '../layout.js';

/** Uniform parameters of the four kernels (`chunkStart`: where the chunk kernel writes). */
export const INVERSE_PARAMS = [
  ['blocks', 'u32'],
  ['kvHeads', 'u32'],
  ['blockSize', 'i32'],
  ['tokenTable', 'u32'],
  ['blockTable', 'u32'],
  ['chunkStart', 'u32'],
] as const;

/** Invocations per workgroup of the count and fill kernels (tokens per step), and of the offsets kernel. */
export const INVERSE_THREADS = 256;
export const OFFSETS_THREADS = 256;

/**
 * Selection blocks per workgroup of the count and fill kernels. Each token's picks are read once
 * per workgroup and compared with all of its blocks, so the selection is read from L2 this many
 * times fewer (the kernels' time was that reading: at 65,536 tokens one workgroup per block read
 * 8.6 GB per kernel).
 */
export const INVERSE_GROUP = 16;

/** u32 words of one block's hit mask over a step's tokens. */
const MASK_WORDS = INVERSE_THREADS / 32;

/** Workgroups of the count and fill kernels: a group of blocks for each KV head. */
export function inverseWorkgroups(blocks: number, kvHeads: number): number {
  return Math.ceil(blocks / INVERSE_GROUP) * kvHeads;
}

/**
 * The workgroup's KV head and its group of blocks, each as `Listed`: its index within its
 * sequence, the global token range that may list it (its first token to its sequence's end; empty
 * past the table) and its sequence's first token; then `lo`, `hi`: the range covering them all.
 */
function groupPreamble(): string {
  return `  let w = workgroupIndex(wid, nwg);
  if (w >= ${`((p.blocks + ${INVERSE_GROUP - 1}u) / ${INVERSE_GROUP}u)`} * p.kvHeads) { return; }
  let g = w % p.kvHeads;
  let b0 = (w / p.kvHeads) * GROUP;
  var blocks: array<Listed, GROUP>;
  var hi = 0u;
  for (var b = 0u; b < GROUP; b++) {
    blocks[b] = listedBlock(b0 + b);
    hi = max(hi, blocks[b].hi);
  }
  let lo = blocks[0].lo;`;
}

/**
 * `Listed`, `listedBlock(w)`, and `picksOf(t, g)`: token t's selection for KV head g, read in
 * fours where the slots come in fours (`selected` bound as vec4<i32>), and `lists(picks, j)`.
 */
function listsWgsl(topN: number): string {
  const width = topN % 4 === 0 ? 4 : 1;
  const reads = topN / width;
  const word = width === 4 ? 'vec4<i32>' : 'i32';
  return `const GROUP = ${INVERSE_GROUP}u;

struct Listed { j: i32, lo: u32, hi: u32, seqStart: u32 }

fn listedBlock(w: u32) -> Listed {
  if (w >= p.blocks) { return Listed(-1, 0u, 0u, 0u); }
  let s0 = tables[p.blockTable + w];
  let sq = sequenceOf(s0);
  return Listed(i32(s0 - sq.start) / p.blockSize, s0, sq.start + sq.length, sq.start);
}

fn picksOf(t: u32, g: u32) -> array<${word}, ${reads}> {
  let row = (t * p.kvHeads + g) * ${reads}u;
  var picks: array<${word}, ${reads}>;
  for (var slot = 0u; slot < ${reads}u; slot++) { picks[slot] = selected[row + slot]; }
  return picks;
}

fn lists(picks: array<${word}, ${reads}>, t: u32, block: Listed) -> bool {
  var hit = false;
  for (var slot = 0u; slot < ${reads}u; slot++) { hit = hit || ${width === 4 ? 'any(picks[slot] == vec4<i32>(block.j))' : 'picks[slot] == block.j'}; }
  return hit && t >= block.lo && t < block.hi;
}`;
}

/** The binding of the selection, read by `picksOf`. */
function selectionBinding(topN: number): string {
  return `read> selected: array<${topN % 4 === 0 ? 'vec4<i32>' : 'i32'}>`;
}

function header(bindings: string[]): string {
  return `${enables({})}
${paramsStruct(INVERSE_PARAMS)}
${bindings.map((b, i) => `@group(0) @binding(${i}) var<storage, ${b};`).join('\n')}
@group(0) @binding(${bindings.length}) var<uniform> p: Params;

${WORKGROUP_INDEX_WGSL}`;
}

/**
 * Tokens per (block, KV head). Each invocation counts its tokens' hits for every block of the
 * group; the counts are added over the invocations in one tree for all blocks. Bindings:
 * selected, tables, counts.
 */
export function inverseCountWgsl(topN: number): string {
  return `${header([selectionBinding(topN), 'read> tables: array<u32>', 'read_write> counts: array<u32>'])}
${NSA_SEQUENCE_WGSL}
${listsWgsl(topN)}
var<workgroup> partial: array<array<u32, GROUP>, ${INVERSE_THREADS}>;

@compute @workgroup_size(${INVERSE_THREADS})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
${groupPreamble()}
  var count: array<u32, GROUP>;
  for (var t = lo + li; t < hi; t += ${INVERSE_THREADS}u) {
    let picks = picksOf(t, g);
    for (var b = 0u; b < GROUP; b++) {
      if (lists(picks, t, blocks[b])) { count[b]++; }
    }
  }
  partial[li] = count;
  workgroupBarrier();
  for (var half = ${INVERSE_THREADS / 2}u; half > 0u; half /= 2u) {
    if (li < half) {
      for (var b = 0u; b < GROUP; b++) { partial[li][b] += partial[li + half][b]; }
    }
    workgroupBarrier();
  }
  if (li < GROUP && b0 + li < p.blocks) { counts[(b0 + li) * p.kvHeads + g] = partial[0][li]; }
}
`;
}

/**
 * A one-workgroup exclusive scan over the `n = blocks · kvHeads` lists (the offsets and the chunk
 * starts): `dest(i)` gets the sum of `value(j)` for j < i, and `dest(n)` the total. Each invocation
 * sums a run of lists, then the runs' totals are added in order.
 */
function exclusiveScanWgsl(value: (i: string) => string, dest: (i: string) => string): string {
  return `var<workgroup> totals: array<u32, ${OFFSETS_THREADS}>;

@compute @workgroup_size(${OFFSETS_THREADS})
fn main(@builtin(local_invocation_index) li: u32) {
  let n = p.blocks * p.kvHeads;
  let per = (n + ${OFFSETS_THREADS - 1}u) / ${OFFSETS_THREADS}u;
  let lo = min(li * per, n);
  let hi = min(lo + per, n);
  var sum = 0u;
  for (var i = lo; i < hi; i++) { sum += ${value('i')}; }
  totals[li] = sum;
  workgroupBarrier();
  var before = 0u;
  for (var j = 0u; j < li; j++) { before += totals[j]; }
  for (var i = lo; i < hi; i++) {
    ${dest('i')} = before;
    before += ${value('i')};
  }
  if (li == ${OFFSETS_THREADS - 1}u) { ${dest('n')} = before; }
}
`;
}

/** Offsets from counts: `inverse[i]` = tokens of entries before i, `inverse[n]` the total. Bindings: counts, inverse. */
export function inverseOffsetsWgsl(): string {
  return `${header(['read> counts: array<u32>', 'read_write> inverse: array<u32>'])}
${exclusiveScanWgsl(
  (i) => `counts[${i}]`,
  (i) => `inverse[${i}]`,
)}`;
}

/**
 * Each (block, KV head)'s tokens, in order, after the offsets. The workgroup walks its group's
 * tokens a step of INVERSE_THREADS at a time; each block's hits in a step set bits of a mask (an
 * atomic or, whose result does not depend on the order), so each hit's place is the hits before it
 * in the mask, and the block's list moves on by the step's hits. The masks rotate over three sets:
 * a set is cleared two steps before it is used again, with a barrier between its last read and the
 * clearing and another between the clearing and its next use, so one barrier per step suffices.
 * Bindings: selected, tables, inverse.
 */
export function inverseFillWgsl(topN: number): string {
  const set = INVERSE_GROUP * MASK_WORDS;
  return `${header([selectionBinding(topN), 'read> tables: array<u32>', 'read_write> inverse: array<u32>'])}
${NSA_SEQUENCE_WGSL}
${listsWgsl(topN)}
var<workgroup> masks: array<atomic<u32>, ${3 * set}>;

@compute @workgroup_size(${INVERSE_THREADS})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
${groupPreamble()}
  let entries = p.blocks * p.kvHeads + 1u;
  // Where each block's next token goes.
  var at: array<u32, GROUP>;
  for (var b = 0u; b < GROUP; b++) {
    if (b0 + b < p.blocks) { at[b] = entries + inverse[(b0 + b) * p.kvHeads + g]; }
  }
  // Every set starts clear: workgroup memory is not zeroed where the device skips its
  // initialisation (core's fast mode, which the bench uses).
  for (var e = li; e < ${3 * set}u; e += ${INVERSE_THREADS}u) { atomicStore(&masks[e], 0u); }
  workgroupBarrier();
  let word = li / 32u;
  let bit = 1u << (li % 32u);
  var step = 0u;
  for (var t0 = lo; t0 < hi; t0 += ${INVERSE_THREADS}u) {
    let t = t0 + li;
    let base = (step % 3u) * ${set}u;
    var hits = 0u;
    if (t < hi) {
      let picks = picksOf(t, g);
      for (var b = 0u; b < GROUP; b++) {
        if (lists(picks, t, blocks[b])) {
          hits |= 1u << b;
          atomicOr(&masks[base + b * ${MASK_WORDS}u + word], bit);
        }
      }
    }
    workgroupBarrier();
    // The set used two steps on was last read a step ago, before the barrier above.
    let next = ((step + 2u) % 3u) * ${set}u;
    for (var e = li; e < ${set}u; e += ${INVERSE_THREADS}u) { atomicStore(&masks[next + e], 0u); }
    for (var b = 0u; b < GROUP; b++) {
      var before = 0u;
      var total = 0u;
      for (var m = 0u; m < ${MASK_WORDS}u; m++) {
        let bits = atomicLoad(&masks[base + b * ${MASK_WORDS}u + m]);
        total += countOneBits(bits);
        if (m < word) { before += countOneBits(bits); }
        if (m == word) { before += countOneBits(bits & (bit - 1u)); }
      }
      if ((hits & (1u << b)) != 0u) { inverse[at[b] + before] = t - blocks[b].seqStart; }
      at[b] += total;
    }
    step++;
  }
}
`;
}

/**
 * Chunk starts from the offsets: `inverse[chunkStart + i]` = chunks of the lists before i, each
 * list `max(1, ceil(count / chunk))` chunks, `inverse[chunkStart + n]` the total. Bindings: inverse.
 */
export function inverseChunksWgsl(chunk: number): string {
  return `${header(['read_write> inverse: array<u32>'])}
fn chunksOf(i: u32) -> u32 {
  return max(1u, (inverse[i + 1u] - inverse[i] + ${chunk - 1}u) / ${chunk}u);
}

${exclusiveScanWgsl(
  (i) => `chunksOf(${i})`,
  (i) => `inverse[p.chunkStart + ${i}]`,
)}`;
}

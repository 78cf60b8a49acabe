/**
 * The selection inverted: for every (selection block, KV head), the tokens whose selection lists
 * the block, in token order, as a CSR table `[offsets | entries]` (entries are positions within
 * the sequence). Three deterministic kernels without atomics: one workgroup per (block, KV head)
 * counts its tokens, one workgroup turns the counts into offsets, and one workgroup per (block,
 * KV head) writes its tokens. The tensor-core dK/dV kernels read it at uniform addresses, so the
 * loops over a block's tokens are uniform. A fourth kernel cuts each list into chunks of at most
 * `chunk` tokens (at least one chunk per list, empty ones included) and writes where each list's
 * chunks start in the chunk order, after the entries: the tensor-core dK/dV kernels run a
 * workgroup per chunk, so that a block every token selects (the first) is not one workgroup's
 * walk over every token.
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

/** Invocations per workgroup of the count and fill kernels, and of the offsets kernel. */
export const INVERSE_THREADS = 64;
export const OFFSETS_THREADS = 256;

// The workgroup's block, its sequence, and whether token position \`pos\` of it lists the block.
function blockPreamble(): string {
  return `  let w = workgroupIndex(wid, nwg);
  if (w >= p.blocks * p.kvHeads) { return; }
  let g = w % p.kvHeads;
  let s0 = tables[p.blockTable + w / p.kvHeads];
  let sq = sequenceOf(s0);
  let len = i32(sq.length);
  let J = i32(s0 - sq.start) / p.blockSize;
  let first = i32(s0 - sq.start);`;
}

/**
 * `lists(sq, pos, g, J)`: whether token position `pos`'s selection for KV head g lists block J.
 * With slots in fours, four at a time (`selected` bound as vec4<i32>): the count and fill kernels
 * test every token after a block's first for every block, so these reads are most of their time.
 */
function lists(topN: number): string {
  const width = topN % 4 === 0 ? 4 : 1;
  const reads = topN / width;
  return `fn lists(sq: Sequence, pos: i32, g: u32, J: i32) -> bool {
  let row = ((sq.start + u32(pos)) * p.kvHeads + g) * ${reads}u;
  var hit = false;
  for (var slot = 0u; slot < ${reads}u; slot++) { hit = hit || ${width === 4 ? 'any(selected[row + slot] == vec4<i32>(J))' : 'selected[row + slot] == J'}; }
  return hit;
}`;
}

/** The binding of the selection, read by {@link lists}. */
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

/** Tokens per (block, KV head). Bindings: selected, tables, counts. */
export function inverseCountWgsl(topN: number): string {
  return `${header([selectionBinding(topN), 'read> tables: array<u32>', 'read_write> counts: array<u32>'])}
${NSA_SEQUENCE_WGSL}
${lists(topN)}
var<workgroup> partial: array<u32, ${INVERSE_THREADS}>;

@compute @workgroup_size(${INVERSE_THREADS})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
${blockPreamble()}
  var count = 0u;
  for (var pos = first + i32(li); pos < len; pos += ${INVERSE_THREADS}) {
    if (lists(sq, pos, g, J)) { count++; }
  }
  partial[li] = count;
  workgroupBarrier();
  for (var half = ${INVERSE_THREADS / 2}u; half > 0u; half /= 2u) {
    if (li < half) { partial[li] += partial[li + half]; }
    workgroupBarrier();
  }
  if (li == 0u) { counts[w] = partial[0]; }
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

/** Each (block, KV head)'s tokens, in order, after the offsets. Bindings: selected, tables, inverse. */
export function inverseFillWgsl(topN: number): string {
  return `${header([selectionBinding(topN), 'read> tables: array<u32>', 'read_write> inverse: array<u32>'])}
${NSA_SEQUENCE_WGSL}
${lists(topN)}
var<workgroup> flags: array<u32, ${INVERSE_THREADS}>;

@compute @workgroup_size(${INVERSE_THREADS})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
${blockPreamble()}
  let entries = p.blocks * p.kvHeads + 1u;
  var at = entries + inverse[w];
  for (var c0 = first; c0 < len; c0 += ${INVERSE_THREADS}) {
    let pos = c0 + i32(li);
    let hit = pos < len && lists(sq, pos, g, J);
    flags[li] = select(0u, 1u, hit);
    workgroupBarrier();
    var before = 0u;
    for (var j = 0u; j < li; j++) { before += flags[j]; }
    if (hit) { inverse[at + before] = u32(pos); }
    var total = before;
    for (var j = li; j < ${INVERSE_THREADS}u; j++) { total += flags[j]; }
    at += total;
    workgroupBarrier();
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

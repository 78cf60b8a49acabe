/**
 * One decode step of NSA (spec section 11) over an {@link NsaCache}'s keys: the newest token of each
 * sequence attends its prefix. Three kernels, all plain (every tier), f32 arithmetic:
 * - compressed attention, one workgroup per (sequence, query head), over the cached compressed
 *   blocks, which all end at or before the token, writing o and lse;
 * - selection, one workgroup per (sequence, KV head): the group's compressed probabilities spread
 *   over the selection blocks, then the forward's forced blocks and picks (shared WGSL);
 * - selected and window attention and the gated combine, one workgroup per (sequence, query head).
 * Attention walks its keys in chunks of THREADS: each invocation scores one key, one invocation
 * updates the online softmax, and each invocation accumulates its share of the output columns.
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
 * Online softmax attention of query row `qRow` (of q) over keys `first .. last` (inclusive) of
 * `keys`/`values` rows `base + j` (times kvHeads, plus g), into the state named `state`
 * (`${state}Acc` per invocation, `${state}Max`/`${state}Sum` in workgroup memory).
 */
function attendWgsl(
  state: string,
  keys: string,
  values: string,
  base: string,
  first: string,
  last: string,
): string {
  return `  for (var k0 = ${first}; k0 <= ${last}; k0 += i32(THREADS)) {
    let count = min(i32(THREADS), ${last} - k0 + 1);
    var s = ${MASKED};
    if (i32(li) < count) {
      let key = ((${base} + u32(k0) + li) * p.kvHeads + g) * D;
      s = 0.0;
      for (var e = 0u; e < D; e++) { s += qv[e] * f32(${keys}[key + e]); }
      s *= p.scale;
    }
    chunk[li] = s;
    workgroupBarrier();
    if (li == 0u) {
      var m = ${state}Max;
      for (var j = 0; j < count; j++) { m = max(m, chunk[j]); }
      var sum = 0.0;
      for (var j = 0; j < count; j++) {
        let prob = exp(chunk[j] - m);
        chunk[j] = prob;
        sum += prob;
      }
      rescale = exp(${state}Max - m);
      ${state}Sum = ${state}Sum * rescale + sum;
      ${state}Max = m;
    }
    workgroupBarrier();
    for (var c = 0u; c < COLUMNS; c++) {
      let e = li + THREADS * c;
      if (e < DV) {
        var add = 0.0;
        for (var j = 0; j < count; j++) {
          add += chunk[j] * f32(${values}[((${base} + u32(k0 + j)) * p.kvHeads + g) * DV + e]);
        }
        ${state}Acc[c] = ${state}Acc[c] * rescale + add;
      }
    }
    workgroupBarrier();
  }`;
}

const STATE_DECLARATIONS = (states: string[]) =>
  `var<workgroup> chunk: array<f32, ${DECODE_THREADS}>;
var<workgroup> rescale: f32;
${states.map((s) => `var<workgroup> ${s}Max: f32;\nvar<workgroup> ${s}Sum: f32;`).join('\n')}`;

// The (sequence, query head) of the workgroup, its KV head and its query row in registers.
const ROW_PREAMBLE = `  let w = workgroupIndex(wid, nwg);
  if (w >= p.batch * p.heads) { return; }
  let b = w / p.heads;
  let h = w % p.heads;
  let g = h / p.group;
  var qv: array<f32, D>;
  for (var e = 0u; e < D; e++) { qv[e] = f32(q[w * D + e]); }`;

function initState(states: string[]): string {
  return `  if (li == 0u) { ${states.map((s) => `${s}Max = ${MASKED}; ${s}Sum = 0.0;`).join(' ')} }
${states.map((s) => `  var ${s}Acc: array<f32, COLUMNS>;`).join('\n')}
  workgroupBarrier();`;
}

/** Compressed attention. Bindings: q, cmpK, cmpV, lengths, oCmp `[batch, heads, dv]`, lse `[batch, heads]`. */
export function decodeCompressedWgsl(c: DecodeKernelConfig): string {
  return `${header(c, ['read> q: array<DTYPE>', 'read> cmpK: array<DTYPE>', 'read> cmpV: array<DTYPE>', 'read> lengths: array<u32>', 'read_write> oCmp: array<DTYPE>', 'read_write> lse: array<f32>'])}
${STATE_DECLARATIONS(['cmp'])}

@compute @workgroup_size(${DECODE_THREADS})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
${ROW_PREAMBLE}
${initState(['cmp'])}
  let blocks = compressedBlocks(b);
${attendWgsl('cmp', 'cmpK', 'cmpV', 'b * p.cmpCapacity', '0', 'blocks - 1')}
  // No compressed block yet: output 0 (and lse -inf, which selection never reads).
  let inv = select(0.0, 1.0 / cmpSum, cmpSum > 0.0);
  for (var c = 0u; c < COLUMNS; c++) {
    let e = li + THREADS * c;
    if (e < DV) { oCmp[w * DV + e] = ${c.dtype}(cmpAcc[c] * inv); }
  }
  if (li == 0u) { lse[w] = select(-3.0e38, cmpMax + log(cmpSum), cmpSum > 0.0); }
}
`;
}

/**
 * Selection for the newest token of each sequence. Bindings: q, cmpK, lse, lengths, selected
 * (i32 `[batch, kvHeads, topN]`, -1 in unused slots).
 */
export function decodeSelectWgsl(c: DecodeKernelConfig): string {
  const dots = { dtype: c.dtype, group: c.group, dim: c.d };
  return `${header(c, [`read> q: array<${groupDotsElement(dots)}>`, `read> cmpK: array<${groupDotsElement(dots)}>`, 'read> lse: array<f32>', 'read> lengths: array<u32>', 'read_write> selected: array<i32>'])}
var<workgroup> score: array<f32, ${c.maxBlocks}>;
var<workgroup> probability: array<f32, THREADS>;
var<workgroup> bestScore: array<f32, THREADS>;
var<workgroup> bestBlock: array<i32, THREADS>;
var<workgroup> slots: array<i32, TOPN>;

${addOverlapsWgsl(c.geometry)}

${groupDotsWgsl(dots)}

@compute @workgroup_size(${DECODE_THREADS})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let w = workgroupIndex(wid, nwg);
  if (w >= p.batch * p.kvHeads) { return; }
  let t = w / p.kvHeads;
  let g = w % p.kvHeads;
  let own = position(t) / p.blockSize;
  let blocks = compressedBlocks(t);
  for (var J = i32(li); J <= own; J += i32(THREADS)) { score[J] = 0.0; }
  workgroupBarrier();
  for (var c0 = 0; c0 < blocks; c0 += i32(THREADS)) {
    let i = c0 + i32(li);
    var total = 0.0;
    if (i < blocks) {
      let first = t * p.heads + g * p.group;
      let dots = groupDots(first, (t * p.cmpCapacity + u32(i)) * p.kvHeads + g);
      for (var hh = 0u; hh < p.group; hh++) { total += exp(dots[hh] * p.scale - lse[first + hh]); }
    }
    probability[li] = total;
    workgroupBarrier();
    for (var J = i32(li); J <= own; J += i32(THREADS)) { addOverlaps(0u, 0u, J, c0, min(blocks, c0 + i32(THREADS))); }
    workgroupBarrier();
  }
${selectTopNWgsl({ subgroups: false })}
}
`;
}

/**
 * Selected and window attention and the gated combine. Bindings: q, k, v (the cache's tokens),
 * selected, lengths, gate, oCmp, o `[batch, heads, dv]`.
 */
export function decodeAttendWgsl(c: DecodeKernelConfig): string {
  return `${header(c, ['read> q: array<DTYPE>', 'read> k: array<DTYPE>', 'read> v: array<DTYPE>', 'read> selected: array<i32>', 'read> lengths: array<u32>', 'read> gate: array<DTYPE>', 'read> oCmp: array<DTYPE>', 'read_write> o: array<DTYPE>'])}
${STATE_DECLARATIONS(['sel', 'win'])}

${SIGMOID_WGSL}

@compute @workgroup_size(${DECODE_THREADS})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
${ROW_PREAMBLE}
${initState(['sel', 'win'])}
  let pos = position(b);
  let base = b * p.capacity;
  for (var slot = 0u; slot < TOPN; slot++) {
    let J = selected[(b * p.kvHeads + g) * TOPN + slot];
    if (J < 0) { break; }
    let first = J * p.blockSize;
    let last = min(first + p.blockSize - 1, pos);
${attendWgsl('sel', 'k', 'v', 'base', 'first', 'last')}
  }
  let windowFirst = max(0, pos - p.windowSize);
${attendWgsl('win', 'k', 'v', 'base', 'windowFirst', 'pos')}
  let gc = sigmoid(f32(gate[w * 3u]));
  let gs = sigmoid(f32(gate[w * 3u + 1u]));
  let gw = sigmoid(f32(gate[w * 3u + 2u]));
  for (var c = 0u; c < COLUMNS; c++) {
    let e = li + THREADS * c;
    if (e < DV) {
      o[w * DV + e] = ${c.dtype}(gc * f32(oCmp[w * DV + e]) + gs * selAcc[c] / selSum + gw * winAcc[c] / winSum);
    }
  }
}
`;
}

/**
 * Selected-block attention, group-centric (the NSA paper's scheme): one workgroup per (token, KV
 * head) runs all G query heads of the group, which share the token's selected blocks, so every
 * key and value row is read once for the whole group instead of once per head. Per chunk of up to
 * THREADS keys: each invocation scores one key against the G heads; G invocations update their
 * head's running max and sum and turn the scores into probabilities; then each invocation
 * accumulates its share of the output columns for every head, reading each value row once, with
 * coalesced loads. Same outputs as the row kernel: o and the natural-log lse `[tokens, heads]`.
 */
import { type Dtype, enables, paramsStruct, WORKGROUP_INDEX_WGSL } from '@webattn/core';
import { groupDotsElement, groupDotsWgsl } from '../group-dots.wgsl.js';
import { NSA_SEQUENCE_WGSL } from '../layout.js';
import { SELECTED_PARAMS } from './selected.wgsl.js';

/** Generation parameters: storage dtype, head dims, slots per query, query heads per KV head. */
export interface SelectedGroupConfig {
  dtype: Dtype;
  d: number;
  dv: number;
  topN: number;
  group: number;
}

/** Invocations per workgroup, and keys per chunk. */
export const SELECTED_GROUP_THREADS = 64;

/** Workgroup memory of the kernel, in bytes: the chunk's scores per head, and three stats per head. */
export function selectedGroupSharedBytes(c: SelectedGroupConfig): number {
  return c.group * SELECTED_GROUP_THREADS * 4 + c.group * 12;
}

/** WGSL of the group-centric selected-attention forward. */
export function selectedGroupWgsl(c: SelectedGroupConfig): string {
  const columns = Math.ceil(c.dv / SELECTED_GROUP_THREADS);
  const dots = { dtype: c.dtype, group: c.group, dim: c.d, keys: 'k' };
  return `${enables({ f16: c.dtype === 'f16' })}
${paramsStruct(SELECTED_PARAMS)}
@group(0) @binding(0) var<storage, read> q: array<${groupDotsElement(dots)}>;
@group(0) @binding(1) var<storage, read> k: array<${groupDotsElement(dots)}>;
@group(0) @binding(2) var<storage, read> v: array<${c.dtype}>;
@group(0) @binding(3) var<storage, read> selected: array<i32>;
@group(0) @binding(4) var<storage, read> tables: array<u32>;
@group(0) @binding(5) var<storage, read_write> o: array<${c.dtype}>;
@group(0) @binding(6) var<storage, read_write> lse: array<f32>;
@group(0) @binding(7) var<uniform> p: Params;

const DV = ${c.dv}u;
const TOPN = ${c.topN}u;
const GROUP = ${c.group}u;
const THREADS = ${SELECTED_GROUP_THREADS}u;
// Output columns per invocation: column e = li + THREADS · c.
const COLUMNS = ${columns}u;
const MASKED = -3.0e38;

// Scores, then probabilities, of the chunk's keys: [head][key].
var<workgroup> chunk: array<f32, ${c.group * SELECTED_GROUP_THREADS}>;
var<workgroup> runningMax: array<f32, GROUP>;
var<workgroup> runningSum: array<f32, GROUP>;
var<workgroup> rescale: array<f32, GROUP>;

${NSA_SEQUENCE_WGSL}

${WORKGROUP_INDEX_WGSL}

${groupDotsWgsl(dots)}

@compute @workgroup_size(${SELECTED_GROUP_THREADS})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let w = workgroupIndex(wid, nwg);
  if (w >= p.tokens * p.kvHeads) { return; }
  let t = w / p.kvHeads;
  let g = w % p.kvHeads;
  let sq = sequenceOf(t);
  let pos = i32(t - sq.start);
  let firstRow = t * p.heads + g * GROUP;
  for (var h = li; h < GROUP; h += THREADS) { runningMax[h] = MASKED; runningSum[h] = 0.0; }
  var acc: array<f32, ${c.group * columns}>;
  workgroupBarrier();
  for (var slot = 0u; slot < TOPN; slot++) {
    let J = selected[(t * p.kvHeads + g) * TOPN + slot];
    if (J < 0) { break; }
    // The block's keys up to the token itself (its own block is cut at the diagonal).
    let last = min(J * p.blockSize + p.blockSize - 1, pos);
    for (var k0 = J * p.blockSize; k0 <= last; k0 += i32(THREADS)) {
      let count = u32(min(i32(THREADS), last - k0 + 1));
      // One key per invocation, scored against every head of the group.
      var dots: array<f32, GROUP>;
      if (li < count) { dots = groupDots(firstRow, (sq.start + u32(k0) + li) * p.kvHeads + g); }
      for (var h = 0u; h < GROUP; h++) { chunk[h * THREADS + li] = select(MASKED, dots[h] * p.scale, li < count); }
      workgroupBarrier();
      for (var h = li; h < GROUP; h += THREADS) {
        var m = runningMax[h];
        for (var j = 0u; j < count; j++) { m = max(m, chunk[h * THREADS + j]); }
        var sum = 0.0;
        for (var j = 0u; j < count; j++) {
          let prob = exp(chunk[h * THREADS + j] - m);
          chunk[h * THREADS + j] = prob;
          sum += prob;
        }
        let alpha = exp(runningMax[h] - m);
        runningSum[h] = runningSum[h] * alpha + sum;
        runningMax[h] = m;
        rescale[h] = alpha;
      }
      workgroupBarrier();
      for (var h = 0u; h < GROUP; h++) {
        for (var c = 0u; c < COLUMNS; c++) { acc[h * COLUMNS + c] *= rescale[h]; }
      }
      for (var j = 0u; j < count; j++) {
        let row = ((sq.start + u32(k0) + j) * p.kvHeads + g) * DV;
        for (var c = 0u; c < COLUMNS; c++) {
          let e = li + THREADS * c;
          if (e < DV) {
            let value = f32(v[row + e]);
            for (var h = 0u; h < GROUP; h++) { acc[h * COLUMNS + c] += chunk[h * THREADS + j] * value; }
          }
        }
      }
      workgroupBarrier();
    }
  }
  for (var h = 0u; h < GROUP; h++) {
    // Every token selects its own block, so the sum is positive; the guard keeps a corrupt selection finite.
    let inv = select(0.0, 1.0 / runningSum[h], runningSum[h] > 0.0);
    for (var c = 0u; c < COLUMNS; c++) {
      let e = li + THREADS * c;
      if (e < DV) { o[(firstRow + h) * DV + e] = ${c.dtype}(acc[h * COLUMNS + c] * inv); }
    }
  }
  for (var h = li; h < GROUP; h += THREADS) { lse[firstRow + h] = runningMax[h] + log(runningSum[h]); }
}
`;
}

/**
 * Backward of selected-block attention, FlashAttention-2 style from the saved lse, deterministic
 * (no atomics). A small kernel stores `stats = [lse | delta]` with `delta = <dO, o>` per row; the
 * dQ kernel runs one invocation per (token, query head) over the same keys as the forward; the dK
 * and dV kernels run one invocation per (key token, KV head) and gather, over the group's query
 * heads, from the queries at or after the key that selected its block: the inverted selection
 * (select/inverse.ts) lists them, so a key visits only those, not every later token of its
 * sequence. dK and dV are separate kernels so that none binds more than the 8 storage buffers
 * every adapter allows. No gradient flows through the selection itself.
 */
import {
  type Dtype,
  enables,
  paramsStruct,
  ROW_DOT_THREADS,
  rowDotWgsl,
  WORKGROUP_INDEX_WGSL,
} from '@webattn/core';
import { NSA_SEQUENCE_WGSL } from '../layout.js';
import { SELECTED_PARAMS } from './selected.wgsl.js';

/** Generation parameters: storage dtype, head dims, slots per query. */
export interface SelectedBackwardConfig {
  dtype: Dtype;
  d: number;
  dv: number;
  topN: number;
}

/** Invocations per workgroup of every kernel here but the stats kernel. */
export const SELECTED_BACKWARD_WORKGROUP = 64;

/** Uniform parameters of the dK and dV kernels: where the block table and the inverted selection's entries start. */
export const SELECTED_KEYS_PARAMS = [
  ...SELECTED_PARAMS,
  ['blockTable', 'u32'],
  ['blocks', 'u32'],
  ['inverseEntries', 'u32'],
] as const;

// The global index of the selection block holding token j: the last block (of the block table,
// in token order) whose first token is not after j.
const BLOCK_OF_WGSL = `fn blockOf(j: u32) -> u32 {
  var lo = 0u;
  var hi = p.blocks;
  while (hi - lo > 1u) {
    let mid = (lo + hi) / 2u;
    if (tables[p.blockTable + mid] <= j) { lo = mid; } else { hi = mid; }
  }
  return lo;
}`;

type Binding = readonly [
  name: string,
  access: 'read' | 'read_write',
  element: 'dtype' | 'f32' | 'i32' | 'u32',
];

function kernel(
  c: SelectedBackwardConfig,
  bindings: readonly Binding[],
  body: string,
  params: typeof SELECTED_PARAMS | typeof SELECTED_KEYS_PARAMS = SELECTED_PARAMS,
): string {
  const type = (e: Binding[2]) => (e === 'dtype' ? c.dtype : e);
  return `${enables({ f16: c.dtype === 'f16' })}
${paramsStruct(params)}
${bindings.map(([name, access, e], i) => `@group(0) @binding(${i}) var<storage, ${access}> ${name}: array<${type(e)}>;`).join('\n')}
@group(0) @binding(${bindings.length}) var<uniform> p: Params;

const D = ${c.d}u;
const DV = ${c.dv}u;
const TOPN = ${c.topN}u;

${bindings.some(([name]) => name === 'tables') ? NSA_SEQUENCE_WGSL : ''}

${WORKGROUP_INDEX_WGSL}

${params === SELECTED_KEYS_PARAMS ? BLOCK_OF_WGSL : ''}

// Row statistics of query row r: its lse and delta.
fn rowLse(r: u32) -> f32 { return stats[r]; }
fn rowDelta(r: u32) -> f32 { return stats[p.tokens * p.heads + r]; }

@compute @workgroup_size(${SELECTED_BACKWARD_WORKGROUP})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let id = workgroupIndex(wid, nwg) * ${SELECTED_BACKWARD_WORKGROUP}u + li;
${body}
}
`;
}

/** Rows of a workgroup of the stats kernel. */
export const SELECTED_STATS_ROWS = 64;

/**
 * `stats = [lse | delta]`, `delta = <dO, o>` per row, its workgroups' rows staged for bandwidth
 * (core's rowDotWgsl: o and dO are 1 GiB each at the reference config). Bindings: o, dout, lse,
 * stats.
 */
export function selectedStatsWgsl(c: SelectedBackwardConfig): string {
  const dot = rowDotWgsl({
    dtype: c.dtype,
    width: c.dv,
    rows: SELECTED_STATS_ROWS,
    a: 'dout',
    b: 'o',
    step: (sum, a, b) => `${sum} += ${a} * ${b};`,
  });
  return `${enables({ f16: c.dtype === 'f16' })}
${paramsStruct(SELECTED_PARAMS)}
@group(0) @binding(0) var<storage, read> o: array<${dot.element}>;
@group(0) @binding(1) var<storage, read> dout: array<${dot.element}>;
@group(0) @binding(2) var<storage, read> lse: array<f32>;
@group(0) @binding(3) var<storage, read_write> stats: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

${dot.declarations}

${WORKGROUP_INDEX_WGSL}

@compute @workgroup_size(${ROW_DOT_THREADS})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let first = workgroupIndex(wid, nwg) * ROW_DOT_ROWS;
  let rows = p.tokens * p.heads;
${dot.sum(
  (r) => `(first + ${r}) * ${dot.rowUnits}u`,
  (r) => `first + ${r} < rows`,
)}
  let id = first + li;
  if (li < ROW_DOT_ROWS && id < rows) {
    stats[id] = lse[id];
    stats[rows + id] = sum;
  }
}
`;
}

// The keys a query row attends, for a body that uses \`key\` (the K/V row index) and \`j\`.
const eachSelectedKey = (body: string) => `  for (var slot = 0u; slot < TOPN; slot++) {
    let J = selected[(t * p.kvHeads + g) * TOPN + slot];
    if (J < 0) { break; }
    let last = min(J * p.blockSize + p.blockSize - 1, pos);
    for (var j = J * p.blockSize; j <= last; j++) {
      let key = (sq.start + u32(j)) * p.kvHeads + g;
${body}
    }
  }`;

/** dQ, one invocation per (token, query head). Bindings: q, k, v, selected, tables, dout, stats, dq. */
export function selectedDqWgsl(c: SelectedBackwardConfig): string {
  return kernel(
    c,
    [
      ['q', 'read', 'dtype'],
      ['k', 'read', 'dtype'],
      ['v', 'read', 'dtype'],
      ['selected', 'read', 'i32'],
      ['tables', 'read', 'u32'],
      ['dout', 'read', 'dtype'],
      ['stats', 'read', 'f32'],
      ['dq', 'read_write', 'dtype'],
    ],
    `  if (id >= p.tokens * p.heads) { return; }
  let t = id / p.heads;
  let g = (id % p.heads) / p.group;
  let sq = sequenceOf(t);
  let pos = i32(t - sq.start);
  var qv: array<f32, D>;
  for (var e = 0u; e < D; e++) { qv[e] = f32(q[id * D + e]); }
  var dov: array<f32, DV>;
  for (var e = 0u; e < DV; e++) { dov[e] = f32(dout[id * DV + e]); }
  let lse = rowLse(id);
  let delta = rowDelta(id);
  var acc: array<f32, D>;
${eachSelectedKey(`      var s = 0.0;
      for (var e = 0u; e < D; e++) { s += qv[e] * f32(k[key * D + e]); }
      var dp = 0.0;
      for (var e = 0u; e < DV; e++) { dp += dov[e] * f32(v[key * DV + e]); }
      let ds = exp(s * p.scale - lse) * (dp - delta);
      for (var e = 0u; e < D; e++) { acc[e] += ds * f32(k[key * D + e]); }`)}
  for (var e = 0u; e < D; e++) { dq[id * D + e] = ${c.dtype}(acc[e] * p.scale); }`,
  );
}

// For one (key token, KV head): every query row at or after the key that selected the key's block
// (the inverted selection lists them in token order), for a body that uses \`row\` and the
// probability \`prob\`.
const eachSelectingRow = (body: string) => `  if (id >= p.tokens * p.kvHeads) { return; }
  let j = id / p.kvHeads;
  let g = id % p.kvHeads;
  let sq = sequenceOf(j);
  let slot = blockOf(j) * p.kvHeads + g;
  var kv: array<f32, D>;
  for (var e = 0u; e < D; e++) { kv[e] = f32(k[id * D + e]); }
  for (var m = inverse[slot]; m < inverse[slot + 1u]; m++) {
    let t = sq.start + inverse[p.inverseEntries + m];
    if (t < j) { continue; }
    for (var hh = 0u; hh < p.group; hh++) {
      let row = t * p.heads + g * p.group + hh;
      var s = 0.0;
      for (var e = 0u; e < D; e++) { s += f32(q[row * D + e]) * kv[e]; }
      let prob = exp(s * p.scale - rowLse(row));
${body}
    }
  }`;

/** dK, one invocation per (key token, KV head). Bindings: q, k, v, inverse, tables, dout, stats, dk. */
export function selectedDkWgsl(c: SelectedBackwardConfig): string {
  return kernel(
    c,
    [
      ['q', 'read', 'dtype'],
      ['k', 'read', 'dtype'],
      ['v', 'read', 'dtype'],
      ['inverse', 'read', 'u32'],
      ['tables', 'read', 'u32'],
      ['dout', 'read', 'dtype'],
      ['stats', 'read', 'f32'],
      ['dk', 'read_write', 'dtype'],
    ],
    `  var vv: array<f32, DV>;
  for (var e = 0u; e < DV; e++) { vv[e] = f32(v[id * DV + e]); }
  var acc: array<f32, D>;
${eachSelectingRow(`      var dp = 0.0;
      for (var e = 0u; e < DV; e++) { dp += f32(dout[row * DV + e]) * vv[e]; }
      let ds = prob * (dp - rowDelta(row));
      for (var e = 0u; e < D; e++) { acc[e] += ds * f32(q[row * D + e]); }`)}
  for (var e = 0u; e < D; e++) { dk[id * D + e] = ${c.dtype}(acc[e] * p.scale); }`,
    SELECTED_KEYS_PARAMS,
  );
}

/** dV, one invocation per (key token, KV head). Bindings: q, k, inverse, tables, dout, stats, dv. */
export function selectedDvWgsl(c: SelectedBackwardConfig): string {
  return kernel(
    c,
    [
      ['q', 'read', 'dtype'],
      ['k', 'read', 'dtype'],
      ['inverse', 'read', 'u32'],
      ['tables', 'read', 'u32'],
      ['dout', 'read', 'dtype'],
      ['stats', 'read', 'f32'],
      ['dv', 'read_write', 'dtype'],
    ],
    `  var acc: array<f32, DV>;
${eachSelectingRow(`      for (var e = 0u; e < DV; e++) { acc[e] += prob * f32(dout[row * DV + e]); }`)}
  for (var e = 0u; e < DV; e++) { dv[id * DV + e] = ${c.dtype}(acc[e]); }`,
    SELECTED_KEYS_PARAMS,
  );
}

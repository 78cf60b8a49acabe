/**
 * One recurrent decode step of lightning attention: `S ← λ_h S + kᵀ v`, `o = scale · q S` for one
 * token of each sequence. One invocation per (sequence, query head, value column): it walks the
 * column of the state, updating it and accumulating the output, so state reads and writes are
 * coalesced across the column index and nothing is reduced across invocations.
 */
import { type Dtype, enables, paramsStruct, WORKGROUP_INDEX_WGSL } from '@webattn/core';
import { CHECK_F16_WGSL, storeWgsl } from '../lightning/common.wgsl.js';

/** Uniform parameters of the decode kernel. */
export const DECODE_PARAMS = [
  ['batch', 'u32'],
  ['hq', 'u32'],
  ['hkv', 'u32'],
  ['group', 'u32'],
  ['dk', 'u32'],
  ['dv', 'u32'],
  ['scale', 'f32'],
] as const;

/** Invocations per workgroup. */
export const DECODE_WORKGROUP = 64;

/** Generation parameters of the decode kernel. */
export interface DecodeConfig {
  /** Storage dtype of q, k, v and o (the state is f32). */
  dtype: Dtype;
  /** Update the state in place (one read-write binding) rather than into a new tensor. */
  inPlace: boolean;
  /** Flag f16 outputs that overflow (binding `overflow`). */
  checkFinite: boolean;
}

/** WGSL of the decode step. */
export function lightningDecodeWgsl(c: DecodeConfig): string {
  const T = c.dtype;
  let b = 5;
  const stateOut = c.inPlace
    ? ''
    : `@group(0) @binding(${b++}) var<storage, read_write> stateOut: array<f32>;`;
  const overflow = c.checkFinite
    ? `@group(0) @binding(${b++}) var<storage, read_write> overflow: array<atomic<u32>>;`
    : '';
  return `${enables({ f16: T === 'f16' })}
${paramsStruct(DECODE_PARAMS)}
@group(0) @binding(0) var<storage, read> q: array<${T}>;
@group(0) @binding(1) var<storage, read> k: array<${T}>;
@group(0) @binding(2) var<storage, read> v: array<${T}>;
@group(0) @binding(3) var<storage, read> decays: array<f32>;
@group(0) @binding(4) var<storage, ${c.inPlace ? 'read_write' : 'read'}> state: array<f32>;
${stateOut}
${overflow}
@group(0) @binding(${b++}) var<storage, read_write> o: array<${T}>;
@group(0) @binding(${b}) var<uniform> p: Params;

${WORKGROUP_INDEX_WGSL}
${c.checkFinite ? CHECK_F16_WGSL : ''}

@compute @workgroup_size(${DECODE_WORKGROUP})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let id = workgroupIndex(wid, nwg) * ${DECODE_WORKGROUP}u + li;
  if (id >= p.batch * p.hq * p.dv) { return; }
  let col = id % p.dv;
  let bh = id / p.dv;
  let h = bh % p.hq;
  let bi = bh / p.hq;
  let kvh = h / p.group;
  let lam = decays[h];
  let vc = f32(v[(bi * p.hkv + kvh) * p.dv + col]);
  let kBase = (bi * p.hkv + kvh) * p.dk;
  let qBase = bh * p.dk;
  var acc = 0.0;
  for (var a = 0u; a < p.dk; a++) {
    let at = (bh * p.dk + a) * p.dv + col;
    let s = lam * state[at] + f32(k[kBase + a]) * vc;
    ${c.inPlace ? 'state[at] = s;' : 'stateOut[at] = s;'}
    acc += f32(q[qBase + a]) * s;
  }
  let value = p.scale * acc;
  ${storeWgsl('o[id]', 'value', T, c.checkFinite)}
}
`;
}

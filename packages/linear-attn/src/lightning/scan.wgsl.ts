/**
 * Kernel 2 of the chunkwise lightning attention: the scan over each sequence's chunks, one
 * invocation per (sequence, query head, state entry). Forward: `S` starts at the initial state
 * (or 0), and for each chunk in order the chunk's own state `L_c` (kernel 1) is replaced by the
 * state entering the chunk, then `S ← λ^len S + L_c`; the `S` left is the final state. Backward,
 * in reverse chunk order from dFinalState: the gradient of the state leaving each chunk replaces its
 * local term, and the `G` left is the initial state's gradient.
 */
import { enables, paramsStruct, WORKGROUP_INDEX_WGSL } from '@webattn/core';
import { DECAY_OF_WGSL, DECAY_POW_WGSL, stateAccessWgsl } from './common.wgsl.js';

/** Uniform parameters of the scan kernel. */
export const SCAN_PARAMS = [
  ['sequences', 'u32'],
  ['hq', 'u32'],
  ['stateSize', 'u32'],
  ['chunkTable', 'u32'],
  ['statesSplit', 'u32'],
  ['decayTable', 'u32'],
] as const;

/** Invocations per workgroup of the scan. */
export const SCAN_WORKGROUP = 128;

/** Generation parameters of the scan kernel. */
export interface ScanConfig {
  /** Reverse chunk order (the backward). */
  reverse: boolean;
  /** Whether a starting state is bound (initial state, or dFinalState in reverse). */
  hasStart: boolean;
  /** Whether the state left at the end is written (final state, or dInitialState in reverse). */
  writeEnd: boolean;
  /** Whether the states span two bindings (see {@link stateAccessWgsl}). */
  splitStates: boolean;
}

/** WGSL of the scan kernel. */
export function scanWgsl(c: ScanConfig): string {
  let binding = 2;
  const start = c.hasStart
    ? `@group(0) @binding(${binding++}) var<storage, read> startState: array<f32>;`
    : '';
  const end = c.writeEnd
    ? `@group(0) @binding(${binding++}) var<storage, read_write> endState: array<f32>;`
    : '';
  const high = c.splitStates ? binding++ : -1;
  return `${enables({})}
${paramsStruct(SCAN_PARAMS)}
@group(0) @binding(0) var<storage, read_write> states: array<f32>;
@group(0) @binding(1) var<storage, read> table: array<u32>;
${start}
${end}
@group(0) @binding(${binding}) var<uniform> p: Params;

${stateAccessWgsl(c.splitStates, true, high)}
${WORKGROUP_INDEX_WGSL}
${DECAY_POW_WGSL}
${DECAY_OF_WGSL}

@compute @workgroup_size(${SCAN_WORKGROUP})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let id = workgroupIndex(wid, nwg) * ${SCAN_WORKGROUP}u + li;
  if (id >= p.sequences * p.hq * p.stateSize) { return; }
  let e = id % p.stateSize;
  let sh = id / p.stateSize;
  let h = sh % p.hq;
  let s = sh / p.hq;
  let first = table[2u * s];
  let count = table[2u * s + 1u];
  let lam = decayOf(h);
  var S = ${c.hasStart ? 'startState[id]' : '0.0'};
  for (var i = 0u; i < count; i++) {
    let chunk = ${c.reverse ? 'first + count - 1u - i' : 'first + i'};
    let len = table[p.chunkTable + 2u * chunk + 1u];
    let at = (chunk * p.hq + h) * p.stateSize + e;
    let local = loadState(at);
    storeState(at, S);
    S = decayPow(lam, len) * S + local;
  }
  ${c.writeEnd ? 'endState[id] = S;' : ''}
}
`;
}

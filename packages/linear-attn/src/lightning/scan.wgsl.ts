/**
 * Kernel 2 of the chunkwise lightning attention: the scan over each sequence's chunks, one
 * invocation per (sequence, query head, `width` state entries). Forward: `S` starts at the initial state
 * (or 0), and for each chunk in order the chunk's own state `L_c` (kernel 1) is replaced by the
 * state entering the chunk, then `S ← λ^len S + L_c`; the `S` left is the final state. Backward,
 * in reverse chunk order from dFinalState: the gradient of the state leaving each chunk replaces its
 * local term, and the `G` left is the initial state's gradient.
 *
 * The scan only streams the states (read once, written once), but each invocation walks its chunks
 * one after another: with one load per step it waits out the memory latency every step (on the
 * H200, 20 ms for 2 GiB of states, a tenth of the bandwidth). Each invocation therefore moves four
 * entries per load (vec4) and issues the loads of `AHEAD` chunks before it uses the first.
 */
import { enables, paramsStruct, WORKGROUP_INDEX_WGSL } from '@webattn/core';
import { DECAY_OF_WGSL, DECAY_POW_WGSL } from './common.wgsl.js';

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

/** Chunks whose loads an invocation issues before it consumes the first of them. */
const AHEAD = 4;

/** Generation parameters of the scan kernel. */
export interface ScanConfig {
  /** Reverse chunk order (the backward). */
  reverse: boolean;
  /** Whether a starting state is bound (initial state, or dFinalState in reverse). */
  hasStart: boolean;
  /** Whether the state left at the end is written (final state, or dInitialState in reverse). */
  writeEnd: boolean;
  /** Whether the states span two bindings (`statesHigh`: see `stateAccessWgsl` in this file). */
  splitStates: boolean;
  /** Entries per invocation: 4 (vec4 bindings) when dk · dv is a multiple of 4, else 1. */
  width: 1 | 4;
}

/** Entries each scan invocation handles for a state of `entries` (dk · dv) values. */
export function scanWidth(entries: number): 1 | 4 {
  return entries % 4 === 0 ? 4 : 1;
}

/**
 * `loadState(at)` and `storeState(at, x)` over the per-chunk f32 states, which may span two
 * bindings: at 65,536 tokens, 32 heads of 128 x 128 and 64-token chunks they take 2 GiB, one word
 * more than the largest binding a device may offer (maxStorageBufferBindingSize <= 2^31 - 4). When
 * `split`, the entries from `p.statesSplit` on (a chunk boundary) live in `statesHigh`, bound at
 * `highBinding`. Only the scan, which walks every chunk, binds both parts: the chunk-parallel
 * kernels run once per part instead (a branch per load cost them 30 % on the H200). With `width` 4
 * the bindings are `array<vec4<f32>>` and `at` counts vec4s.
 */
function stateAccessWgsl(split: boolean, highBinding: number, width: 1 | 4): string {
  const type = width === 4 ? 'vec4<f32>' : 'f32';
  if (!split) {
    return `fn loadState(at: u32) -> ${type} { return states[at]; }
fn storeState(at: u32, x: ${type}) { states[at] = x; }`;
  }
  const boundary = width === 4 ? 'p.statesSplit / 4u' : 'p.statesSplit';
  return `@group(0) @binding(${highBinding}) var<storage, read_write> statesHigh: array<${type}>;
fn loadState(at: u32) -> ${type} {
  let boundary = ${boundary};
  if (at < boundary) { return states[at]; }
  return statesHigh[at - boundary];
}
fn storeState(at: u32, x: ${type}) {
  let boundary = ${boundary};
  if (at < boundary) { states[at] = x; } else { statesHigh[at - boundary] = x; }
}`;
}

/** WGSL of the scan kernel. */
export function scanWgsl(c: ScanConfig): string {
  const type = c.width === 4 ? 'vec4<f32>' : 'f32';
  let binding = 2;
  const start = c.hasStart
    ? `@group(0) @binding(${binding++}) var<storage, read> startState: array<${type}>;`
    : '';
  const end = c.writeEnd
    ? `@group(0) @binding(${binding++}) var<storage, read_write> endState: array<${type}>;`
    : '';
  const high = c.splitStates ? binding++ : -1;
  const ahead = Array.from({ length: AHEAD }, (_, k) => k);
  // The chunk of step i0 + k: in order, or from the last chunk back in reverse.
  const chunkOf = (k: number) => (c.reverse ? `first + count - 1u - (i0 + ${k}u)` : `first + i0 + ${k}u`);
  return `${enables({})}
${paramsStruct(SCAN_PARAMS)}
@group(0) @binding(0) var<storage, read_write> states: array<${type}>;
@group(0) @binding(1) var<storage, read> table: array<u32>;
${start}
${end}
@group(0) @binding(${binding}) var<uniform> p: Params;

${stateAccessWgsl(c.splitStates, high, c.width)}
${WORKGROUP_INDEX_WGSL}
${DECAY_POW_WGSL}
${DECAY_OF_WGSL}

@compute @workgroup_size(${SCAN_WORKGROUP})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let id = workgroupIndex(wid, nwg) * ${SCAN_WORKGROUP}u + li;
  let vectors = p.stateSize / ${c.width}u;
  if (id >= p.sequences * p.hq * vectors) { return; }
  let e = id % vectors;
  let sh = id / vectors;
  let h = sh % p.hq;
  let s = sh / p.hq;
  let first = table[2u * s];
  let count = table[2u * s + 1u];
  let lam = decayOf(h);
  var S = ${c.hasStart ? 'startState[id]' : `${type}(0.0)`};
  for (var i0 = 0u; i0 < count; i0 += ${AHEAD}u) {
    // The loads of up to ${AHEAD} chunks first, then their updates.
    ${ahead
      .map(
        (k) => `var at${k} = 0u;
    var local${k} = ${type}(0.0);
    if (i0 + ${k}u < count) {
      let chunk = ${chunkOf(k)};
      at${k} = (chunk * p.hq + h) * vectors + e;
      local${k} = loadState(at${k});
    }`,
      )
      .join('\n    ')}
    ${ahead
      .map(
        (k) => `if (i0 + ${k}u < count) {
      let chunk = ${chunkOf(k)};
      storeState(at${k}, S);
      S = decayPow(lam, table[p.chunkTable + 2u * chunk + 1u]) * S + local${k};
    }`,
      )
      .join('\n    ')}
  }
  ${c.writeEnd ? 'endState[id] = S;' : ''}
}
`;
}

/**
 * Kernels 1 and 2 of the chunkwise lightning attention in one, on tensor cores: each workgroup owns
 * a 64 x 64 tile of one (sequence, head)'s state and walks the sequence's chunks in order (reverse
 * order for the backward), keeping the running state in its f32 accumulator fragments. Per chunk it
 * writes the state entering the chunk (the backward: the gradient of the state leaving it) to
 * `states`, then updates `S ← λ^len · S + coef · Σ_j λ^(e_j) u_jᵀ w_j` with one scalar multiply and
 * the chunk's multiply-accumulates. Where kernels 1 and 2 write every chunk's own term, read it back
 * and write the scanned state, this writes each state once.
 *
 * The walk is sequential, so the next chunk's u and w (vec4<f16> loads, 16 per invocation) are read
 * into registers while the tensor cores work on the current one: the memory latency overlaps the
 * multiplies instead of adding to every step. Needs dk and dv multiples of 64 (whole tiles: the
 * fragments are stored straight to `states`) and chunks of at most 64 tokens.
 */
import {
  enables,
  paramsStruct,
  storeVec4Wgsl,
  subgroupMainWgsl,
  subgroupMatrixTypes,
  WORKGROUP_INDEX_WGSL,
} from '@webattn/core';
import { STATE_OPERAND_PARAMS } from './chunk-state.wgsl.js';
import { CHECK_F16_WGSL, DECAY_OF_WGSL, DECAY_POW_WGSL, halfWgsl } from './common.wgsl.js';

/** Uniform parameters of the state pass. */
export const STATE_PASS_PARAMS = [
  ['sequences', 'u32'],
  ...STATE_OPERAND_PARAMS,
  ['statesSplit', 'u32'],
  ['decayTable', 'u32'],
] as const;

/** State entries per tile side. */
export const STATE_PASS_TILE = 64;

/** Generation parameters of the state pass. */
export interface StatePassConfig {
  /** Tokens per chunk: 32 or 64. */
  chunkSize: number;
  /** Backward (u = q, w = dO, `e_j = j + 1`, chunks in reverse) rather than forward (`e_j = len - 1 - j`). */
  backward: boolean;
  /** Flag weighted u values past f16's range (binding `overflow`). */
  checkFinite: boolean;
  /** Whether a starting state is bound (initial state, or dFinalState in the backward). */
  hasStart: boolean;
  /** Whether the state left at the end is written (final state, or dInitialState). */
  writeEnd: boolean;
  /** Whether the states span two bindings (entries from `p.statesSplit` on in `statesHigh`). */
  splitStates: boolean;
  /** Subgroup size the kernel is built for. */
  subgroupSize: number;
  /** Pin it with `@subgroup_size`. */
  pinSubgroupSize: boolean;
}

/** Row stride of the staged u and w, in f16: 64 entries and 16 bytes of padding. */
const SS = 72;

/** Workgroup memory of the state pass, in bytes. */
export function statePassSharedBytes(chunkSize: number): number {
  return 2 * chunkSize * SS * 2;
}

/** Why a call cannot use the state pass, or undefined when it can. */
export function statePassUnsupported(dk: number, dv: number, chunkSize: number): string | undefined {
  if (dk % STATE_PASS_TILE !== 0 || dv % STATE_PASS_TILE !== 0)
    return `dk = ${dk}, dv = ${dv}: not multiples of 64`;
  if (chunkSize !== 32 && chunkSize !== 64)
    return `chunk ${chunkSize}: the pass holds at most 64 tokens in registers`;
  return undefined;
}

/** WGSL of the state pass (f16 u and w, f32 states). */
export function statePassMatrixWgsl(c: StatePassConfig): string {
  const C = c.chunkSize;
  const threads = 4 * c.subgroupSize;
  // vec4s of one matrix per chunk: C tokens x 16 vec4 columns; each invocation holds `perThread`.
  const vectors = C * 16;
  if (vectors % threads !== 0)
    throw new Error(`statePassMatrixWgsl: ${threads} invocations do not divide ${vectors}`);
  const perThread = vectors / threads;
  const slots = Array.from({ length: perThread }, (_, k) => k);
  const exponent = c.backward ? 'j + 1u' : 'len - 1u - j';
  const { left: L, right: R, result: A } = subgroupMatrixTypes({ M: 16, N: 16, K: 16 });
  const frag = [0, 1, 2, 3];
  let binding = 4;
  const start = c.hasStart
    ? `@group(0) @binding(${binding++}) var<storage, read> startState: array<f32>;`
    : '';
  const end = c.writeEnd
    ? `@group(0) @binding(${binding++}) var<storage, read_write> endState: array<f32>;`
    : '';
  const overflow = c.checkFinite
    ? `@group(0) @binding(${binding++}) var<storage, read_write> overflow: array<atomic<u32>>;`
    : '';
  const high = c.splitStates
    ? `@group(0) @binding(${binding++}) var<storage, read_write> statesHigh: array<f32>;`
    : '';
  const chunkAt = (i: string) => (c.backward ? `(first + count - 1u - (${i}))` : `(first + ${i})`);
  // Registers of the next chunk: token j = e / 16, vec4 column e % 16 of this tile's 64 columns.
  const prefetch = (chunk: string) => `{
      let cs = table[p.chunkTable + 2u * ${chunk}];
      let cl = table[p.chunkTable + 2u * ${chunk} + 1u];
      ${slots
        .map(
          (k) => `{
        let e = li + ${k * threads}u;
        let j = e / 16u;
        pu${k} = vec4<f16>();
        pw${k} = vec4<f16>();
        if (j < cl) {
          let tok = cs + j;
          pu${k} = u[(tok * p.heads + head) * (p.dk / 4u) + at * 16u + e % 16u];
          pw${k} = w[(tok * p.heads + head) * (p.dv / 4u) + bt * 16u + e % 16u];
        }
      }`,
        )
        .join('\n      ')}
    }`;
  const stateStore = (target: string, offset: string) =>
    frag
      .map((f) => `subgroupMatrixStore<row_major>(&${target}, ${offset} + ${f * 16}u, acc${f}, p.dv);`)
      .join('\n      ');
  return `${enables({ subgroupMatrix: true, subgroupSizeControl: c.pinSubgroupSize })}
${paramsStruct(STATE_PASS_PARAMS)}
@group(0) @binding(0) var<storage, read> u: array<vec4<f16>>;
@group(0) @binding(1) var<storage, read> w: array<vec4<f16>>;
@group(0) @binding(2) var<storage, read> table: array<u32>;
@group(0) @binding(3) var<storage, read_write> states: array<f32>;
${start}
${end}
${overflow}
${high}
@group(0) @binding(${binding}) var<uniform> p: Params;

const SS = ${SS}u;
var<workgroup> us: array<f16, ${C * SS}>;
var<workgroup> ws: array<f16, ${C * SS}>;

${WORKGROUP_INDEX_WGSL}
${DECAY_POW_WGSL}
${DECAY_OF_WGSL}
${c.checkFinite ? CHECK_F16_WGSL : ''}
${halfWgsl(c.checkFinite)}

${subgroupMainWgsl(threads, c)}
  let wg = workgroupIndex(wid, nwg);
  if (wg >= p.sequences * p.hq * p.aTiles * p.bTiles) { return; }
  let bt = wg % p.bTiles;
  var r = wg / p.bTiles;
  let at = r % p.aTiles;
  r = r / p.aTiles;
  let h = r % p.hq;
  let s = r / p.hq;
  let first = table[2u * s];
  let count = table[2u * s + 1u];
  let lam = decayOf(h);
  let head = h / p.headDiv;
  let stateSize = p.dk * p.dv;
  // This subgroup's 16 rows of the tile, within one head's state.
  let tile = (at * 64u + sg * 16u) * p.dv + bt * 64u;
  ${frag
    .map((f) =>
      c.hasStart
        ? `var acc${f} = subgroupMatrixLoad<${A}, row_major>(&startState, (s * p.hq + h) * stateSize + tile + ${f * 16}u, p.dv);`
        : `var acc${f} = ${A}();`,
    )
    .join('\n  ')}
  ${slots.map((k) => `var pu${k} = vec4<f16>();\n  var pw${k} = vec4<f16>();`).join('\n  ')}
  if (count > 0u) ${prefetch(chunkAt('0u'))}
  for (var i = 0u; i < count; i++) {
    let chunk = ${chunkAt('i')};
    let len = table[p.chunkTable + 2u * chunk + 1u];
    // The registers (this chunk's u and w) into workgroup memory, u weighted by coef · λ^(e_j).
    workgroupBarrier();
    ${slots
      .map(
        (k) => `{
      let e = li + ${k * threads}u;
      let j = e / 16u;
      let weight = p.coef * decayPow(lam, ${exponent});
      let at4 = j * SS + (e % 16u) * 4u;
      let uv = vec4<f32>(pu${k}) * weight;
      us[at4] = half(uv.x);
      us[at4 + 1u] = half(uv.y);
      us[at4 + 2u] = half(uv.z);
      us[at4 + 3u] = half(uv.w);
      ${storeVec4Wgsl('ws', 'at4', `pw${k}`)}
    }`,
      )
      .join('\n    ')}
    workgroupBarrier();
    // The next chunk's loads, in flight while the tensor cores work on this one.
    if (i + 1u < count) ${prefetch(chunkAt('i + 1u'))}
    // The state entering this chunk (the backward: the gradient of the state leaving it).
    let offset = (chunk * p.hq + h) * stateSize + tile;
    ${
      c.splitStates
        ? `if (offset < p.statesSplit) {
      ${stateStore('states', 'offset')}
    } else {
      ${stateStore('statesHigh', 'offset - p.statesSplit')}
    }`
        : stateStore('states', 'offset')
    }
    // S ← λ^len · S + this chunk's term (rows past len were staged as zeros).
    let decay = decayPow(lam, len);
    ${frag.map((f) => `acc${f} = subgroupMatrixScalarMultiply(acc${f}, decay);`).join('\n    ')}
    for (var kk = 0u; kk < ${C}u; kk += 16u) {
      let ul = subgroupMatrixLoad<${L}, col_major>(&us, kk * SS + sg * 16u, SS);
      ${frag.map((f) => `acc${f} = subgroupMatrixMultiplyAccumulate(ul, subgroupMatrixLoad<${R}, row_major>(&ws, kk * SS + ${f * 16}u, SS), acc${f});`).join('\n      ')}
    }
  }
  ${c.writeEnd ? stateStore('endState', '(s * p.hq + h) * stateSize + tile') : ''}
}
`;
}

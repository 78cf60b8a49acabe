/**
 * Kernel 1 of the chunkwise lightning attention: every chunk's own contribution to the state,
 * `L_c = coef · Σ_j λ^(e_j) u_jᵀ w_j` (`[dk, dv]` per query head, f32). The forward uses u = k,
 * w = v, `e_j = len - 1 - j` (the decay from token j to the chunk's end); the backward uses u = q,
 * w = dO, `coef = scale`, `e_j = j + 1` (the decay from the state entering the chunk to token j).
 * One workgroup per (chunk, query head, 32 x 32 tile of the state); 16-token slices of u and w are
 * staged in workgroup memory and each invocation accumulates 2 x 2 entries.
 */
import { type Dtype, enables, paramsStruct, WORKGROUP_INDEX_WGSL } from '@webattn/core';
import { DECAY_OF_WGSL, DECAY_POW_WGSL } from './common.wgsl.js';

/**
 * Uniform parameters every kernel that sums chunk states has (the chunk-state kernels and the fused
 * state pass): the operands' heads and dims, the chunk table, the state's tiles and the product's
 * coefficient. Each kernel's own parameters follow them, the decay table's offset last;
 * `stateOperandValues` in kernels.ts fills them.
 */
export const STATE_OPERAND_PARAMS = [
  ['hq', 'u32'],
  ['dk', 'u32'],
  ['dv', 'u32'],
  ['heads', 'u32'],
  ['headDiv', 'u32'],
  ['chunkTable', 'u32'],
  ['aTiles', 'u32'],
  ['bTiles', 'u32'],
  ['coef', 'f32'],
] as const;

/** Uniform parameters of the chunk-state kernel. */
export const CHUNK_STATE_PARAMS = [
  // Chunks of this launch, from chunkBase on; the bound states hold exactly theirs.
  ['chunks', 'u32'],
  ...STATE_OPERAND_PARAMS,
  ['chunkBase', 'u32'],
  ['decayTable', 'u32'],
] as const;

/** State entries per tile side. */
export const STATE_TILE = 32;

/**
 * The start of both chunk-state kernels' entry points (scalar and tensor-core): the workgroup's
 * tile of the state (`at`, `bt`), query head `h` and its decay `lam`, chunk and its `start` and
 * `len`, and `head`, the head the inputs are read from.
 */
export const CHUNK_STATE_WORKGROUP_WGSL = `  let wg = workgroupIndex(wid, nwg);
  if (wg >= p.chunks * p.hq * p.aTiles * p.bTiles) { return; }
  let bt = wg % p.bTiles;
  var r = wg / p.bTiles;
  let at = r % p.aTiles;
  r = r / p.aTiles;
  let h = r % p.hq;
  let chunk = p.chunkBase + r / p.hq;
  let start = table[p.chunkTable + 2u * chunk];
  let len = table[p.chunkTable + 2u * chunk + 1u];
  let lam = decayOf(h);
  let head = h / p.headDiv;`;

/** Generation parameters of the chunk-state kernel. */
export interface ChunkStateConfig {
  /** Storage dtype of u and w. */
  dtype: Dtype;
  /** Tokens per chunk. */
  chunkSize: number;
  /** Backward (u = q, w = dO, `e_j = j + 1`) rather than forward (`e_j = len - 1 - j`). */
  backward: boolean;
}

/** WGSL of the chunk-state kernel. */
export function chunkStateWgsl(c: ChunkStateConfig): string {
  const exponent = c.backward ? 'j + 1u' : 'len - 1u - j';
  return `${enables({ f16: c.dtype === 'f16' })}
${paramsStruct(CHUNK_STATE_PARAMS)}
@group(0) @binding(0) var<storage, read> u: array<${c.dtype}>;
@group(0) @binding(1) var<storage, read> w: array<${c.dtype}>;
@group(0) @binding(2) var<storage, read> table: array<u32>;
@group(0) @binding(3) var<storage, read_write> states: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

var<workgroup> us: array<f32, 512>;
var<workgroup> ws: array<f32, 512>;

${WORKGROUP_INDEX_WGSL}
${DECAY_POW_WGSL}
${DECAY_OF_WGSL}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
${CHUNK_STATE_WORKGROUP_WGSL}
  let tx = li % 16u;
  let ty = li / 16u;
  var acc = array<f32, 4>(0.0, 0.0, 0.0, 0.0);
  for (var j0 = 0u; j0 < ${c.chunkSize}u; j0 += 16u) {
    for (var e = li; e < 512u; e += 256u) {
      let j = j0 + e / 32u;
      let a = at * 32u + e % 32u;
      let b = bt * 32u + e % 32u;
      var uv = 0.0;
      var wv = 0.0;
      if (j < len) {
        let tok = start + j;
        if (a < p.dk) { uv = p.coef * decayPow(lam, ${exponent}) * f32(u[(tok * p.heads + head) * p.dk + a]); }
        if (b < p.dv) { wv = f32(w[(tok * p.heads + head) * p.dv + b]); }
      }
      us[e] = uv;
      ws[e] = wv;
    }
    workgroupBarrier();
    for (var jj = 0u; jj < 16u; jj++) {
      let u0 = us[jj * 32u + ty * 2u];
      let u1 = us[jj * 32u + ty * 2u + 1u];
      let w0 = ws[jj * 32u + tx * 2u];
      let w1 = ws[jj * 32u + tx * 2u + 1u];
      acc[0] += u0 * w0;
      acc[1] += u0 * w1;
      acc[2] += u1 * w0;
      acc[3] += u1 * w1;
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < 4u; i++) {
    let a = at * 32u + ty * 2u + i / 2u;
    let b = bt * 32u + tx * 2u + i % 2u;
    if (a < p.dk && b < p.dv) { states[(((chunk - p.chunkBase) * p.hq + h) * p.dk + a) * p.dv + b] = acc[i]; }
  }
}
`;
}

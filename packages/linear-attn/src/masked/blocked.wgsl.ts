/**
 * The blocked (FlashAttention-style) masked linear attention. One kernel computes all four of
 *
 *     out_i = Σ_{h ∈ heads(out)} Σ_j scale (x_i · y_j) M'_ij z_j
 *
 * with a workgroup per tile of output rows that walks the other side in tiles of `TILE_K`, so no
 * more than `rows x TILE_K` scores exist at a time:
 * - forward: x = q, y = k, z = v, M' = M (out = o, one query head);
 * - dq: x = dO, y = v, z = k, M' = M;
 * - dv: x = k, y = q, z = dO, M' = Mᵀ, summed over the group's query heads (out = a kv head);
 * - dk: x = v, y = dO, z = q, M' = Mᵀ, summed the same way.
 * Each thread owns one output row and every `lanesPerRow`-th column of it, accumulated in registers.
 * dM has its own kernel: one thread per mask element, which owns its sum over the broadcast dims.
 */
import { type Dtype, WORKGROUP_INDEX_WGSL } from '@webattn/core';
import { MASK_AT_WGSL, maskedHeader, storeAs } from './params.js';

/** Keys (the other side's rows) per staged tile of scores. */
export const TILE_K = 16;

/** Generation parameters of the blocked product kernel. */
export interface BlockedProductConfig {
  dtype: Dtype;
  /** Length of the dot products x · y. */
  dx: number;
  /** Columns of z and of the output. */
  dz: number;
  /**
   * `false`: the output belongs to a query head and x too, y and z to its kv head.
   * `true`: the output and x belong to a kv head, and the kernel sums over its query heads, whose y and z they are.
   */
  kvOutput: boolean;
}

/** How a blocked kernel's workgroup is laid out: lanes per output row, rows, accumulators per lane. */
export function blockedLayout(dz: number): {
  lanesPerRow: number;
  rows: number;
  threads: number;
  acc: number;
} {
  let lanesPerRow = 4;
  while (lanesPerRow < 64 && Math.ceil(dz / lanesPerRow) > 32) lanesPerRow *= 2;
  const rows = Math.min(16, 256 / lanesPerRow);
  return { lanesPerRow, rows, threads: rows * lanesPerRow, acc: Math.ceil(dz / lanesPerRow) };
}

/** WGSL of the blocked product kernel (bindings x, y, z, m, out, params). */
export function blockedProductWgsl(c: BlockedProductConfig): string {
  const t = c.dtype;
  const { lanesPerRow, rows, threads, acc } = blockedLayout(c.dz);
  const outHeads = c.kvOutput ? 'p.hkv' : 'p.hq';
  const xHeads = c.kvOutput ? 'p.hkv' : 'p.hq';
  const yHeads = c.kvOutput ? 'p.hq' : 'p.hkv';
  // Head of y and z for query head `hs` of the loop (x is always the output's head `ho`).
  const yHead = c.kvOutput ? 'hs' : 'ho / p.group';
  // Mask element of output row rr, other-side row u: M[rr, u] or, transposed, M[u, rr].
  const mask = c.kvOutput ? 'maskAt(b, hs, u, rr)' : 'maskAt(b, hs, rr, u)';
  const guard = acc * lanesPerRow > c.dz;
  const chunk = Math.min(64, c.dx);
  // Score entries per invocation: entry li + k · threads.
  const entries = Math.ceil((rows * TILE_K) / threads);
  const ks = Array.from({ length: entries }, (_, k) => k);
  const exact = entries * threads === rows * TILE_K;
  const scoreVars = ks.map((k) => `      var s${k} = 0.0;`).join('\n');
  const scoreSums = ks
    .map((k) => {
      const body = `{
          let e = li + ${k * threads}u;
          let xr = (e / TILE) * XS;
          let yr = (e % TILE) * YS;
          for (var cc = 0u; cc < CHUNK; cc++) { s${k} += Xs[xr + cc] * Ys[yr + cc]; }
        }`;
      return exact ? `        ${body}` : `        if (li + ${k * threads}u < ROWS * TILE) ${body}`;
    })
    .join('\n');
  const scoreStores = ks
    .map((k) => {
      const body = `{
        let e = li + ${k * threads}u;
        let rr = r0 + e / TILE;
        let u = u0 + e % TILE;
        var s = 0.0;
        if (rr < p.n && u < p.n) { s = s${k} * p.scale * ${mask}; }
        Ss[e] = s;
      }`;
      return exact ? `      ${body}` : `      if (li + ${k * threads}u < ROWS * TILE) ${body}`;
    })
    .join('\n');
  const accLines = Array.from({ length: acc }, (_, a) => a);
  return `${maskedHeader(t)}
@group(0) @binding(0) var<storage, read> x: array<${t}>;
@group(0) @binding(1) var<storage, read> y: array<${t}>;
@group(0) @binding(2) var<storage, read> z: array<${t}>;
@group(0) @binding(3) var<storage, read> m: array<${t}>;
@group(0) @binding(4) var<storage, read_write> out: array<${t}>;
@group(0) @binding(5) var<uniform> p: Params;

const ROWS = ${rows}u;
const TILE = ${TILE_K}u;
const THREADS = ${threads}u;
const LANES = ${lanesPerRow}u;
const DX = ${c.dx}u;
const DZ = ${c.dz}u;
const CHUNK = ${chunk}u;
// Row strides of the staged chunks; y's padded by one so the invocations reading different keys hit different banks.
const XS = ${chunk}u;
const YS = ${chunk + 1}u;
var<workgroup> Ss: array<f32, ${rows * TILE_K}>;
var<workgroup> Xs: array<f32, ${rows * chunk}>;
var<workgroup> Ys: array<f32, ${TILE_K * (chunk + 1)}>;

${MASK_AT_WGSL}

${WORKGROUP_INDEX_WGSL}

@compute @workgroup_size(${threads})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let w = workgroupIndex(wid, nwg);
  if (w >= p.count) { return; }
  let tile = w % p.tiles;
  let ho = (w / p.tiles) % ${outHeads};
  let b = w / (p.tiles * ${outHeads});
  let r0 = tile * ROWS;
  let rowLocal = li / LANES;
  let lane = li % LANES;
  let r = r0 + rowLocal;
${accLines.map((a) => `  var acc${a} = 0.0;`).join('\n')}
  let h0 = ${c.kvOutput ? 'ho * p.group' : 'ho'};
  let h1 = ${c.kvOutput ? '(ho + 1u) * p.group' : 'ho + 1u'};
  for (var hs = h0; hs < h1; hs++) {
    for (var u0 = 0u; u0 < p.n; u0 += TILE) {
      // Scores of the tile, rows x TILE dot products spread over the workgroup, from chunks of x
      // and y staged in workgroup memory; each invocation keeps its entries' partial sums.
${scoreVars}
      for (var c0 = 0u; c0 < DX; c0 += CHUNK) {
        for (var e = li; e < ROWS * CHUNK; e += THREADS) {
          let rr = r0 + e / CHUNK;
          let cc = c0 + e % CHUNK;
          var val = 0.0;
          if (rr < p.n && cc < DX) { val = f32(x[((b * p.n + rr) * ${xHeads} + ho) * DX + cc]); }
          Xs[(e / CHUNK) * XS + e % CHUNK] = val;
        }
        for (var e = li; e < TILE * CHUNK; e += THREADS) {
          let u = u0 + e / CHUNK;
          let cc = c0 + e % CHUNK;
          var val = 0.0;
          if (u < p.n && cc < DX) { val = f32(y[((b * p.n + u) * ${yHeads} + ${yHead}) * DX + cc]); }
          Ys[(e / CHUNK) * YS + e % CHUNK] = val;
        }
        workgroupBarrier();
${scoreSums}
        workgroupBarrier();
      }
${scoreStores}
      workgroupBarrier();
      let uEnd = min(TILE, p.n - u0);
      for (var jj = 0u; jj < uEnd; jj++) {
        let s = Ss[rowLocal * TILE + jj];
        let zb = ((b * p.n + u0 + jj) * ${yHeads} + ${yHead}) * DZ;
${accLines
  .map((a) => {
    const col = `lane + ${a * lanesPerRow}u`;
    const index = guard ? `min(${col}, DZ - 1u)` : col;
    return `        acc${a} += s * f32(z[zb + ${index}]);`;
  })
  .join('\n')}
      }
      workgroupBarrier();
    }
  }
  if (r < p.n) {
    let ob = ((b * p.n + r) * ${outHeads} + ho) * DZ;
${accLines
  .map((a) => {
    const col = `lane + ${a * lanesPerRow}u`;
    const store = `out[ob + ${col}] = ${storeAs(t)}(acc${a});`;
    return guard && (a + 1) * lanesPerRow > c.dz ? `    if (${col} < DZ) { ${store} }` : `    ${store}`;
  })
  .join('\n')}
  }
}
`;
}

/** Invocations per workgroup of the blocked dM kernel. */
export const DM_WORKGROUP = 64;

/** Rows and columns of the dM tile a workgroup owns. */
export const DM_TILE = 16;

/** Sizes the dM kernel is generated for. */
export interface BlockedDmConfig {
  dtype: Dtype;
  dk: number;
  dv: number;
}

/**
 * `dM_ij = Σ scale (q_i · k_j)(dO_i · v_j)` over the sequences and heads the mask broadcasts over,
 * recomputed rather than stored. A workgroup owns a `DM_TILE²` tile of dm
 * `[maskBatch, maskHeads, n, n]`, and each invocation the whole sum of its entries, so the result
 * is deterministic without atomics. Both dot products come from chunks of 64 columns staged in
 * workgroup memory, like the product kernel's scores.
 */
export function blockedDmWgsl(c: BlockedDmConfig): string {
  const t = c.dtype;
  const T = DM_TILE;
  const entries = (T * T) / DM_WORKGROUP;
  const ks = Array.from({ length: entries }, (_, k) => k);
  const chunk = Math.min(64, Math.max(c.dk, c.dv));
  // Partial dot products of `left` rows i0.. and `right` rows j0.. over `dim` columns into `prefix{k}`.
  const dots = (
    prefix: string,
    left: string,
    leftHeads: string,
    leftHead: string,
    right: string,
    rightHeads: string,
    rightHead: string,
    dim: number,
  ) => `${ks.map((k) => `      var ${prefix}${k} = 0.0;`).join('\n')}
      for (var c0 = 0u; c0 < ${dim}u; c0 += CHUNK) {
        for (var e = li; e < ${T}u * CHUNK; e += ${DM_WORKGROUP}u) {
          let rr = e / CHUNK;
          let cc = c0 + e % CHUNK;
          var a = 0.0;
          var bb = 0.0;
          if (i0 + rr < p.n && cc < ${dim}u) { a = f32(${left}[((b * p.n + i0 + rr) * ${leftHeads} + ${leftHead}) * ${dim}u + cc]); }
          if (j0 + rr < p.n && cc < ${dim}u) { bb = f32(${right}[((b * p.n + j0 + rr) * ${rightHeads} + ${rightHead}) * ${dim}u + cc]); }
          Xs[rr * XS + e % CHUNK] = a;
          Ys[rr * YS + e % CHUNK] = bb;
        }
        workgroupBarrier();
${ks
  .map(
    (k) => `        {
          let e = li + ${k * DM_WORKGROUP}u;
          let xr = (e / ${T}u) * XS;
          let yr = (e % ${T}u) * YS;
          for (var cc = 0u; cc < CHUNK; cc++) { ${prefix}${k} += Xs[xr + cc] * Ys[yr + cc]; }
        }`,
  )
  .join('\n')}
        workgroupBarrier();
      }`;
  return `${maskedHeader(t)}
@group(0) @binding(0) var<storage, read> q: array<${t}>;
@group(0) @binding(1) var<storage, read> k: array<${t}>;
@group(0) @binding(2) var<storage, read> v: array<${t}>;
@group(0) @binding(3) var<storage, read> dout: array<${t}>;
@group(0) @binding(4) var<storage, read_write> dm: array<${t}>;
@group(0) @binding(5) var<uniform> p: Params;

const CHUNK = ${chunk}u;
const XS = ${chunk}u;
const YS = ${chunk + 1}u;
var<workgroup> Xs: array<f32, ${T * chunk}>;
var<workgroup> Ys: array<f32, ${T * (chunk + 1)}>;

${WORKGROUP_INDEX_WGSL}

@compute @workgroup_size(${DM_WORKGROUP})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let w = workgroupIndex(wid, nwg);
  if (w >= p.count) { return; }
  let tj = w % p.tiles;
  let ti = (w / p.tiles) % p.tiles;
  let mh = (w / (p.tiles * p.tiles)) % p.maskHeads;
  let mb = w / (p.tiles * p.tiles * p.maskHeads);
  let i0 = ti * ${T}u;
  let j0 = tj * ${T}u;
  let b0 = select(mb, 0u, p.maskBatch == 1u);
  let b1 = select(mb + 1u, p.batch, p.maskBatch == 1u);
  let h0 = select(mh, 0u, p.maskHeads == 1u);
  let h1 = select(mh + 1u, p.hq, p.maskHeads == 1u);
${ks.map((k) => `  var acc${k} = 0.0;`).join('\n')}
  for (var b = b0; b < b1; b++) {
    for (var h = h0; h < h1; h++) {
      let hk = h / p.group;
${dots('a', 'q', 'p.hq', 'h', 'k', 'p.hkv', 'hk', c.dk)}
${dots('g', 'dout', 'p.hq', 'h', 'v', 'p.hkv', 'hk', c.dv)}
${ks.map((k) => `      acc${k} += a${k} * g${k};`).join('\n')}
    }
  }
${ks
  .map(
    (k) => `  {
    let e = li + ${k * DM_WORKGROUP}u;
    let i = i0 + e / ${T}u;
    let j = j0 + e % ${T}u;
    if (i < p.n && j < p.n) { dm[((mb * p.maskHeads + mh) * p.n + i) * p.n + j] = ${storeAs(t)}(acc${k} * p.scale); }
  }`,
  )
  .join('\n')}
}
`;
}

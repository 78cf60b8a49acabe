/**
 * The naive masked linear attention: one thread per element, with `Q Kᵀ`-sized f32 buffers in
 * between (the reference on the GPU, and the 1x of the memory table).
 */
import { type Dtype, WORKGROUP_INDEX_WGSL } from '@webattn/core';
import { MASK_AT_WGSL, maskedHeader, storeAs } from './params.js';

/** Invocations per workgroup of every naive kernel. */
export const NAIVE_WORKGROUP = 64;

/** Sizes a naive kernel is generated for. */
export interface NaiveKernelConfig {
  dtype: Dtype;
  dk: number;
  dv: number;
}

const entry = `${WORKGROUP_INDEX_WGSL}

@compute @workgroup_size(${NAIVE_WORKGROUP})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let id = workgroupIndex(wid, nwg) * ${NAIVE_WORKGROUP}u + li;
  if (id >= p.count) { return; }`;

/** Splits a `[b, hq, n, n]` index into (b, h, i, j). */
const squareIndex = `  let j = id % p.n;
  let i = (id / p.n) % p.n;
  let h = (id / (p.n * p.n)) % p.hq;
  let b = id / (p.n * p.n * p.hq);
  let hk = h / p.group;`;

/**
 * Forward scores `S = scale (Q Kᵀ) ⊙ M`, one thread per element of `[b, hq, n, n]` (f32). With
 * `backward`, writes `A = scale Q Kᵀ` to `s` and `G = dO Vᵀ` to `g` instead.
 */
export function naiveScoresWgsl(c: NaiveKernelConfig, backward: boolean): string {
  const t = c.dtype;
  return `${maskedHeader(t)}
@group(0) @binding(0) var<storage, read> q: array<${t}>;
@group(0) @binding(1) var<storage, read> k: array<${t}>;
@group(0) @binding(2) var<storage, read> ${backward ? 'v' : 'm'}: array<${t}>;
${backward ? `@group(0) @binding(3) var<storage, read> dout: array<${t}>;` : ''}
@group(0) @binding(${backward ? 4 : 3}) var<storage, read_write> s: array<f32>;
${backward ? '@group(0) @binding(5) var<storage, read_write> g: array<f32>;' : ''}
@group(0) @binding(${backward ? 6 : 4}) var<uniform> p: Params;
${backward ? '' : MASK_AT_WGSL}
${entry}
${squareIndex}
  let qb = ((b * p.n + i) * p.hq + h) * ${c.dk}u;
  let kb = ((b * p.n + j) * p.hkv + hk) * ${c.dk}u;
  var a = 0.0;
  for (var c = 0u; c < ${c.dk}u; c++) { a += f32(q[qb + c]) * f32(k[kb + c]); }
${
  backward
    ? `  s[id] = a * p.scale;
  let ob = ((b * p.n + i) * p.hq + h) * ${c.dv}u;
  let vb = ((b * p.n + j) * p.hkv + hk) * ${c.dv}u;
  var d = 0.0;
  for (var c = 0u; c < ${c.dv}u; c++) { d += f32(dout[ob + c]) * f32(v[vb + c]); }
  g[id] = d;`
    : '  s[id] = a * p.scale * maskAt(b, h, i, j);'
}
}
`;
}

/** `o = S V`: one thread per element of o `[b, n, hq, dv]`. */
export function naiveOutputWgsl(c: NaiveKernelConfig): string {
  const t = c.dtype;
  return `${maskedHeader(t)}
@group(0) @binding(0) var<storage, read> s: array<f32>;
@group(0) @binding(1) var<storage, read> v: array<${t}>;
@group(0) @binding(2) var<storage, read_write> o: array<${t}>;
@group(0) @binding(3) var<uniform> p: Params;
${entry}
  let c = id % ${c.dv}u;
  let h = (id / ${c.dv}u) % p.hq;
  let i = (id / (${c.dv}u * p.hq)) % p.n;
  let b = id / (${c.dv}u * p.hq * p.n);
  let hk = h / p.group;
  let row = ((b * p.hq + h) * p.n + i) * p.n;
  var acc = 0.0;
  for (var j = 0u; j < p.n; j++) {
    acc += s[row + j] * f32(v[((b * p.n + j) * p.hkv + hk) * ${c.dv}u + c]);
  }
  o[id] = ${storeAs(t)}(acc);
}
`;
}

/** `dq = scale (G ⊙ M) K`: one thread per element of dq `[b, n, hq, dk]`. */
export function naiveDqWgsl(c: NaiveKernelConfig): string {
  const t = c.dtype;
  return `${maskedHeader(t)}
@group(0) @binding(0) var<storage, read> g: array<f32>;
@group(0) @binding(1) var<storage, read> m: array<${t}>;
@group(0) @binding(2) var<storage, read> k: array<${t}>;
@group(0) @binding(3) var<storage, read_write> dq: array<${t}>;
@group(0) @binding(4) var<uniform> p: Params;
${MASK_AT_WGSL}
${entry}
  let c = id % ${c.dk}u;
  let h = (id / ${c.dk}u) % p.hq;
  let i = (id / (${c.dk}u * p.hq)) % p.n;
  let b = id / (${c.dk}u * p.hq * p.n);
  let hk = h / p.group;
  let row = ((b * p.hq + h) * p.n + i) * p.n;
  var acc = 0.0;
  for (var j = 0u; j < p.n; j++) {
    acc += g[row + j] * maskAt(b, h, i, j) * f32(k[((b * p.n + j) * p.hkv + hk) * ${c.dk}u + c]);
  }
  dq[id] = ${storeAs(t)}(acc * p.scale);
}
`;
}

/**
 * The kv-side gradients, one thread per element of `[b, n, hkv, dim]`, summed over the group's query
 * heads: `dk = scale (G ⊙ M)ᵀ Q` from `w = G`, `x = q`; `dv = (A ⊙ M)ᵀ dO` from `w = A`, `x = dO`.
 */
export function naiveKvGradWgsl(c: NaiveKernelConfig, which: 'dk' | 'dv'): string {
  const t = c.dtype;
  const dim = which === 'dk' ? c.dk : c.dv;
  return `${maskedHeader(t)}
@group(0) @binding(0) var<storage, read> w: array<f32>;
@group(0) @binding(1) var<storage, read> m: array<${t}>;
@group(0) @binding(2) var<storage, read> x: array<${t}>;
@group(0) @binding(3) var<storage, read_write> out: array<${t}>;
@group(0) @binding(4) var<uniform> p: Params;
${MASK_AT_WGSL}
${entry}
  let c = id % ${dim}u;
  let hk = (id / ${dim}u) % p.hkv;
  let j = (id / (${dim}u * p.hkv)) % p.n;
  let b = id / (${dim}u * p.hkv * p.n);
  var acc = 0.0;
  for (var h = hk * p.group; h < (hk + 1u) * p.group; h++) {
    for (var i = 0u; i < p.n; i++) {
      acc += w[((b * p.hq + h) * p.n + i) * p.n + j] * maskAt(b, h, i, j) * f32(x[((b * p.n + i) * p.hq + h) * ${dim}u + c]);
    }
  }
  out[id] = ${storeAs(t)}(acc${which === 'dk' ? ' * p.scale' : ''});
}
`;
}

/**
 * `dM = A ⊙ G` summed over the broadcast dims: one thread per element of dm
 * `[maskBatch, maskHeads, n, n]`, which owns its whole sum (deterministic, no atomics).
 */
export function naiveDmWgsl(c: NaiveKernelConfig): string {
  const t = c.dtype;
  return `${maskedHeader(t)}
@group(0) @binding(0) var<storage, read> s: array<f32>;
@group(0) @binding(1) var<storage, read> g: array<f32>;
@group(0) @binding(2) var<storage, read_write> dm: array<${t}>;
@group(0) @binding(3) var<uniform> p: Params;
${entry}
  let ij = id % (p.n * p.n);
  let mh = (id / (p.n * p.n)) % p.maskHeads;
  let mb = id / (p.n * p.n * p.maskHeads);
  let b0 = select(mb, 0u, p.maskBatch == 1u);
  let b1 = select(mb + 1u, p.batch, p.maskBatch == 1u);
  let h0 = select(mh, 0u, p.maskHeads == 1u);
  let h1 = select(mh + 1u, p.hq, p.maskHeads == 1u);
  var acc = 0.0;
  for (var b = b0; b < b1; b++) {
    for (var h = h0; h < h1; h++) {
      let at = (b * p.hq + h) * p.n * p.n + ij;
      acc += s[at] * g[at];
    }
  }
  dm[id] = ${storeAs(t)}(acc);
}
`;
}

/** The cache append: new tokens' latent and rope key written into their page slots. */
import { type Dtype, enables, paramsStruct, WORKGROUP_INDEX_WGSL } from '@webattn/core';

/** Invocations per workgroup of the append. */
export const MLA_APPEND_WORKGROUP = 256;

/** Uniform parameters of the append. */
export const MLA_APPEND_PARAMS = [['tokens', 'u32']] as const;

/** What one append kernel is generated for. */
export interface MlaAppendKernelConfig {
  /** Dtype of the new c_kv and k_pe. */
  input: Dtype;
  /** Dtype of the pages. */
  cache: Dtype;
  r: number;
  dr: number;
}

/**
 * WGSL of the append: token t of the list reads row `src[t]` of c_kv `[*, r]` and k_pe `[*, dr]` and
 * writes `[c_kv | k_pe]` into slot `dst[t]` of the pages `[slots, r + dr]`, converting the dtype.
 */
export function mlaAppendWgsl(c: MlaAppendKernelConfig): string {
  const dk = c.r + c.dr;
  const I = c.input;
  const C = c.cache;
  const rope = c.dr > 0 ? `pages[base + col] = ${C}(kpe[src * ${c.dr}u + col - ${c.r}u]);` : '_ = &kpe;';
  return `${enables({ f16: I === 'f16' || C === 'f16' })}
${paramsStruct(MLA_APPEND_PARAMS)}
@group(0) @binding(0) var<storage, read> ckv: array<${I}>;
@group(0) @binding(1) var<storage, read> kpe: array<${I}>;
@group(0) @binding(2) var<storage, read> srcdst: array<u32>;
@group(0) @binding(3) var<storage, read_write> pages: array<${C}>;
@group(0) @binding(4) var<uniform> p: Params;

${WORKGROUP_INDEX_WGSL}

@compute @workgroup_size(${MLA_APPEND_WORKGROUP})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let id = workgroupIndex(wid, nwg) * ${MLA_APPEND_WORKGROUP}u + li;
  if (id >= p.tokens * ${dk}u) { return; }
  let t = id / ${dk}u;
  let col = id % ${dk}u;
  let src = srcdst[t * 2u];
  let base = srcdst[t * 2u + 1u] * ${dk}u;
  if (col < ${c.r}u) {
    pages[base + col] = ${C}(ckv[src * ${c.r}u + col]);
  } else {
    ${rope}
  }
}
`;
}

/**
 * The one kernel the eager MLA layer adds to what core and @webattn/mla already have: per-head rows
 * assembled from column slices of other tensors, written at a row offset. It builds the standard
 * query `[q_nope | q_pe]`, appends `K = [k_nope | k_pe]` (k_pe shared by every head) and `V` to the
 * dense K/V cache, each straight from the matmul outputs without an intermediate copy.
 */
import { type Dtype, enables, paramsStruct, WORKGROUP_INDEX_WGSL } from '@webattn/core';

/** Invocations per workgroup of the head concatenation (one per output value). */
export const HEAD_CONCAT_WORKGROUP = 256;

/**
 * Uniform parameters: `tokens` new tokens, packed sequence-major with `perSequence` each; token j of
 * sequence s lands on destination row `s · sequenceRows + start + j`.
 */
export const HEAD_CONCAT_PARAMS = [
  ['tokens', 'u32'],
  ['perSequence', 'u32'],
  ['sequenceRows', 'u32'],
  ['start', 'u32'],
] as const;

/** Where head h's `width` values sit in a token's row of `rowStride`: from `offset + h · headStride`. */
export interface HeadSlice {
  width: number;
  rowStride: number;
  offset: number;
  /** 0 when every head reads the same values (the shared k_pe). */
  headStride: number;
}

/** `y[row(t), h, :] = [a[t, h] | b[t, h]]` over `heads`, b optional; see {@link HEAD_CONCAT_PARAMS}. */
export function headConcatWgsl(c: { dtype: Dtype; heads: number; a: HeadSlice; b?: HeadSlice }): string {
  const T = c.dtype;
  const { a, b } = c;
  const width = a.width + (b?.width ?? 0);
  const at = (s: HeadSlice, col: string) =>
    `t * ${s.rowStride}u + ${s.offset}u + h * ${s.headStride}u + ${col}`;
  const bBinding = b ? `@group(0) @binding(1) var<storage, read> b: array<${T}>;\n` : '';
  const slot = b ? 2 : 1;
  const load = b
    ? `var x: ${T};
  if (col < ${a.width}u) { x = a[${at(a, 'col')}]; } else { x = b[${at(b, `col - ${a.width}u`)}]; }`
    : `let x = a[${at(a, 'col')}];`;
  return `${enables({ f16: T === 'f16' })}
${paramsStruct(HEAD_CONCAT_PARAMS)}
@group(0) @binding(0) var<storage, read> a: array<${T}>;
${bBinding}@group(0) @binding(${slot}) var<storage, read_write> y: array<${T}>;
@group(0) @binding(${slot + 1}) var<uniform> p: Params;

${WORKGROUP_INDEX_WGSL}

@compute @workgroup_size(${HEAD_CONCAT_WORKGROUP})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let id = workgroupIndex(wid, nwg) * ${HEAD_CONCAT_WORKGROUP}u + li;
  if (id >= p.tokens * ${c.heads * width}u) { return; }
  let t = id / ${c.heads * width}u;
  let h = (id / ${width}u) % ${c.heads}u;
  let col = id % ${width}u;
  ${load}
  let row = (t / p.perSequence) * p.sequenceRows + p.start + t % p.perSequence;
  y[(row * ${c.heads}u + h) * ${width}u + col] = x;
}
`;
}

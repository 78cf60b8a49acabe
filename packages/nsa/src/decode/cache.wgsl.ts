/**
 * Kernels that fill an {@link NsaCache}: copying new tokens into their sequences' slots, and mean
 * pooling the compressed blocks those tokens complete (spec section 11: a block appears when the
 * length reaches `l + m · s`).
 */
import { type Dtype, enables, paramsStruct, WORKGROUP_INDEX_WGSL } from '@webattn/core';

/** Uniform parameters of the cache kernels. */
export const CACHE_PARAMS = [
  ['count', 'u32'],
  ['row', 'u32'],
  ['dim', 'u32'],
  ['capacity', 'u32'],
  ['cmpCapacity', 'u32'],
  ['kernelSize', 'u32'],
  ['stride', 'u32'],
] as const;

/** Invocations per workgroup. */
export const CACHE_WORKGROUP = 64;

/**
 * A cache kernel over `count · row` elements, one invocation each: the params, three storage
 * bindings (`bindings`, the last read-write) and `body`, which runs for element `id`.
 */
function cacheKernelWgsl(dtype: Dtype, bindings: readonly [string, string, string], body: string): string {
  const [first, second, written] = bindings;
  return `${enables({ f16: dtype === 'f16' })}
${paramsStruct(CACHE_PARAMS)}
@group(0) @binding(0) var<storage, read> ${first};
@group(0) @binding(1) var<storage, read> ${second};
@group(0) @binding(2) var<storage, read_write> ${written};
@group(0) @binding(3) var<uniform> p: Params;

${WORKGROUP_INDEX_WGSL}

@compute @workgroup_size(${CACHE_WORKGROUP})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let id = workgroupIndex(wid, nwg) * ${CACHE_WORKGROUP}u + li;
  if (id >= p.count * p.row) { return; }
${body}
}
`;
}

/**
 * Copies `count` token rows of `row` elements from `src` into the cache rows `slots[i]`.
 * Bindings: src, slots (u32), cache.
 */
export function cacheWriteWgsl(dtype: Dtype): string {
  return cacheKernelWgsl(
    dtype,
    [`src: array<${dtype}>`, 'slots: array<u32>', `cache: array<${dtype}>`],
    '  cache[slots[id / p.row] * p.row + id % p.row] = src[id];',
  );
}

/**
 * Mean-pools `count` new compressed blocks, each given as (sequence, block) in `blocks`, from the
 * cache's tokens into the compressed cache. Bindings: cache, blocks (u32 pairs), cmp.
 */
export function cacheCompressWgsl(dtype: Dtype): string {
  return cacheKernelWgsl(
    dtype,
    [`cache: array<${dtype}>`, 'blocks: array<u32>', `cmp: array<${dtype}>`],
    `  let b = blocks[2u * (id / p.row)];
  let m = blocks[2u * (id / p.row) + 1u];
  let within = id % p.row;
  var sum = 0.0;
  for (var r = 0u; r < p.kernelSize; r++) {
    sum += f32(cache[(b * p.capacity + m * p.stride + r) * p.row + within]);
  }
  cmp[(b * p.cmpCapacity + m) * p.row + within] = ${dtype}(sum / f32(p.kernelSize));`,
  );
}

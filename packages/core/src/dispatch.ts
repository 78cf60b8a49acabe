/**
 * Queues one kernel launch: compiles (or reuses) the pipeline, binds buffers and uniform parameters
 * in order, and spreads the workgroup count over x and y when it exceeds the per-dimension limit.
 */
import type { BufferBinding } from './bind-group-cache.js';
import type { Gpu } from './gpu.js';
import { type ParamLayout, packParams } from './params.js';

/** Something that can be bound as a storage buffer: a tensor or a raw buffer. */
export type Bindable = GPUBuffer | { readonly buffer: GPUBuffer; readonly byteLength: number };

/** One kernel launch. */
export interface DispatchSpec {
  /** Shown in errors and GPU debuggers. */
  label: string;
  /** Generated WGSL; it is the pipeline's cache key. */
  code: string;
  entryPoint?: string;
  /** Storage buffers bound to `@group(0) @binding(0..)` in order. */
  buffers: readonly Bindable[];
  /** Uniform parameters, bound after the buffers. */
  params?: { layout: ParamLayout; values: Readonly<Record<string, number>> };
  /** Number of workgroups; the kernel recovers the linear index with {@link WORKGROUP_INDEX_WGSL}. */
  workgroups: number;
}

/**
 * WGSL for a kernel's linear workgroup index, for dispatches split over x and y. Kernels declare
 * `@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u` and return early when the
 * index is past their count (the y row may be partly filled).
 */
export const WORKGROUP_INDEX_WGSL = `fn workgroupIndex(wid: vec3u, nwg: vec3u) -> u32 {
  return wid.x + wid.y * nwg.x;
}`;

/** Splits a linear workgroup count into x and y counts no larger than `maxPerDimension`. */
export function splitWorkgroups(count: number, maxPerDimension: number): [number, number] {
  if (count <= maxPerDimension) return [Math.max(count, 1), 1];
  const y = Math.ceil(count / maxPerDimension);
  return [Math.ceil(count / y), y];
}

const UNIFORM_CACHE_LIMIT = 1024;

/**
 * Uniform buffers are immutable once created (mapped at creation, never written through the queue),
 * so identical parameter blocks share one buffer and repeated launches allocate nothing.
 */
const uniformCaches = new WeakMap<Gpu, Map<string, GPUBuffer>>();

function uniformBuffer(gpu: Gpu, bytes: ArrayBuffer): GPUBuffer {
  let cache = uniformCaches.get(gpu);
  if (!cache) {
    cache = new Map();
    uniformCaches.set(gpu, cache);
  }
  const key = Array.from(new Uint32Array(bytes)).join(',');
  const hit = cache.get(key);
  if (hit) return hit;
  if (cache.size >= UNIFORM_CACHE_LIMIT) {
    // Work already queued may still use these: submit it, after which destroy() is deferred by WebGPU.
    gpu.submit();
    for (const b of cache.values()) b.destroy();
    cache.clear();
  }
  const buffer = gpu.device.createBuffer({
    size: bytes.byteLength,
    usage: GPUBufferUsage.UNIFORM,
    mappedAtCreation: true,
    label: 'params',
  });
  new Uint8Array(buffer.getMappedRange()).set(new Uint8Array(bytes));
  buffer.unmap();
  cache.set(key, buffer);
  return buffer;
}

function bindingResource(b: Bindable): BufferBinding {
  if ('byteLength' in b && !(b instanceof GPUBuffer)) return { buffer: b.buffer, size: b.byteLength };
  return { buffer: b as GPUBuffer };
}

/** Queues a kernel launch on the gpu's pending encoder. */
export async function dispatch(gpu: Gpu, spec: DispatchSpec): Promise<void> {
  const pipeline = await gpu.pipelines.get(spec.code, spec.label, spec.entryPoint);
  const bindings = spec.buffers.map(bindingResource);
  if (spec.params) {
    const bytes = packParams(spec.params.layout, spec.params.values);
    bindings.push({ buffer: uniformBuffer(gpu, bytes) });
  }
  const bindGroup = gpu.bindGroups.get(pipeline, bindings, spec.label);
  const [x, y] = splitWorkgroups(spec.workgroups, gpu.caps.limits.maxComputeWorkgroupsPerDimension);
  const timestampWrites = gpu.recorder?.passWrites(spec.label);
  const pass = gpu
    .encoder()
    .beginComputePass(timestampWrites ? { label: spec.label, timestampWrites } : { label: spec.label });
  pass.setPipeline(pipeline);
  pass.setBindGroup(0, bindGroup);
  pass.dispatchWorkgroups(x, y);
  pass.end();
}

/**
 * Bind groups kept per pipeline and bound buffers, so that a step launching the same kernels on the
 * same buffers as the step before creates none. The buffer pool hands a step's tensors out in the
 * same order every step, so a decode loop binds the same buffers each time. Why: creating a bind
 * group costs tens of microseconds of host time in Dawn, as much as the rest of a small launch, and
 * a decode step is bound by its host time at small batches (perf-notes, 2026-12-02).
 *
 * A destroyed buffer is never bound again (WebGPU refuses such a launch), so an entry that names
 * one is dead, never wrong; past the limit the oldest entries are dropped.
 */

/** Bind groups kept at most. */
const KEPT = 1024;

/** One binding: a buffer, or the part of it from offset for size bytes. */
export interface BufferBinding {
  buffer: GPUBuffer;
  offset?: number;
  size?: number;
}

/** Bind groups of group 0 by pipeline and bindings, in binding order. */
export class BindGroupCache {
  private readonly groups = new Map<string, GPUBindGroup>();
  private readonly ids = new WeakMap<object, number>();
  private nextId = 0;

  constructor(private readonly device: GPUDevice) {}

  /** The bind group of `pipeline`'s group 0 with `bindings` at bindings 0, 1, ..., made on first use. */
  get(pipeline: GPUComputePipeline, bindings: readonly BufferBinding[], label: string): GPUBindGroup {
    const key = `${this.idOf(pipeline)}|${bindings
      .map((b) => `${this.idOf(b.buffer)}:${b.offset ?? 0}:${b.size ?? ''}`)
      .join(',')}`;
    let group = this.groups.get(key);
    if (!group) {
      group = this.device.createBindGroup({
        layout: pipeline.getBindGroupLayout(0),
        entries: bindings.map((resource, binding) => ({ binding, resource })),
        label,
      });
      if (this.groups.size >= KEPT) this.groups.delete(this.groups.keys().next().value as string);
      this.groups.set(key, group);
    }
    return group;
  }

  clear(): void {
    this.groups.clear();
  }

  private idOf(object: object): number {
    let id = this.ids.get(object);
    if (id === undefined) {
      id = this.nextId++;
      this.ids.set(object, id);
    }
    return id;
  }
}

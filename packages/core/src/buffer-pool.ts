/**
 * Reuses GPU buffers between ops so that a model running the same shapes step after step stops
 * allocating after its first step. Sizes are rounded up to one of eight classes per power of two,
 * which wastes at most 12.5 % and lets nearby sizes share buffers. Beyond its byte budget the pool
 * destroys the buffers released longest ago, not the one just released: that one is what the next
 * step will ask for, while old ones may be of sizes no one uses any more.
 */

/** Rounds a byte size up to its size class (at least 256 bytes, always a multiple of 16). */
export function sizeClass(bytes: number): number {
  if (bytes <= 256) return 256;
  const octave = 2 ** Math.floor(Math.log2(bytes - 1));
  const step = octave / 8;
  return Math.ceil(bytes / step) * step;
}

/** Counters for leak checks and the CLI's `info`. */
export interface PoolStats {
  /** Buffers handed out and not yet released. */
  liveBuffers: number;
  liveBytes: number;
  /** Buffers kept for reuse. */
  freeBuffers: number;
  freeBytes: number;
}

/** The free list a buffer of this usage and size class goes to. */
const freeListKey = (usage: GPUBufferUsageFlags, size: number) => `${usage}:${size}`;

/** A free list of GPU buffers keyed by usage and size class. */
export class BufferPool {
  private readonly free = new Map<string, GPUBuffer[]>();
  /** Every free buffer, in the order released (a Set iterates in insertion order): eviction order. */
  private readonly released = new Set<GPUBuffer>();
  private readonly live = new Set<GPUBuffer>();
  private freeBytes = 0;
  private liveBytes = 0;

  constructor(
    private readonly device: GPUDevice,
    /**
     * Called before any buffer is destroyed. A released buffer may still be used by commands that are
     * encoded but not yet submitted; destroying it then would invalidate them. Submitting first makes
     * the destroy safe: WebGPU defers it until submitted work is done.
     */
    private readonly beforeDestroy: () => void,
    /** Free bytes kept at most; buffers released beyond it are destroyed. */
    private readonly maxFreeBytes = 1 << 30,
  ) {}

  /** A buffer of at least `bytes` with exactly `usage`. Its contents are undefined. */
  acquire(bytes: number, usage: GPUBufferUsageFlags, label?: string): GPUBuffer {
    const size = sizeClass(bytes);
    const key = freeListKey(usage, size);
    const reused = this.free.get(key)?.pop();
    let buffer: GPUBuffer;
    if (reused) {
      this.freeBytes -= size;
      this.released.delete(reused);
      buffer = reused;
    } else {
      buffer = this.device.createBuffer({ size, usage, label: label ?? 'webattn' });
    }
    this.live.add(buffer);
    this.liveBytes += size;
    return buffer;
  }

  /** Gives a buffer from {@link acquire} back for reuse. */
  release(buffer: GPUBuffer): void {
    if (!this.live.delete(buffer)) return;
    this.liveBytes -= buffer.size;
    const key = freeListKey(buffer.usage, buffer.size);
    const list = this.free.get(key) ?? [];
    list.push(buffer);
    this.free.set(key, list);
    this.released.add(buffer);
    this.freeBytes += buffer.size;
    if (this.freeBytes > this.maxFreeBytes) this.evict();
  }

  /** Destroys the free buffers released longest ago until the free bytes fit the budget. */
  private evict(): void {
    this.beforeDestroy();
    for (const old of this.released) {
      if (this.freeBytes <= this.maxFreeBytes) break;
      const list = this.free.get(freeListKey(old.usage, old.size))!;
      list.splice(list.indexOf(old), 1);
      this.released.delete(old);
      this.freeBytes -= old.size;
      old.destroy();
    }
  }

  /** Destroys every free buffer (live ones stay with their owners). */
  trim(): void {
    this.beforeDestroy();
    for (const list of this.free.values()) for (const b of list) b.destroy();
    this.free.clear();
    this.released.clear();
    this.freeBytes = 0;
  }

  /** Destroys every buffer, live ones included. */
  destroy(): void {
    this.trim();
    for (const b of this.live) b.destroy();
    this.live.clear();
    this.liveBytes = 0;
  }

  /** Current counts, for leak checks. */
  stats(): PoolStats {
    return {
      liveBuffers: this.live.size,
      liveBytes: this.liveBytes,
      freeBuffers: this.released.size,
      freeBytes: this.freeBytes,
    };
  }
}

/** Peak GPU memory of a piece of work, from the buffer pool's bookkeeping (not a timing). */
import type { Gpu } from '@webattn/core';

/**
 * Runs `fn` while counting the bytes of the pool buffers it acquires and has not released (readback
 * staging aside), and returns the peak.
 */
export async function peakAllocatedBytes(gpu: Gpu, fn: () => Promise<void>): Promise<number> {
  const pool = gpu.pool;
  const acquire = pool.acquire;
  const release = pool.release;
  const mine = new Map<GPUBuffer, number>();
  let live = 0;
  let peak = 0;
  pool.acquire = (bytes, usage, label) => {
    const buffer = acquire.call(pool, bytes, usage, label);
    if (label !== 'readback') {
      mine.set(buffer, buffer.size);
      live += buffer.size;
      peak = Math.max(peak, live);
    }
    return buffer;
  };
  pool.release = (buffer) => {
    const size = mine.get(buffer);
    if (size !== undefined) {
      live -= size;
      mine.delete(buffer);
    }
    release.call(pool, buffer);
  };
  try {
    await fn();
  } finally {
    pool.acquire = acquire;
    pool.release = release;
  }
  return peak;
}

/**
 * Host data bound for buffers that work already queued may still read: written into a mapped
 * staging chunk and copied in the pending encoder, after that work. Chunks are filled front to
 * back, unmapped when the encoder is submitted, mapped again once the GPU is done with them and
 * then reused.
 *
 * Why: a staging buffer created mapped for every upload cost about 0.1 ms of host time each on the
 * H200 machine (a device allocation per call), and a decode step uploads its tables on every call:
 * the MLA decode's two uploads were half of its 0.6 ms of recording (host profile, 2026-12-02).
 */

/** Bytes per chunk; an upload larger than a quarter of it gets a staging buffer of its own. */
export const STAGING_CHUNK_BYTES = 64 * 1024;

/** Chunks kept mapped and free at most; more returning from the GPU are destroyed. */
const FREE_CHUNKS = 16;

/** Copy offsets and sizes must be multiples of 4 bytes. */
const COPY_ALIGNMENT = 4;

interface MappedChunk {
  buffer: GPUBuffer;
  /** The whole chunk, mapped for writing. */
  range: ArrayBuffer;
  used: number;
}

/** Counters for tests and diagnostics. */
export interface StagingStats {
  /** Chunks created since the belt was made. */
  chunksCreated: number;
  /** Chunks mapped and free now. */
  freeChunks: number;
}

/** Mapped staging memory for uploads that follow queued work; one per device. */
export class StagingBelt {
  private readonly free: MappedChunk[] = [];
  /** Chunks the pending encoder copies from (the last one is still being filled). */
  private readonly pending: MappedChunk[] = [];
  /** Whole staging buffers of large uploads in the pending encoder, destroyed once submitted. */
  private dedicated: GPUBuffer[] = [];
  private created = 0;
  private destroyed = false;

  constructor(private readonly device: GPUDevice) {}

  /** Records a copy of `data` into `target` at `offset` in `encoder`, after what it already holds. */
  upload(encoder: GPUCommandEncoder, target: GPUBuffer, offset: number, data: Uint8Array): void {
    const size = data.byteLength;
    if (size === 0) return;
    if (size % COPY_ALIGNMENT !== 0 || offset % COPY_ALIGNMENT !== 0) {
      throw new RangeError(
        `StagingBelt.upload: offset ${offset} and size ${size} must be multiples of 4 bytes`,
      );
    }
    if (size > STAGING_CHUNK_BYTES / 4) {
      const staging = this.device.createBuffer({
        size,
        usage: GPUBufferUsage.COPY_SRC,
        mappedAtCreation: true,
        label: 'upload',
      });
      new Uint8Array(staging.getMappedRange()).set(data);
      staging.unmap();
      encoder.copyBufferToBuffer(staging, 0, target, offset, size);
      this.dedicated.push(staging);
      return;
    }
    let chunk = this.pending.at(-1);
    if (!chunk || chunk.used + size > STAGING_CHUNK_BYTES) {
      chunk = this.take();
      this.pending.push(chunk);
    }
    new Uint8Array(chunk.range, chunk.used, size).set(data);
    encoder.copyBufferToBuffer(chunk.buffer, chunk.used, target, offset, size);
    chunk.used += size;
  }

  /**
   * Unmaps what the pending encoder copies from; call right before submitting it, and pass the
   * result to {@link submitted} right after.
   */
  beforeSubmit(): GPUBuffer[] {
    return this.pending.splice(0).map((chunk) => {
      chunk.buffer.unmap();
      return chunk.buffer;
    });
  }

  /** After the submit: the chunks map again (free once the GPU is done), large uploads' buffers go. */
  submitted(used: GPUBuffer[]): void {
    // WebGPU defers a destroy until the submitted work that uses the buffer is done.
    for (const staging of this.dedicated) staging.destroy();
    this.dedicated = [];
    for (const buffer of used) {
      buffer.mapAsync(GPUMapMode.WRITE).then(
        () => {
          if (this.destroyed || this.free.length >= FREE_CHUNKS) buffer.destroy();
          else this.free.push({ buffer, range: buffer.getMappedRange(), used: 0 });
        },
        // The device was lost or destroyed, or the buffer with it: nothing to reuse.
        () => buffer.destroy(),
      );
    }
  }

  /** Drops chunks and staging buffers of work recorded but never submitted. */
  private discardPending(): void {
    for (const chunk of this.pending.splice(0)) chunk.buffer.destroy();
    for (const staging of this.dedicated) staging.destroy();
    this.dedicated = [];
  }

  /** Destroys every chunk; chunks still returning from the GPU are destroyed when they arrive. */
  destroy(): void {
    this.destroyed = true;
    this.discardPending();
    for (const chunk of this.free.splice(0)) chunk.buffer.destroy();
  }

  stats(): StagingStats {
    return { chunksCreated: this.created, freeChunks: this.free.length };
  }

  /** A free mapped chunk, or a new one. */
  private take(): MappedChunk {
    const reused = this.free.pop();
    if (reused) return reused;
    const buffer = this.device.createBuffer({
      size: STAGING_CHUNK_BYTES,
      usage: GPUBufferUsage.MAP_WRITE | GPUBufferUsage.COPY_SRC,
      mappedAtCreation: true,
      label: 'staging chunk',
    });
    this.created++;
    return { buffer, range: buffer.getMappedRange(), used: 0 };
  }
}

/**
 * A GPU buffer with a shape and a dtype. Tensors own pooled buffers (released back to the pool on
 * `dispose()`), or wrap a foreign buffer they never free.
 */
import { assertDtype, bytesPerElement, type Dtype } from './dtype.js';
import { WebAttnError } from './errors.js';
import { fromF16Bits, toF16Bits } from './f16.js';
import type { Gpu } from './gpu.js';

const STORAGE_USAGE = 0x80 | 0x04 | 0x08; // STORAGE | COPY_SRC | COPY_DST
const READBACK_USAGE = 0x01 | 0x08; // MAP_READ | COPY_DST

/** Host data a tensor can be made from: f32 values (rounded for f16 tensors) or raw f16 bits. */
export type TensorData = Float32Array | Uint16Array | readonly number[];

/** Checks that a shape is a list of non-negative integers and returns its element count. */
export function shapeSize(shape: readonly number[], argument = 'shape'): number {
  let size = 1;
  for (const [i, extent] of shape.entries()) {
    if (!Number.isSafeInteger(extent) || extent < 0) {
      throw new WebAttnError(
        'invalid-argument',
        `${argument}[${i}]: expected a non-negative integer, got ${extent} (shape [${shape.join(', ')}])`,
      );
    }
    size *= extent;
  }
  return size;
}

/** Storage bytes for `size` elements, rounded up to 4 as WebGPU bindings and copies require. */
function storageBytes(size: number, dtype: Dtype): number {
  return Math.max(4, Math.ceil((size * bytesPerElement(dtype)) / 4) * 4);
}

/** A typed view of GPU memory; `[b, n, h, d]` shapes are row-major like PyTorch's contiguous tensors. */
export class Tensor {
  /** Number of elements. */
  readonly size: number;
  /** Bytes the data occupies, rounded up to 4. */
  readonly byteLength: number;
  private gpuBuffer: GPUBuffer | null;

  private constructor(
    readonly gpu: Gpu,
    buffer: GPUBuffer,
    readonly shape: readonly number[],
    readonly dtype: Dtype,
    private readonly owned: boolean,
  ) {
    this.gpuBuffer = buffer;
    this.size = shapeSize(shape);
    this.byteLength = storageBytes(this.size, dtype);
  }

  /** A tensor holding `data`; f32 values are rounded to nearest even for an f16 tensor. */
  static from(gpu: Gpu, data: TensorData, shape: readonly number[], dtype: Dtype = 'f32'): Tensor {
    assertDtype(dtype, 'dtype');
    const size = shapeSize(shape);
    if (data.length !== size) {
      throw new WebAttnError(
        'shape-mismatch',
        `data: expected ${size} elements for shape [${shape.join(', ')}], got ${data.length}`,
      );
    }
    if (data instanceof Uint16Array && dtype !== 'f16') {
      throw new WebAttnError('dtype-mismatch', `data: a Uint16Array holds f16 bits, but dtype is '${dtype}'`);
    }
    const tensor = Tensor.empty(gpu, shape, dtype);
    const bytes = new Uint8Array(tensor.byteLength);
    if (dtype === 'f32') new Float32Array(bytes.buffer).set(data);
    else new Uint16Array(bytes.buffer, 0, size).set(data instanceof Uint16Array ? data : toF16Bits(data));
    gpu.write(tensor.buffer, bytes);
    return tensor;
  }

  /** A tensor whose contents are undefined (every element will be written by a kernel). */
  static empty(gpu: Gpu, shape: readonly number[], dtype: Dtype = 'f32'): Tensor {
    assertDtype(dtype, 'dtype');
    const bytes = storageBytes(shapeSize(shape), dtype);
    const limit = gpu.caps.limits.maxStorageBufferBindingSize;
    if (bytes > limit) {
      throw new WebAttnError(
        'limit-exceeded',
        `tensor [${shape.join(', ')}] ${dtype}: ${bytes} bytes exceed this device's maxStorageBufferBindingSize (${limit})`,
      );
    }
    return new Tensor(gpu, gpu.pool.acquire(bytes, STORAGE_USAGE, 'tensor'), shape, dtype, true);
  }

  /** A tensor of zeros. */
  static zeros(gpu: Gpu, shape: readonly number[], dtype: Dtype = 'f32'): Tensor {
    const tensor = Tensor.empty(gpu, shape, dtype);
    gpu.encoder().clearBuffer(tensor.buffer, 0, tensor.byteLength);
    return tensor;
  }

  /**
   * Views a buffer from elsewhere (another library's) as a tensor without copying. It needs
   * STORAGE usage (and COPY_SRC to be read back); `dispose()` leaves it alive.
   */
  static wrap(gpu: Gpu, buffer: GPUBuffer, shape: readonly number[], dtype: Dtype = 'f32'): Tensor {
    assertDtype(dtype, 'dtype');
    const bytes = shapeSize(shape) * bytesPerElement(dtype);
    if (buffer.size < bytes) {
      throw new WebAttnError(
        'shape-mismatch',
        `buffer: shape [${shape.join(', ')}] ${dtype} needs ${bytes} bytes, the buffer has ${buffer.size}`,
      );
    }
    if ((buffer.usage & 0x80) === 0) {
      throw new WebAttnError('invalid-argument', 'buffer: expected STORAGE usage to bind it in kernels');
    }
    return new Tensor(gpu, buffer, shape, dtype, false);
  }

  /** The underlying buffer; throws once disposed. */
  get buffer(): GPUBuffer {
    if (!this.gpuBuffer) throw new WebAttnError('disposed', `tensor [${this.shape.join(', ')}] was disposed`);
    return this.gpuBuffer;
  }

  /** True once {@link dispose} has run. */
  get disposed(): boolean {
    return this.gpuBuffer === null;
  }

  /**
   * Copies the data of `sources` into this tensor one after the other from its start, on the
   * device and in order with the work queued before (a kernel's inputs gathered into one binding,
   * say). Their dtypes must be this tensor's, and together they must fit it.
   */
  copyFrom(sources: readonly Tensor[]): void {
    let offset = 0;
    for (const [i, source] of sources.entries()) {
      if (source.dtype !== this.dtype) {
        throw new WebAttnError(
          'dtype-mismatch',
          `sources[${i}]: expected dtype ${this.dtype} (the destination's), got ${source.dtype}`,
        );
      }
      offset += source.byteLength;
    }
    if (offset > this.byteLength) {
      throw new WebAttnError(
        'shape-mismatch',
        `sources: expected at most ${this.byteLength} bytes (the destination's), got ${offset}`,
      );
    }
    const encoder = this.gpu.encoder();
    offset = 0;
    for (const source of sources) {
      encoder.copyBufferToBuffer(source.buffer, 0, this.buffer, offset, source.byteLength);
      offset += source.byteLength;
    }
  }

  /** Copies the data back to the host as f32 (f16 values are widened exactly). */
  async read(): Promise<Float32Array> {
    const gpu = this.gpu;
    const staging = gpu.pool.acquire(this.byteLength, READBACK_USAGE, 'readback');
    try {
      gpu.encoder().copyBufferToBuffer(this.buffer, 0, staging, 0, this.byteLength);
      gpu.submit();
      await staging.mapAsync(GPUMapMode.READ, 0, this.byteLength);
      const bytes = staging.getMappedRange(0, this.byteLength).slice(0);
      staging.unmap();
      gpu.throwErrors();
      if (this.dtype === 'f32') return new Float32Array(bytes, 0, this.size);
      return fromF16Bits(new Uint16Array(bytes, 0, this.size));
    } finally {
      gpu.pool.release(staging);
    }
  }

  /** Gives the buffer back to the pool (or forgets a wrapped one). Safe to call twice. */
  dispose(): void {
    if (!this.gpuBuffer) return;
    if (this.owned) this.gpu.pool.release(this.gpuBuffer);
    this.gpuBuffer = null;
  }

  /** Lets `using t = Tensor.from(...)` dispose at the end of the scope. */
  [Symbol.dispose](): void {
    this.dispose();
  }
}

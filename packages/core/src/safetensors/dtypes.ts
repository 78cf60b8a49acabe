/**
 * The element types this module reads and writes, and how they are spelled in a safetensors header.
 */

/**
 * The dtype recorded in a safetensors file, in webattn's spelling. Floating dtypes are widened to
 * f32 on the host; the dtype says what precision the file held (and what a writer will store).
 */
export type HostDtype = 'f32' | 'f16' | 'bf16' | 'i32' | 'i64';

/** Every {@link HostDtype}, in the order error messages list them. */
export const HOST_DTYPES: readonly HostDtype[] = ['f32', 'f16', 'bf16', 'i32', 'i64'];

/**
 * One tensor on the host, as read from or written to a safetensors file. Row-major, like a
 * contiguous PyTorch tensor.
 */
export interface HostTensor {
  /** The tensor's key in the file header. */
  name: string;
  /** The element type in the file. */
  dtype: HostDtype;
  /** Extents, outermost first; `[]` is a scalar (one element). */
  shape: number[];
  /**
   * The elements: a Float32Array for f32, f16 and bf16 (f16 and bf16 widened exactly), an
   * Int32Array for i32, a BigInt64Array for i64. Its length is the product of `shape`.
   */
  data: Float32Array | Int32Array | BigInt64Array;
}

/** The header spelling of each dtype. */
export const FILE_DTYPE: Readonly<Record<HostDtype, string>> = {
  f32: 'F32',
  f16: 'F16',
  bf16: 'BF16',
  i32: 'I32',
  i64: 'I64',
};

/** Header spellings of the supported dtypes, for error messages. */
export const FILE_DTYPE_NAMES: string = HOST_DTYPES.map((d) => FILE_DTYPE[d]).join(', ');

/** The host dtype a header dtype string names, or undefined when it is not supported. */
export function hostDtypeOf(fileDtype: string): HostDtype | undefined {
  // A linear search rather than an object lookup: a hostile header could name `__proto__` or
  // `constructor`, which an object lookup would resolve through the prototype.
  return HOST_DTYPES.find((d) => FILE_DTYPE[d] === fileDtype);
}

/** Bytes one element of `dtype` takes in the file. */
export function itemSize(dtype: HostDtype): number {
  switch (dtype) {
    case 'i64':
      return 8;
    case 'f32':
    case 'i32':
      return 4;
    case 'f16':
    case 'bf16':
      return 2;
  }
}

/** Whether `value` is a valid {@link HostDtype}. */
export function isHostDtype(value: unknown): value is HostDtype {
  return typeof value === 'string' && (HOST_DTYPES as readonly string[]).includes(value);
}

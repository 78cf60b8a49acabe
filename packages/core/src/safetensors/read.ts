/**
 * Reading a safetensors file into host tensors.
 */
import { check } from '../errors.js';
import { fromBf16Bits, fromF16Bits } from '../f16.js';
import type { HostTensor } from './dtypes.js';
import type { TensorEntry } from './entry.js';
import { parseHeader } from './header.js';

/** What a safetensors file holds. */
export interface SafetensorsFile {
  /** Tensors by name, in header order. */
  tensors: Map<string, HostTensor>;
  /** The header's `__metadata__` strings; empty when the file has none. */
  metadata: Record<string, string>;
}

/**
 * Reads a safetensors file. F32, F16 and BF16 tensors come back as Float32Array (F16 and BF16
 * widened exactly), I32 as Int32Array, I64 as BigInt64Array; each keeps the dtype of the file.
 *
 * The header is validated before any data is touched: a truncated, malformed or hostile file
 * raises a {@link WebAttnError} with code 'malformed-file' naming what is wrong and where, and
 * nothing is allocated beyond about twice the file's size. Bytes of the data buffer that no tensor
 * covers are allowed and ignored.
 *
 * F32, I32 and I64 data share memory with `bytes` where the element alignment allows (copy
 * `bytes` first, or the data after, to keep them apart); unaligned data is copied. `bytes` may
 * start at any byteOffset. The host is assumed little-endian, as WebGPU is.
 *
 * Map order is the header's key order as JavaScript lists a parsed object: names that are array
 * indices ("0", "1", ...) first in numeric order, then the rest in file order.
 */
export function readSafetensors(bytes: Uint8Array): SafetensorsFile {
  check(
    bytes instanceof Uint8Array,
    'invalid-argument',
    () => `bytes: expected a Uint8Array, got ${bytes === null ? 'null' : typeof bytes}`,
  );
  const header = parseHeader(bytes);
  const tensors = new Map<string, HostTensor>();
  for (const entry of header.entries) {
    tensors.set(entry.name, {
      name: entry.name,
      dtype: entry.dtype,
      shape: entry.shape,
      data: readData(bytes, header.dataStart, entry),
    });
  }
  return { tensors, metadata: header.metadata };
}

/** The elements of one validated entry. */
function readData(bytes: Uint8Array, dataStart: number, entry: TensorEntry): HostTensor['data'] {
  const start = dataStart + entry.begin;
  switch (entry.dtype) {
    case 'f32':
      return new Float32Array(...aligned(bytes, start, entry.size, 4));
    case 'i32':
      return new Int32Array(...aligned(bytes, start, entry.size, 4));
    case 'i64':
      return new BigInt64Array(...aligned(bytes, start, entry.size, 8));
    case 'f16':
      return fromF16Bits(new Uint16Array(...aligned(bytes, start, entry.size, 2)));
    case 'bf16':
      return fromBf16Bits(new Uint16Array(...aligned(bytes, start, entry.size, 2)));
  }
}

/**
 * Arguments for a typed-array view of `count` elements of `width` bytes at `start` of `bytes`:
 * a view of the caller's buffer when it is aligned, else of a fresh copy (typed arrays cannot start
 * at an unaligned offset).
 */
function aligned(
  bytes: Uint8Array,
  start: number,
  count: number,
  width: number,
): [ArrayBufferLike, number, number] {
  const offset = bytes.byteOffset + start;
  if (offset % width === 0) return [bytes.buffer, offset, count];
  const copy = bytes.slice(start, start + count * width);
  return [copy.buffer, 0, count];
}

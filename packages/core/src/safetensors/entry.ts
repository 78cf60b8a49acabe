/**
 * Validation of one tensor entry of a header, on its own: the JSON types, the dtype, the shape, and
 * offsets that fit the data buffer and agree with the shape. How entries sit relative to each other
 * is checked in header.ts.
 */
import { WebAttnError } from '../errors.js';
import { FILE_DTYPE_NAMES, type HostDtype, hostDtypeOf, itemSize } from './dtypes.js';
import { checkedShapeSize, describe, quoteName } from './shape.js';

/** A validated header entry: where a tensor's bytes are in the data buffer and how to read them. */
export interface TensorEntry {
  /** The header key. */
  name: string;
  /** The element type. */
  dtype: HostDtype;
  /** The extents, checked. */
  shape: number[];
  /** Element count: the product of `shape`. */
  size: number;
  /** First byte, relative to the start of the data buffer. */
  begin: number;
  /** One past the last byte, relative to the start of the data buffer. */
  end: number;
}

/**
 * Checks one header entry `value` named `name` against a data buffer of `dataLength` bytes that
 * starts at file offset `dataStart`.
 */
export function parseEntry(name: string, value: unknown, dataStart: number, dataLength: number): TensorEntry {
  const fail = (message: string): never => {
    throw new WebAttnError('malformed-file', `header: tensor ${quoteName(name)}: ${message}`);
  };
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return fail(`expected an object with dtype, shape and data_offsets, got ${describe(value)}`);
  }
  // Object.hasOwn: a missing field must not be found on Object.prototype.
  const field = (key: string): unknown =>
    Object.hasOwn(value, key) ? (value as Record<string, unknown>)[key] : undefined;
  const rawDtype = field('dtype');
  const rawShape = field('shape');
  const rawOffsets = field('data_offsets');
  for (const [key, raw] of [
    ['dtype', rawDtype],
    ['shape', rawShape],
    ['data_offsets', rawOffsets],
  ] as const) {
    if (raw === undefined) fail(`missing "${key}"`);
  }

  if (typeof rawDtype !== 'string') return fail(`dtype: expected a string, got ${describe(rawDtype)}`);
  const dtype = hostDtypeOf(rawDtype);
  if (dtype === undefined) {
    return fail(`dtype ${describe(rawDtype)} is not supported; supported dtypes: ${FILE_DTYPE_NAMES}`);
  }

  const size = checkedShapeSize(rawShape, fail);
  const shape = rawShape as number[];

  if (!Array.isArray(rawOffsets) || rawOffsets.length !== 2) {
    return fail(`data_offsets: expected [begin, end], got ${describe(rawOffsets)}`);
  }
  const [begin, end] = rawOffsets as unknown[];
  for (const [which, offset] of [
    ['begin', begin],
    ['end', end],
  ] as const) {
    if (typeof offset !== 'number' || !Number.isSafeInteger(offset) || offset < 0) {
      fail(`data_offsets: ${which} must be a non-negative integer, got ${describe(offset)}`);
    }
  }
  const b = begin as number;
  const e = end as number;
  if (b > e) return fail(`data_offsets [${b}, ${e}]: begin is after end`);
  if (e > dataLength) {
    return fail(
      `data_offsets [${b}, ${e}]: end is past the end of the data buffer ` +
        `(${dataLength} bytes, starting at file offset ${dataStart})`,
    );
  }
  // size * itemSize cannot lose precision that matters: a product past 2^53 is never equal to a
  // byte count that fits in the file.
  const expected = size * itemSize(dtype);
  if (e - b !== expected) {
    return fail(
      `data_offsets [${b}, ${e}] span ${e - b} bytes, but shape [${shape.join(', ')}] of ${rawDtype} ` +
        `needs ${size} x ${itemSize(dtype)} = ${expected} bytes`,
    );
  }
  return { name, dtype, shape: [...shape], size, begin: b, end: e };
}

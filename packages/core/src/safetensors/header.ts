/**
 * Parsing and validating a safetensors header: the 8-byte length prefix, the JSON, the metadata
 * and every tensor entry, and the layout of the entries in the data buffer. Everything a reader
 * needs to trust before it touches the data is checked here.
 */
import { check, WebAttnError } from '../errors.js';
import { parseEntry, type TensorEntry } from './entry.js';
import { parseHeaderJson } from './json.js';
import { describe, quoteName } from './shape.js';

/** Largest header accepted, in bytes: the bound the reference implementation uses. */
export const MAX_HEADER_BYTES = 100_000_000;

/** The key of the optional string-to-string metadata object in a header. */
export const METADATA_KEY = '__metadata__';

/** A validated header, and where the data buffer lies in the file. */
export interface SafetensorsHeader {
  /** Tensors in header order (as `Object.entries` lists the parsed JSON). */
  entries: TensorEntry[];
  /** The `__metadata__` object, or an empty one. */
  metadata: Record<string, string>;
  /** File offset of the data buffer: 8 plus the header length. */
  dataStart: number;
  /** Bytes from `dataStart` to the end of the file. */
  dataLength: number;
}

/** Reads and validates the header of the safetensors file `bytes`; throws 'malformed-file'. */
export function parseHeader(bytes: Uint8Array): SafetensorsHeader {
  const headerLength = readHeaderLength(bytes);
  const dataStart = 8 + headerLength;
  const dataLength = bytes.length - dataStart;
  const json = parseHeaderJson(bytes, 8, headerLength);
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new WebAttnError('malformed-file', `header: expected a JSON object, got ${describe(json)}`);
  }

  let metadata: Record<string, string> = {};
  const entries: TensorEntry[] = [];
  // Object.entries lists own keys only, so a key like "__proto__" (an own property after
  // JSON.parse) is just another tensor name and nothing is looked up through a prototype.
  for (const [name, value] of Object.entries(json)) {
    if (name === METADATA_KEY) metadata = parseMetadata(value);
    else entries.push(parseEntry(name, value, dataStart, dataLength));
  }
  checkNoOverlap(entries);
  return { entries, metadata, dataStart, dataLength };
}

/**
 * The u64 header length, checked against the bound and the file size. Read as two u32 halves: a
 * value past 2^53 is not representable as a number, and anything with a non-zero high half is far
 * past the bound anyway.
 */
function readHeaderLength(bytes: Uint8Array): number {
  check(
    bytes.length >= 8,
    'malformed-file',
    () => `file is ${bytes.length} bytes long, shorter than the 8-byte header length prefix`,
  );
  const view = new DataView(bytes.buffer, bytes.byteOffset, 8);
  const low = view.getUint32(0, true);
  const high = view.getUint32(4, true);
  if (high !== 0 || low > MAX_HEADER_BYTES) {
    const exact = (BigInt(high) << 32n) | BigInt(low);
    throw new WebAttnError(
      'malformed-file',
      `header length ${exact} (bytes 0 to 8 of the file) is over the limit of ${MAX_HEADER_BYTES} bytes`,
    );
  }
  check(
    low <= bytes.length - 8,
    'malformed-file',
    () =>
      `header length ${low} (bytes 0 to 8 of the file) runs past the end of the file: ` +
      `only ${bytes.length - 8} bytes follow the length prefix`,
  );
  return low;
}

/** Checks that `__metadata__` maps strings to strings; returns a copy without a prototype chain surprise. */
function parseMetadata(value: unknown): Record<string, string> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new WebAttnError(
      'malformed-file',
      `header: ${METADATA_KEY} must be an object of strings, got ${describe(value)}`,
    );
  }
  const pairs = Object.entries(value);
  for (const [key, text] of pairs) {
    if (typeof text !== 'string') {
      throw new WebAttnError(
        'malformed-file',
        `header: ${METADATA_KEY}[${quoteName(key)}] must be a string, got ${describe(text)}`,
      );
    }
  }
  // Object.fromEntries defines properties, so a "__proto__" key stays an ordinary own key.
  return Object.fromEntries(pairs) as Record<string, string>;
}

/**
 * Rejects tensors whose bytes overlap. Empty tensors occupy no bytes and overlap nothing. Gaps
 * (bytes no tensor covers) are accepted, though the reference writer never leaves any.
 */
function checkNoOverlap(entries: readonly TensorEntry[]): void {
  const occupied = entries.filter((e) => e.end > e.begin).sort((a, b) => a.begin - b.begin);
  for (let i = 1; i < occupied.length; i++) {
    const previous = occupied[i - 1]!;
    const current = occupied[i]!;
    if (current.begin < previous.end) {
      throw new WebAttnError(
        'malformed-file',
        `header: tensor ${quoteName(current.name)} (data_offsets [${current.begin}, ${current.end}]) ` +
          `overlaps tensor ${quoteName(previous.name)} (data_offsets [${previous.begin}, ${previous.end}])`,
      );
    }
  }
}

/**
 * Decoding the header's bytes into a JSON value, with the failures a hostile file can cause turned
 * into 'malformed-file' errors.
 */
import { WebAttnError } from '../errors.js';

/**
 * Deepest JSON nesting accepted. A valid header needs 3 (file object, entry object, shape array);
 * the slack allows extra fields some writers add, and the bound stops a `[[[[...` bomb before the
 * parser sees it, whatever the JavaScript engine's parser does with deep input.
 */
export const MAX_JSON_DEPTH = 64;

// fatal: invalid UTF-8 throws instead of becoming U+FFFD. ignoreBOM: a byte order mark is kept, so
// JSON.parse rejects it, as the reference implementation does.
const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * Parses `length` bytes at `start` of `bytes` as UTF-8 JSON. Errors name the file offsets involved.
 */
export function parseHeaderJson(bytes: Uint8Array, start: number, length: number): unknown {
  const raw = bytes.subarray(start, start + length);
  checkDepth(raw, start);
  let text: string;
  try {
    text = decoder.decode(raw);
  } catch {
    throw new WebAttnError(
      'malformed-file',
      `header (bytes ${start} to ${start + length} of the file) is not valid UTF-8`,
    );
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    // Any error at all, not only SyntaxError: a RangeError from a parser running out of stack must
    // reach the caller as a malformed file too.
    const reason = error instanceof Error ? error.message : String(error);
    throw new WebAttnError(
      'malformed-file',
      `header (${length} bytes at file offset ${start}) is not valid JSON: ${reason}`,
    );
  }
}

/**
 * Rejects nesting deeper than {@link MAX_JSON_DEPTH}. Scans bytes, not characters: the brackets,
 * quote and backslash are ASCII, and no byte of a multi-byte UTF-8 sequence is ASCII.
 */
function checkDepth(raw: Uint8Array, fileOffset: number): void {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i]!;
    if (inString) {
      if (c === 0x5c)
        i++; // backslash: skip the escaped byte, which may be a quote
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) {
      inString = true;
    } else if (c === 0x7b || c === 0x5b) {
      if (++depth > MAX_JSON_DEPTH) {
        throw new WebAttnError(
          'malformed-file',
          `header JSON nests deeper than ${MAX_JSON_DEPTH} levels at file offset ${fileOffset + i}`,
        );
      }
    } else if (c === 0x7d || c === 0x5d) {
      depth--; // unbalanced brackets are left for JSON.parse to report
    }
  }
}

/**
 * Shape checks shared by the reader (hostile input) and the writer (caller input): the same rules
 * on both sides, so that whatever the writer produces the reader accepts.
 */

/** Highest rank accepted. Real checkpoints stay far below it; the bound keeps a header from listing a million dims. */
export const MAX_RANK = 8;

/**
 * Checks that `shape` is an array of at most {@link MAX_RANK} non-negative safe integers whose
 * product is a safe integer, and returns that product. On failure calls `fail` with a sentence
 * that starts with "shape".
 */
export function checkedShapeSize(shape: unknown, fail: (message: string) => never): number {
  if (!Array.isArray(shape)) return fail(`shape: expected an array, got ${describe(shape)}`);
  if (shape.length > MAX_RANK) {
    return fail(`shape: rank ${shape.length} is over the limit of ${MAX_RANK}`);
  }
  // BigInt so that the product cannot silently lose precision past 2^53.
  let size = 1n;
  for (const [i, extent] of shape.entries()) {
    if (typeof extent !== 'number' || !Number.isSafeInteger(extent) || extent < 0) {
      return fail(`shape[${i}]: expected a non-negative integer, got ${describe(extent)}`);
    }
    size *= BigInt(extent);
  }
  if (size > BigInt(Number.MAX_SAFE_INTEGER)) {
    return fail(`shape [${shape.join(', ')}]: ${size} elements is more than 2^53 - 1`);
  }
  return Number(size);
}

/** A short description of a JSON-ish value for error messages, never longer than about 60 characters. */
export function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (Array.isArray(value)) return `an array of length ${value.length}`;
  if (value === null) return 'null';
  if (typeof value === 'object') return 'an object';
  if (typeof value === 'bigint') return `${value}n`;
  const text = typeof value === 'string' ? JSON.stringify(value) : String(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

/** A tensor name quoted for error messages, shortened when long (a hostile name can be megabytes). */
export function quoteName(name: string): string {
  const text = JSON.stringify(name);
  return text.length > 120 ? `${text.slice(0, 117)}..."` : text;
}

/**
 * Why an input was refused. Codes are stable strings so that callers can branch on them without
 * parsing messages.
 */
export type WebAttnErrorCode =
  | 'invalid-argument'
  | 'shape-mismatch'
  | 'dtype-mismatch'
  | 'heads-not-divisible'
  | 'limit-exceeded'
  | 'missing-feature'
  | 'no-adapter'
  | 'disposed'
  | 'malformed-file'
  | 'unsupported';

/**
 * The one error type of webattn. Raised on the host, before anything is dispatched, with a message
 * that names the argument, what was expected and what was given.
 */
export class WebAttnError extends Error {
  override readonly name = 'WebAttnError';
  constructor(
    /** Machine-readable reason. */
    readonly code: WebAttnErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** Throws a {@link WebAttnError} with `code` unless `condition` holds. */
export function check(condition: boolean, code: WebAttnErrorCode, message: () => string): asserts condition {
  if (!condition) throw new WebAttnError(code, message());
}

/** Parsers for flag values; each error names the flag and what it accepts. */
import { InvalidArgumentError } from 'commander';

/** `--sizes 4096,8192`: positive integers, comma-separated. */
export function parseSizes(value: string): number[] {
  const sizes = value.split(',').map((s) => Number(s.trim()));
  if (sizes.length === 0 || sizes.some((n) => !Number.isSafeInteger(n) || n <= 0)) {
    throw new InvalidArgumentError(
      `expected positive integers separated by commas (e.g. 4096,8192), got '${value}'`,
    );
  }
  return sizes;
}

/** A positive integer flag such as `--iters`. */
export function parsePositiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n <= 0)
    throw new InvalidArgumentError(`expected a positive integer, got '${value}'`);
  return n;
}

/** A non-negative integer flag such as `--warmup`. */
export function parseCount(value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 0)
    throw new InvalidArgumentError(`expected a non-negative integer, got '${value}'`);
  return n;
}

/** `--config '{...}'`: a JSON object. */
export function parseConfig(value: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    throw new InvalidArgumentError(`expected a JSON object, got '${value}'`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new InvalidArgumentError(`expected a JSON object, got '${value}'`);
  }
  return parsed as Record<string, unknown>;
}

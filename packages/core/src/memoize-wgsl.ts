/**
 * Generated WGSL remembered per generator and arguments. Kernels are specialised when they are
 * generated, and an op generates its kernels on every call: the MLA decode's tensor-core kernel
 * takes about 0.2 ms of host time to write (25 KB), longer than the kernel runs at small batches,
 * and a decode calls it once per layer and token. A generator wrapped here writes each distinct
 * kernel once; later calls return the same string, which the pipeline cache then finds without
 * hashing it again.
 */
import { WebAttnError } from './errors.js';

/** Distinct argument lists remembered per generator; past it the oldest is forgotten. */
const REMEMBERED = 64;

/**
 * `generate`, remembering its result per argument list (compared as JSON). For pure generators of
 * plain data (numbers, strings, booleans, arrays and objects of them): an argument holding a
 * function is an error, since JSON would drop it and two different calls could look the same.
 * Numbers JSON cannot write (infinities, NaN) are keyed by name, not as JSON's null.
 */
export function memoizeWgsl<A extends unknown[]>(generate: (...args: A) => string): (...args: A) => string {
  const remembered = new Map<string, string>();
  return (...args: A) => {
    const key = JSON.stringify(args, (name, value) => {
      if (typeof value === 'function') {
        throw new WebAttnError(
          'invalid-argument',
          `memoizeWgsl(${generate.name}): argument field '${name}' is a function; only plain data can be remembered`,
        );
      }
      // Written as a string that starts with NUL, which no configuration string does.
      if (typeof value === 'number' && !Number.isFinite(value)) return `\u0000${value}`;
      return value;
    });
    let code = remembered.get(key);
    if (code === undefined) {
      code = generate(...args);
      if (remembered.size >= REMEMBERED) remembered.delete(remembered.keys().next().value as string);
      remembered.set(key, code);
    }
    return code;
  };
}

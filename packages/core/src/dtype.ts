import { WebAttnError } from './errors.js';

/** Storage precision of a tensor. Kernels always accumulate in f32. */
export type Dtype = 'f32' | 'f16';

/** Every dtype a tensor can have, for validating user input. */
export const DTYPES: readonly Dtype[] = ['f32', 'f16'];

/** Bytes per element of a dtype. */
export function bytesPerElement(dtype: Dtype): number {
  return dtype === 'f32' ? 4 : 2;
}

/** Throws unless `value` names a dtype; `argument` is the name shown in the error. */
export function assertDtype(value: unknown, argument: string): asserts value is Dtype {
  if (value !== 'f32' && value !== 'f16') {
    throw new WebAttnError(
      'dtype-mismatch',
      `${argument}: expected one of ${DTYPES.join(', ')}, got ${JSON.stringify(value)}`,
    );
  }
}

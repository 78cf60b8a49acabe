/** Host side of the non-finite check on f16 results. */
import { dispatch, type Gpu, memoizeWgsl, Tensor, WebAttnError } from '@webattn/core';
import { FINITE_PARAMS, FINITE_WORKGROUP, nonFiniteWgsl } from './finite.wgsl.js';

// Each kernel's WGSL is written once per configuration (see memoizeWgsl).
const nonFiniteCode = memoizeWgsl(nonFiniteWgsl);

/**
 * Throws a `limit-exceeded` WebAttnError (after the caller's cleanup, which `onError` does) when any
 * of `tensors` holds inf or NaN. One 4-byte readback for all of them.
 */
export async function assertFinite(
  gpu: Gpu,
  op: string,
  tensors: readonly (readonly [string, Tensor])[],
  onError: () => void,
): Promise<void> {
  const flag = Tensor.zeros(gpu, [1]);
  let bad: string[] = [];
  try {
    for (const [index, [, t]] of tensors.entries()) {
      const words = Math.ceil(t.byteLength / 4);
      await dispatch(gpu, {
        label: `${op} finite check`,
        code: nonFiniteCode(t.dtype),
        buffers: [t, flag],
        params: { layout: FINITE_PARAMS, values: { count: t.size, bit: 2 ** index } },
        workgroups: Math.ceil(words / FINITE_WORKGROUP),
      });
    }
    const word = new Uint32Array((await flag.read()).buffer)[0];
    bad = tensors.filter((_, index) => ((word ?? 0) >>> index) & 1).map(([name]) => name);
  } finally {
    flag.dispose();
  }
  if (bad.length > 0) {
    onError();
    throw new WebAttnError(
      'limit-exceeded',
      `${op}: the ${tensors[0]?.[1].dtype} result (${bad.join(', ')}) overflowed to inf/NaN: without a softmax, |q·k| grows with ‖q‖‖k‖ and n; normalise q and k (l2), lower scale, or run in f32`,
    );
  }
}

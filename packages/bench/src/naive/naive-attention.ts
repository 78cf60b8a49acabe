/** The materialised-scores attention the bench shows beside the flash kernel. */
import { check, dispatch, type Gpu, Tensor } from '@webattn/core';
import { NAIVE_PARAMS, naiveOutputWgsl, naiveScoresWgsl, naiveSoftmaxWgsl } from './naive-attention.wgsl.js';

/** Bytes of the score matrix for these sizes, to tell whether it fits before allocating. */
export function naiveScoreBytes(b: number, hq: number, n: number, nk: number): number {
  return b * hq * n * nk * 4;
}

/**
 * Dense attention through an explicit score matrix: q `[b, n, hq, d]`, k/v `[b, nk, hkv, d|dv]`.
 * The scores of as many query heads as `maxScoreBytes` (by default the largest binding) holds are
 * materialised at a time, pass after pass over the heads.
 */
export async function naiveAttention(
  gpu: Gpu,
  q: Tensor,
  k: Tensor,
  v: Tensor,
  causal: boolean,
  maxScoreBytes = gpu.caps.limits.maxStorageBufferBindingSize,
): Promise<Tensor> {
  const [b, n, hq, d] = q.shape as [number, number, number, number];
  const [, nk, hkv] = k.shape as [number, number, number, number];
  const dv = v.shape[3]!;
  const perHead = naiveScoreBytes(b, 1, n, nk);
  check(
    perHead <= maxScoreBytes,
    'limit-exceeded',
    () =>
      `naiveAttention: one head's scores need ${perHead} bytes; this device binds at most ${maxScoreBytes}`,
  );
  const heads = Math.min(hq, Math.floor(maxScoreBytes / perHead));
  using scores = Tensor.empty(gpu, [b, heads, n, nk], 'f32');
  const o = Tensor.empty(gpu, [b, n, hq, dv], q.dtype);
  try {
    for (let headBase = 0; headBase < hq; headBase += heads) {
      const count = Math.min(heads, hq - headBase);
      const rows = b * count * n;
      const params = {
        layout: NAIVE_PARAMS,
        values: { n, nk, hq, hkv, headBase, heads: count, rows, scale: d ** -0.5, causal: causal ? 1 : 0 },
      };
      await dispatch(gpu, {
        label: 'naive scores',
        code: naiveScoresWgsl(q.dtype, d),
        buffers: [q, k, scores],
        params,
        workgroups: Math.ceil((rows * nk) / 256),
      });
      await dispatch(gpu, {
        label: 'naive softmax',
        code: naiveSoftmaxWgsl(),
        buffers: [scores],
        params,
        workgroups: rows,
      });
      await dispatch(gpu, {
        label: 'naive output',
        code: naiveOutputWgsl(q.dtype, dv),
        buffers: [scores, v, o],
        params,
        workgroups: Math.ceil((rows * dv) / 256),
      });
    }
  } catch (error) {
    o.dispose();
    throw error;
  }
  return o;
}

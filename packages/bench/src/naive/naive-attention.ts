/** The materialised-scores attention the bench shows beside the flash kernel. */
import { check, dispatch, type Gpu, Tensor } from '@webattn/core';
import { NAIVE_PARAMS, naiveOutputWgsl, naiveScoresWgsl, naiveSoftmaxWgsl } from './naive-attention.wgsl.js';

/** Bytes of the score matrix for these sizes, to tell whether it fits before allocating. */
export function naiveScoreBytes(b: number, hq: number, n: number, nk: number): number {
  return b * hq * n * nk * 4;
}

/** Dense attention through an explicit score matrix: q `[b, n, hq, d]`, k/v `[b, nk, hkv, d|dv]`. */
export async function naiveAttention(
  gpu: Gpu,
  q: Tensor,
  k: Tensor,
  v: Tensor,
  causal: boolean,
): Promise<Tensor> {
  const [b, n, hq, d] = q.shape as [number, number, number, number];
  const [, nk, hkv] = k.shape as [number, number, number, number];
  const dv = v.shape[3]!;
  const bytes = naiveScoreBytes(b, hq, n, nk);
  check(
    bytes <= gpu.caps.limits.maxStorageBufferBindingSize,
    'limit-exceeded',
    () =>
      `naiveAttention: the scores need ${bytes} bytes; this device binds at most ${gpu.caps.limits.maxStorageBufferBindingSize}`,
  );
  using scores = Tensor.empty(gpu, [b, hq, n, nk], 'f32');
  const o = Tensor.empty(gpu, [b, n, hq, dv], q.dtype);
  const rows = b * hq * n;
  const params = {
    layout: NAIVE_PARAMS,
    values: { n, nk, hq, hkv, rows, scale: d ** -0.5, causal: causal ? 1 : 0 },
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
  return o;
}

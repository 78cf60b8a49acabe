/**
 * The part of an MLA layer call that absorbed and unabsorbed attention share: from the hidden states,
 * the query's nope part and rotated rope part, and the normalised latent c_kv with the rotated rope
 * key. {@link MlaAttention} maps q_nope into latent space and attends over a latent cache; an eager
 * layer expands c_kv into per-head keys and values; both start here.
 */
import { dispatch, type Gpu, matmul, memoizeWgsl, Tensor } from '@webattn/core';
import type { MlaAbsorbedLayerWeights, MlaLayerConfig } from './layer.js';
import { MLA_LAYER_PARAMS, MLA_LAYER_WORKGROUP, mlaRmsNormWgsl, mlaRopeWgsl } from './layer.wgsl.js';

// Each kernel's WGSL is written once per configuration (see memoizeWgsl).
const mlaRmsNormCode = memoizeWgsl(mlaRmsNormWgsl);
const mlaRopeCode = memoizeWgsl(mlaRopeWgsl);

/** What {@link mlaProjections} returns for `T` tokens; the caller owns every tensor. */
export interface MlaProjections {
  /** `[T, heads · nope]`. */
  qNope: Tensor;
  /** The rotated rope part of the query, `[T, heads, rope]`. */
  qPe: Tensor;
  /** The normalised latent, `[T, kvLoraRank]`. */
  cKv: Tensor;
  /** The rotated rope key, `[T, rope]`. */
  kPe: Tensor;
}

/**
 * Projections of `hidden` `[T, hiddenSize]`: c_q = RMSNorm(q_a_proj x) (or x without a q rank),
 * q_nope and q_pe from it with RoPE on q_pe; `[c | k_pe] = kv_a_proj_with_mqa x`, c_kv = RMSNorm(c),
 * RoPE on k_pe. `cs` is the tokens' rope table ({@link mlaRopeTable}).
 */
export async function mlaProjections(
  gpu: Gpu,
  weights: Omit<MlaAbsorbedLayerWeights, 'wUk' | 'wUv'>,
  config: MlaLayerConfig,
  hidden: Tensor,
  cs: Tensor,
): Promise<MlaProjections> {
  const { heads, qLoraRank, kvLoraRank: r, qkRopeHeadDim: dr } = config.dims;
  const dtype = config.dtype ?? 'f32';
  const T = hidden.shape[0]!;
  const style = config.rope.style;
  const mm = (a: Tensor, b: Tensor) =>
    matmul(gpu, a, b, { transposeB: true, ...(config.tier && { tier: config.tier }) });
  const kernel = (label: string, code: string, buffers: Tensor[], workgroups: number) =>
    dispatch(gpu, {
      label,
      code,
      buffers,
      params: { layout: MLA_LAYER_PARAMS, values: { tokens: T, eps: config.normEps ?? 1e-6 } },
      workgroups,
    });
  const wg = (n: number) => Math.ceil(n / MLA_LAYER_WORKGROUP);
  const made: Tensor[] = [];
  const keep = (x: Tensor): Tensor => {
    made.push(x);
    return x;
  };
  try {
    // Query input c_q.
    using qa = qLoraRank ? await mm(hidden, weights.qAProj!) : undefined;
    using normed = qLoraRank ? Tensor.empty(gpu, [T, qLoraRank], dtype) : undefined;
    if (qa && normed) {
      const norm = mlaRmsNormCode({ dtype, width: qLoraRank!, stride: qLoraRank!, offset: 0 });
      await kernel('mla q norm', norm, [qa, weights.qALayernorm!, normed], T);
    }
    const cQ = normed ?? hidden;
    const qNope = keep(await mm(cQ, weights.qNopeProj));
    using qRope = await mm(cQ, weights.qRopeProj);
    const qPe = keep(Tensor.empty(gpu, [T, heads, dr], dtype));
    if (dr > 0) {
      const rope = mlaRopeCode({ dtype, heads, dim: dr, style, stride: heads * dr, offset: 0 });
      await kernel('mla q rope', rope, [qRope, cs, qPe], wg((T * heads * dr) / 2));
    }
    // The new cache entries.
    using kv = await mm(hidden, weights.kvAProjWithMqa);
    const cKv = keep(Tensor.empty(gpu, [T, r], dtype));
    const norm = mlaRmsNormCode({ dtype, width: r, stride: r + dr, offset: 0 });
    await kernel('mla kv norm', norm, [kv, weights.kvALayernorm, cKv], T);
    const kPe = keep(Tensor.empty(gpu, [T, dr], dtype));
    if (dr > 0) {
      const rope = mlaRopeCode({ dtype, heads: 1, dim: dr, style, stride: r + dr, offset: r });
      await kernel('mla k rope', rope, [kv, cs, kPe], wg((T * dr) / 2));
    }
    return { qNope, qPe, cKv, kPe };
  } catch (error) {
    for (const x of made) x.dispose();
    throw error;
  }
}

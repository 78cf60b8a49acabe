/**
 * The masked linear attention (the seed's operator), `O = (scale (Q Kᵀ) ⊙ M) V` with no softmax,
 * forward and backward, in three implementations.
 */
import { check, type Gpu, type Tensor } from '@webattn/core';
import { blockedBackward, blockedForward } from './blocked.js';
import { assertFinite } from './finite.js';
import { fusedBackward, fusedForward } from './fused.js';
import {
  type MaskedLinearAttentionContext,
  type MaskedLinearAttentionGradients,
  type MaskedLinearAttentionOptions,
  type MaskedLinearAttentionResult,
  maskedShape,
  resolveMaskedOptions,
} from './masked-call.js';
import { naiveBackward, naiveForward } from './naive.js';

/**
 * Masked linear attention: `o_i = Σ_j scale (q_i · k_j) M_ij v_j` per sequence and query head, the
 * mask broadcast over the batch and heads, K and V shared by GQA groups of query heads (MQA with one
 * kv head). Accumulates in f32 whatever the storage dtype. Checks every argument before dispatching.
 *
 * @param gpu - The device.
 * @param q - `[b, n, hq, dk]`.
 * @param k - `[b, n, hkv, dk]`, hq a multiple of hkv.
 * @param v - `[b, n, hkv, dv]`.
 * @param mask - `[1|b, 1|hq, n, n]`, any real weights (row i weighs query i's keys), q's dtype.
 * @param options - Scale (default 1), implementation, tier, f16 overflow check.
 * @returns o `[b, n, hq, dv]` in q's dtype, and the context for {@link maskedLinearAttentionBackward}.
 * @throws WebAttnError for a bad shape, dtype, head count, option or tier, or (f16) an output that overflowed.
 */
export async function maskedLinearAttention(
  gpu: Gpu,
  q: Tensor,
  k: Tensor,
  v: Tensor,
  mask: Tensor,
  options: MaskedLinearAttentionOptions = {},
): Promise<MaskedLinearAttentionResult> {
  const op = 'maskedLinearAttention';
  const shape = maskedShape(op, q, k, v, mask);
  const { scale, implementation, tier, checkFinite } = resolveMaskedOptions(gpu, op, q.dtype, options);
  const inputs = { q, k, v, mask };
  let o: Tensor;
  if (implementation === 'naive') o = await naiveForward(gpu, shape, scale, inputs);
  else if (implementation === 'blocked') o = await blockedForward(gpu, shape, scale, inputs);
  else o = await fusedForward(gpu, shape, scale, tier, inputs);
  if (checkFinite) await assertFinite(gpu, op, [['o', o]], () => o.dispose());
  const ctx: MaskedLinearAttentionContext = {
    gpu,
    q,
    k,
    v,
    mask,
    shape,
    scale,
    implementation,
    tier,
    checkFinite,
  };
  return { o, ctx };
}

/**
 * Gradients of the masked linear attention given `dO = ∂L/∂o`: with `A = scale Q Kᵀ` and
 * `G = dO Vᵀ`, `dM = A ⊙ G` (summed over the dims the mask broadcasts over, deterministically),
 * `dQ = scale (G ⊙ M) K`, `dK = scale (G ⊙ M)ᵀ Q`, `dV = (A ⊙ M)ᵀ dO` (dK, dV summed over each GQA
 * group). Runs the forward's implementation: `fused` runs dq, dk, dv on tensor cores on
 * `subgroup-matrix`, the blocked kernels elsewhere.
 *
 * @param ctx - From {@link maskedLinearAttention}; its inputs must still be alive.
 * @param dO - `[b, n, hq, dv]`, q's dtype.
 * @returns dq, dk, dv, dm shaped and typed like q, k, v and the mask; the caller owns them.
 * @throws WebAttnError if dO's shape or dtype is wrong, or (f16) a gradient overflowed.
 */
export async function maskedLinearAttentionBackward(
  ctx: MaskedLinearAttentionContext,
  dO: Tensor,
): Promise<MaskedLinearAttentionGradients> {
  const op = 'maskedLinearAttentionBackward';
  const { gpu, shape: s, scale } = ctx;
  const want = [s.batch, s.n, s.hq, s.dv];
  check(
    dO.shape.length === 4 && dO.shape.every((x, i) => x === want[i]),
    'shape-mismatch',
    () => `${op}: dO: expected shape [${want.join(', ')}], got [${dO.shape.join(', ')}]`,
  );
  check(
    dO.dtype === s.dtype,
    'dtype-mismatch',
    () => `${op}: dO: expected dtype ${s.dtype} (q's), got ${dO.dtype}`,
  );
  const inputs = { q: ctx.q, k: ctx.k, v: ctx.v, mask: ctx.mask };
  const grads =
    ctx.implementation === 'naive'
      ? await naiveBackward(gpu, s, scale, inputs, dO)
      : ctx.implementation === 'blocked'
        ? await blockedBackward(gpu, s, scale, inputs, dO)
        : await fusedBackward(gpu, s, scale, ctx.tier, inputs, dO);
  if (ctx.checkFinite) {
    await assertFinite(gpu, op, Object.entries(grads), () => {
      for (const t of Object.values(grads)) t.dispose();
    });
  }
  return grads;
}

/**
 * Recurrent decode of lightning attention (spec §2, "recurrent form"): one new token per sequence,
 * `S ← λ_h S + kᵀ v`, `o = scale · q S`. Fed the final state of a prefix, its output is the last row
 * of {@link lightningAttention} over the prefix and the token.
 */
import { check, dispatch, type Gpu, memoizeWgsl, pickTier, Tensor, type Tier } from '@webattn/core';
import { overflowed, overflowFlag } from '../lightning/kernels.js';
import { throwF16Overflow } from '../lightning/lightning-forward.js';
import { checkDtype, checkShape, checkTensor, resolveDecays, resolveScale } from '../lightning/options.js';
import { DECODE_PARAMS, DECODE_WORKGROUP, lightningDecodeWgsl } from './decode.wgsl.js';

// Each kernel's WGSL is written once per configuration (see memoizeWgsl).
const lightningDecodeCode = memoizeWgsl(lightningDecodeWgsl);

/** Options of {@link lightningDecode}. */
export interface LightningDecodeOptions {
  /** Per query head decay `λ_h`, `[hq]`, each in [0, 1]. Give exactly one of `decays` and `slopes`. */
  decays?: ArrayLike<number>;
  /** Per query head slopes, `[hq]`, each finite and >= 0: `λ_h = exp(-slope_h)`. */
  slopes?: ArrayLike<number>;
  /** Multiplies q·state; `1 / sqrt(dk)` by default, as in the forward. */
  scale?: number;
  /** Write the new state over `state` instead of into a new tensor. */
  inPlace?: boolean;
  /** Kernel tier; it fixes the storage dtype. The fastest for q's dtype by default. */
  tier?: Tier;
  /** In f16, raise a WebAttnError when o overflows (reads a flag back); true by default for f16. */
  checkFinite?: boolean;
}

/** What {@link lightningDecode} returns. */
export interface LightningDecodeResult {
  /** The token's output, `[batch, hq, dv]`, q's dtype. */
  o: Tensor;
  /** The state after the token, f32 `[batch, hq, dk, dv]`: the given tensor when `inPlace`, else a new one. */
  state: Tensor;
}

/**
 * One decode step for a batch of sequences: q `[batch, hq, dk]`, k `[batch, hkv, dk]`, v
 * `[batch, hkv, dv]` (storage f32 or f16), state f32 `[batch, hq, dk, dv]` (zeros before the first
 * token). Matches the reference's `lightningAttentionDecode`.
 *
 * @throws WebAttnError for any invalid argument, before dispatching; in f16 when o overflows.
 */
export async function lightningDecode(
  gpu: Gpu,
  q: Tensor,
  k: Tensor,
  v: Tensor,
  state: Tensor,
  options: LightningDecodeOptions,
): Promise<LightningDecodeResult> {
  const op = 'lightningDecode';
  check(
    typeof options === 'object' && options !== null,
    'invalid-argument',
    () => `${op}: options: expected an object with decays or slopes, got ${String(options)}`,
  );
  for (const [name, t] of [
    ['q', q],
    ['k', k],
    ['v', v],
    ['state', state],
  ] as const) {
    checkTensor(op, name, t, gpu);
  }
  check(
    q.shape.length === 3 && k.shape.length === 3 && v.shape.length === 3,
    'shape-mismatch',
    () =>
      `${op}: expected q, k, v of rank 3 [batch, heads, dim], got [${q.shape.join(', ')}], [${k.shape.join(', ')}], [${v.shape.join(', ')}]`,
  );
  const [batch, hq, dk] = q.shape as [number, number, number];
  const [hkv, dv] = [k.shape[1]!, v.shape[2]!];
  check(
    hq >= 1 && dk >= 1 && hkv >= 1 && dv >= 1,
    'shape-mismatch',
    () => `${op}: expected heads and dims >= 1`,
  );
  checkShape(op, 'k', k, [batch, hkv, dk]);
  checkShape(op, 'v', v, [batch, hkv, dv]);
  check(
    hq % hkv === 0,
    'heads-not-divisible',
    () => `${op}: q has ${hq} heads, not a multiple of k's and v's ${hkv}`,
  );
  checkDtype(op, 'k', k, q.dtype, "q's");
  checkDtype(op, 'v', v, q.dtype, "q's");
  checkShape(op, 'state', state, [batch, hq, dk, dv]);
  checkDtype(op, 'state', state, 'f32', 'states are kept in f32');
  pickTier(gpu.caps, q.dtype, options.tier, op);
  const decays = resolveDecays(op, options, hq);
  const scale = resolveScale(op, options.scale, dk);
  const inPlace = options.inPlace === true;
  const checkFinite = q.dtype === 'f16' && options.checkFinite !== false;
  const scratch: Tensor[] = [];
  const results: Tensor[] = [];
  try {
    const decayTensor = Tensor.from(gpu, decays, [hq]);
    scratch.push(decayTensor);
    const flag = checkFinite ? overflowFlag(gpu) : undefined;
    if (flag) scratch.push(flag);
    const next = inPlace ? state : Tensor.empty(gpu, state.shape);
    if (!inPlace) results.push(next);
    const o = Tensor.empty(gpu, [batch, hq, dv], q.dtype);
    results.push(o);
    const count = batch * hq * dv;
    if (count > 0) {
      await dispatch(gpu, {
        label: 'lightning decode',
        code: lightningDecodeCode({ dtype: q.dtype, inPlace, checkFinite }),
        buffers: [q, k, v, decayTensor, state, ...(inPlace ? [] : [next]), ...(flag ? [flag] : []), o],
        params: {
          layout: DECODE_PARAMS,
          values: { batch, hq, hkv, group: hq / hkv, dk, dv, scale },
        },
        workgroups: Math.ceil(count / DECODE_WORKGROUP),
      });
    }
    if (flag && (await overflowed(flag))) throwF16Overflow(op, 'o');
    return { o, state: next };
  } catch (error) {
    for (const t of results) t.dispose();
    throw error;
  } finally {
    for (const t of scratch) t.dispose();
  }
}

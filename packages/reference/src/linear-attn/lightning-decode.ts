/**
 * One decode step of lightning attention (spec §2, "recurrent form"): the newest token of each
 * sequence, its state in and out. A token's tensors `[batch, hq, dk]` are the dense tensors of a
 * one-token call, `[batch, 1, hq, dk]`, so the step is the recurrence run for n = 1.
 */
import type { LightningAttentionOptions } from './lightning-options.js';
import { lightningAttentionRecurrent } from './lightning-recurrent.js';

/** Sizes and scale of a decode step: those of a dense call without the length, which is one token. */
export type LightningDecodeOptions = Omit<LightningAttentionOptions, 'n' | 'cuSeqlens'>;

/** The tensors of a decode step: one token per sequence and the sequences' states. */
export interface LightningDecodeInputs {
  /** The newest token's query, `[batch, hq, dk]`. */
  q: ArrayLike<number>;
  /** Its key, `[batch, hkv, dk]`. */
  k: ArrayLike<number>;
  /** Its value, `[batch, hkv, dv]`. */
  v: ArrayLike<number>;
  /** Per query head decay `λ_h`, `[hq]`, each in [0, 1]. */
  decays: ArrayLike<number>;
  /** The state after the previous token, `[batch, hq, dk, dv]` (zeros before the first token). */
  state: ArrayLike<number>;
}

/** What a decode step returns. */
export interface LightningDecodeOutput {
  /** The newest token's output, `[batch, hq, dv]`. */
  o: Float32Array;
  /** The state after the newest token, `[batch, hq, dk, dv]`, for the next step. */
  state: Float32Array;
}

/**
 * `S ← λ_h S + kᵀ v`, `o = scale · q S` for one token of each sequence. Fed a prefix's final state,
 * its o is the last row of {@link lightningAttention} over the prefix and the token.
 *
 * @param inputs - The token's q, k, v, the decays and the state before it.
 * @param options - Sizes and scale, as in the forward.
 * @throws Error if a size, decay or scale is invalid or an input's length does not match.
 */
export function lightningAttentionDecode(
  inputs: LightningDecodeInputs,
  options: LightningDecodeOptions,
): LightningDecodeOutput {
  const { q, k, v, decays, state } = inputs;
  const result = lightningAttentionRecurrent({ q, k, v, decays, initialState: state }, { ...options, n: 1 });
  return { o: result.o, state: result.finalState };
}

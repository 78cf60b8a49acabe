/**
 * TransnormerLLM's decayed ("lightning") linear attention, chunkwise in O(n·dk·dv) (spec §2):
 * kernel 1 computes every chunk's own state term, kernel 2 scans the chunks of each sequence into
 * the state entering each chunk (and the final state), kernel 3 adds the intra-chunk quadratic
 * part under the decay mask to the part read from that state.
 */
import { type Gpu, type Tensor, type Tier, WebAttnError } from '@webattn/core';
import {
  chunkOutput,
  l2NormalizeRows,
  overflowed,
  overflowFlag,
  type PlanTensors,
  planTensors,
  stateTensors,
} from './kernels.js';
import { type LightningAttentionOptions, type LightningPlan, planLightning } from './options.js';
import { scannedStates } from './state-pass.js';

/**
 * What {@link lightningAttentionBackward} needs from the forward. It holds the caller's q, k, v and
 * initial state (keep them alive until the backward) and owns the tensors listed in `owned`; free
 * them with {@link disposeLightningContext}.
 */
export interface LightningAttentionContext {
  /** The device. */
  gpu: Gpu;
  /** The checked call. */
  plan: LightningPlan;
  /** The tier that ran. */
  tier: Tier;
  /** The caller's q, k, v. */
  q: Tensor;
  /** Keys, as given. */
  k: Tensor;
  /** Values, as given. */
  v: Tensor;
  /** The q and k the kernels read: normalised copies with `normalizeQk`, else q and k. */
  qUsed: Tensor;
  /** See `qUsed`. */
  kUsed: Tensor;
  /** The caller's initial state, if any. */
  initialState?: Tensor;
  /** Decays and chunk table on the GPU. */
  tensors: PlanTensors;
  /** Tensors the context owns. */
  owned: Tensor[];
}

/** What {@link lightningAttention} returns; the caller owns `o`, `finalState` and the context. */
export interface LightningAttentionResult {
  /** `[batch, n, hq, dv]`, q's dtype. */
  o: Tensor;
  /** The state after each sequence's last token, f32 `[sequences, hq, dk, dv]`. */
  finalState: Tensor;
  /** For the backward. */
  ctx: LightningAttentionContext;
}

/** Frees the tensors a context owns (not the caller's inputs, not o or finalState). Safe twice. */
export function disposeLightningContext(ctx: LightningAttentionContext): void {
  for (const t of ctx.owned) t.dispose();
  ctx.owned.length = 0;
}

/** Throws the overflow error of an f16 output. */
export function throwF16Overflow(op: string, what: string): never {
  throw new WebAttnError(
    'limit-exceeded',
    `${op}: ${what} left f16's range (|x| > 65504, or inf/NaN): without a softmax the scores grow with |q|·|k| and the length; pass normalizeQk: true (or scale the inputs down), or use f32 tensors`,
  );
}

/**
 * Decayed causal linear attention, chunkwise: within each sequence
 * `o_t = scale · (Σ_{j <= t} λ_h^(t-j) (q_t · k_j) v_j + λ_h^(t+1) q_t S_init)`, and the state after
 * the last token, `S = λ^len S_init + Σ_j λ^(len-1-j) k_jᵀ v_j`. q `[b, n, hq, dk]`, k
 * `[b, n, hkv, dk]`, v `[b, n, hkv, dv]` (hq a multiple of hkv; query head h reads kv head
 * `floor(h / (hq / hkv))`), f32 or f16 storage with f32 accumulation; states f32. Matches the
 * reference's `lightningAttention`.
 *
 * @throws WebAttnError for any invalid argument, before dispatching anything; in f16, when an
 *   output overflows (unless `checkFinite: false`).
 */
export async function lightningAttention(
  gpu: Gpu,
  q: Tensor,
  k: Tensor,
  v: Tensor,
  options: LightningAttentionOptions,
): Promise<LightningAttentionResult> {
  const plan = planLightning('lightningAttention', gpu, q, k, v, options);
  return runLightningForward(gpu, plan, q, k, v, options.initialState);
}

/**
 * The forward of a checked plan (what {@link lightningAttention} runs after validation).
 *
 * @throws WebAttnError when `plan.checkFinite` and an output leaves f16's range.
 */
export async function runLightningForward(
  gpu: Gpu,
  plan: LightningPlan,
  q: Tensor,
  k: Tensor,
  v: Tensor,
  initialState?: Tensor,
): Promise<LightningAttentionResult> {
  const op = 'lightningAttention';
  const owned: Tensor[] = [];
  const keep = (t: Tensor) => {
    owned.push(t);
    return t;
  };
  const scratch: Tensor[] = [];
  try {
    const tensors = planTensors(gpu, plan);
    keep(tensors.table);
    const qUsed = plan.normalizeQk ? keep(await l2NormalizeRows(gpu, q)) : q;
    const kUsed = plan.normalizeQk ? keep(await l2NormalizeRows(gpu, k)) : k;
    const flag = plan.checkFinite ? overflowFlag(gpu) : undefined;
    if (flag) scratch.push(flag);
    const scanned = await scannedStates(gpu, plan, tensors, kUsed, v, false, {
      ...(initialState && { start: initialState }),
      writeEnd: true,
      ...(flag && { overflow: flag }),
    });
    const states = scanned.states;
    scratch.push(...stateTensors(states));
    const finalState = scanned.end as Tensor;
    const result: Tensor[] = [finalState];
    try {
      const o = await chunkOutput(gpu, plan, tensors, 'o', {
        x: qUsed,
        y: kUsed,
        z: v,
        states,
        ...(flag && { overflow: flag }),
      });
      result.push(o);
      if (flag && (await overflowed(flag))) throwF16Overflow(op, 'o');
      const ctx: LightningAttentionContext = {
        gpu,
        plan,
        tier: plan.tier,
        q,
        k,
        v,
        qUsed,
        kUsed,
        ...(initialState && { initialState }),
        tensors,
        owned,
      };
      return { o, finalState, ctx };
    } catch (error) {
      for (const t of result) t.dispose();
      throw error;
    }
  } catch (error) {
    for (const t of owned) t.dispose();
    throw error;
  } finally {
    for (const t of scratch) t.dispose();
  }
}

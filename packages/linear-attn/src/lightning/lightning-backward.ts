/**
 * Backward of the chunkwise lightning attention (spec §2): the forward's chunk states are recomputed
 * (kernels 1 and 2: cheaper than keeping `chunks x hq x dk x dv` floats alive between the passes),
 * giving dq (kernel 3 over dO, v, k and the entering states); then the same two kernels run over
 * q and dO in reverse chunk order from dFinalState, giving the gradient of the state leaving each
 * chunk and dInitialState; kernel 3 in its anti-causal form gives dk and dv, summed over each GQA
 * group inside the workgroup. Deterministic: no atomics.
 */
import { check, type Tensor } from '@webattn/core';
import { chunkOutput, l2NormalizeRowsBackward, overflowed, overflowFlag, stateTensors } from './kernels.js';
import { type LightningAttentionContext, throwF16Overflow } from './lightning-forward.js';
import { checkDtype, checkShape, checkTensor } from './options.js';
import { scannedStates } from './state-pass.js';

/** Gradients of a lightning attention call's inputs; the caller owns them. */
export interface LightningAttentionGrads {
  /** `[batch, n, hq, dk]`, q's dtype. */
  dq: Tensor;
  /** `[batch, n, hkv, dk]`, summed over the query heads of each GQA group. */
  dk: Tensor;
  /** `[batch, n, hkv, dv]`, likewise. */
  dv: Tensor;
  /** f32 `[sequences, hq, dk, dv]`; present when the forward had an initial state or dFinalState is given. */
  dInitialState?: Tensor;
}

/**
 * Gradients of {@link lightningAttention} from dO `[batch, n, hq, dv]` (o's dtype) and optionally
 * dFinalState (f32 `[sequences, hq, dk, dv]`), as the reference's `lightningAttentionBackward`.
 * With `normalizeQk` the gradients go through the normalisation to the caller's q and k. The
 * decays get no gradient (fixed in TransnormerLLM).
 *
 * @throws WebAttnError for an invalid argument or a disposed context, before dispatching; in f16
 *   when a gradient overflows (unless the forward had `checkFinite: false`).
 */
export async function lightningAttentionBackward(
  ctx: LightningAttentionContext,
  dO: Tensor,
  dFinalState?: Tensor,
): Promise<LightningAttentionGrads> {
  const op = 'lightningAttentionBackward';
  const { gpu, plan, tensors } = ctx;
  check(ctx.owned.length > 0, 'disposed', () => `${op}: ctx: the context was disposed`);
  checkTensor(op, 'dO', dO, gpu);
  checkShape(op, 'dO', dO, [plan.batch, plan.n, plan.hq, plan.dv]);
  checkDtype(op, 'dO', dO, plan.dtype, "o's");
  if (dFinalState !== undefined) {
    checkTensor(op, 'dFinalState', dFinalState, gpu);
    checkShape(op, 'dFinalState', dFinalState, [plan.spans.length, plan.hq, plan.dk, plan.dv]);
    checkDtype(op, 'dFinalState', dFinalState, 'f32', 'states are kept in f32');
  }
  for (const [name, t] of [
    ['q', ctx.q],
    ['k', ctx.k],
    ['v', ctx.v],
  ] as const) {
    check(!t.disposed, 'disposed', () => `${op}: the forward's ${name} was disposed`);
  }
  const scratch: Tensor[] = [];
  const results: Tensor[] = [];
  const result = (t: Tensor) => {
    results.push(t);
    return t;
  };
  try {
    const flag = plan.checkFinite ? overflowFlag(gpu) : undefined;
    if (flag) scratch.push(flag);
    const overflow = flag ? { overflow: flag } : {};
    const { qUsed, kUsed, v } = ctx;
    // dq, from the states entering each chunk.
    const { states: entering } = await scannedStates(gpu, plan, tensors, kUsed, v, false, {
      ...(ctx.initialState && { start: ctx.initialState }),
      writeEnd: false,
      ...overflow,
    });
    scratch.push(...stateTensors(entering));
    let dq = result(
      await chunkOutput(gpu, plan, tensors, 'dq', { x: dO, y: v, z: kUsed, states: entering, ...overflow }),
    );
    // dk, dv and dInitialState, from the gradients of the states leaving each chunk, written over
    // the entering states (as large as the call's inputs at d = 128: one allocation fewer).
    const wantInitial = ctx.initialState !== undefined || dFinalState !== undefined;
    const { states: leaving, end: dInitialState } = await scannedStates(gpu, plan, tensors, qUsed, dO, true, {
      ...(dFinalState && { start: dFinalState }),
      writeEnd: wantInitial,
      ...overflow,
      into: entering,
    });
    if (dInitialState) result(dInitialState);
    let dk = result(
      await chunkOutput(gpu, plan, tensors, 'dk', { x: v, y: dO, z: qUsed, states: leaving, ...overflow }),
    );
    const dv = result(
      await chunkOutput(gpu, plan, tensors, 'dv', {
        x: kUsed,
        y: qUsed,
        z: dO,
        states: leaving,
        ...overflow,
      }),
    );
    if (plan.normalizeQk) {
      const dqRaw = await l2NormalizeRowsBackward(gpu, ctx.q, dq);
      scratch.push(dq);
      dq = result(dqRaw);
      const dkRaw = await l2NormalizeRowsBackward(gpu, ctx.k, dk);
      scratch.push(dk);
      dk = result(dkRaw);
    }
    if (flag && (await overflowed(flag))) throwF16Overflow(op, 'a gradient');
    return { dq, dk, dv, ...(dInitialState && { dInitialState }) };
  } catch (error) {
    for (const t of results) t.dispose();
    throw error;
  } finally {
    for (const t of scratch) t.dispose();
  }
}

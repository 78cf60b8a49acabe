/**
 * Lightning attention token by token (spec §2, "recurrent form"): per sequence and query head, a
 * `dk × dv` state `S_t = λ S_{t-1} + k_tᵀ v_t` and `o_t = scale · q_t S_t`, so the current token
 * enters undecayed and the state before token 0 is the initial state. The linear-time form that
 * decode and the chunked kernels' inter-chunk passes follow, in f64.
 */
import { tokenOffset } from '../attention-shape.js';
import {
  checkOutputGradients,
  type LightningAttentionGradients,
  type LightningAttentionInputs,
  type LightningAttentionOptions,
  type LightningAttentionOutput,
  type LightningAttentionOutputGradients,
  type LightningCall,
  type LightningOutputF64,
  lightningOutputF32,
  resolveLightningCall,
  stateOffset,
} from './lightning-options.js';

/** One sequence and head of a call, located: the offsets the recurrence reads and writes. */
interface HeadRun {
  start: number;
  length: number;
  h: number;
  kvHead: number;
  decay: number;
  /** Offset of this sequence and head's state. */
  sBase: number;
}

function forEachHeadRun(call: LightningCall, body: (run: HeadRun) => void): void {
  call.spans.forEach(({ start, length }, s) => {
    for (let h = 0; h < call.hq; h++) {
      const kvHead = Math.floor(h / call.group);
      body({ start, length, h, kvHead, decay: call.decays[h]!, sBase: stateOffset(call, s, h) });
    }
  });
}

/** The run's initial state as a fresh `dk × dv` f64 matrix, zeros when none is given. */
function initialMatrix(call: LightningCall, initialState: ArrayLike<number> | undefined, sBase: number) {
  const state = new Float64Array(call.dk * call.dv);
  if (initialState !== undefined) for (let e = 0; e < state.length; e++) state[e] = initialState[sBase + e]!;
  return state;
}

/**
 * `S ← λ S + k_tᵀ v_t` for the token at packed index `token`, in place.
 */
function step(
  call: LightningCall,
  inputs: LightningAttentionInputs,
  run: HeadRun,
  token: number,
  S: Float64Array,
) {
  const { hkv, dk, dv } = call;
  const total = call.batch * call.n;
  const kBase = tokenOffset(0, token, run.kvHead, total, hkv, dk);
  const vBase = tokenOffset(0, token, run.kvHead, total, hkv, dv);
  for (let a = 0; a < dk; a++) {
    const ka = inputs.k[kBase + a]!;
    for (let c = 0; c < dv; c++) S[a * dv + c] = run.decay * S[a * dv + c]! + ka * inputs.v[vBase + c]!;
  }
}

/** {@link lightningAttentionRecurrent} in f64. */
export function lightningAttentionRecurrentF64(
  inputs: LightningAttentionInputs,
  options: LightningAttentionOptions,
): LightningOutputF64 {
  const call = resolveLightningCall(inputs, options);
  const { hq, dk, dv, scale } = call;
  const total = call.batch * call.n;
  const o = new Float64Array(total * hq * dv);
  const finalState = new Float64Array(call.spans.length * call.stateSize);
  forEachHeadRun(call, (run) => {
    const S = initialMatrix(call, inputs.initialState, run.sBase);
    for (let t = 0; t < run.length; t++) {
      step(call, inputs, run, run.start + t, S);
      const qBase = tokenOffset(0, run.start + t, run.h, total, hq, dk);
      const oBase = tokenOffset(0, run.start + t, run.h, total, hq, dv);
      for (let a = 0; a < dk; a++) {
        const qa = scale * inputs.q[qBase + a]!;
        for (let c = 0; c < dv; c++) o[oBase + c]! += qa * S[a * dv + c]!;
      }
    }
    finalState.set(S, run.sBase);
  });
  return { o, finalState };
}

/**
 * Lightning attention by its recurrence, one token at a time: `S_t = λ_h S_{t-1} + k_tᵀ v_t`,
 * `o_t = scale · q_t S_t`, with `S_{-1}` the initial state (zeros by default) and the last `S` the
 * final state. Equal to {@link lightningAttention} (the quadratic form) up to rounding; accumulated
 * in f64, rounded once to f32.
 *
 * @param inputs - q, k, v, the per-head decays and optionally the initial state.
 * @param options - Sizes, scale and optionally packed sequences.
 * @throws Error as {@link lightningAttention} does.
 */
export function lightningAttentionRecurrent(
  inputs: LightningAttentionInputs,
  options: LightningAttentionOptions,
): LightningAttentionOutput {
  return lightningOutputF32(lightningAttentionRecurrentF64(inputs, options));
}

/**
 * Gradients of {@link lightningAttentionRecurrent} by running the recurrence backwards (spec §2: a
 * state over dO and q, in reverse): with `G` the gradient of the current state, starting at
 * dFinalState, for t from the last token down: `G ← G + scale · q_tᵀ dO_t`, `dq_t = scale · S_t dO_t`,
 * `dk_t = G v_t`, `dv_t = Gᵀ k_t`, `G ← λ G`; the G left at the end is the initial state's gradient.
 * The forward states are kept rather than recovered by dividing by λ, which fails for λ near 0.
 *
 * @param inputs - The forward's inputs.
 * @param grads - dO, and dFinalState when the final state was used.
 * @param options - The forward's options.
 * @throws Error as {@link lightningAttentionBackward} does.
 */
export function lightningAttentionRecurrentBackward(
  inputs: LightningAttentionInputs,
  grads: LightningAttentionOutputGradients,
  options: LightningAttentionOptions,
): LightningAttentionGradients {
  const call = resolveLightningCall(inputs, options);
  checkOutputGradients(call, grads);
  const { hq, hkv, dk, dv, scale } = call;
  const { q, k, v } = inputs;
  const { dO, dFinalState } = grads;
  const total = call.batch * call.n;
  const dq = new Float64Array(q.length);
  const dkSum = new Float64Array(k.length);
  const dvSum = new Float64Array(v.length);
  const dInitialState = new Float64Array(call.spans.length * call.stateSize);
  forEachHeadRun(call, (run) => {
    const S = initialMatrix(call, inputs.initialState, run.sBase);
    const states: Float64Array[] = [];
    for (let t = 0; t < run.length; t++) {
      step(call, inputs, run, run.start + t, S);
      states.push(S.slice());
    }
    const G = initialMatrix(call, dFinalState, run.sBase);
    for (let t = run.length - 1; t >= 0; t--) {
      const token = run.start + t;
      const qBase = tokenOffset(0, token, run.h, total, hq, dk);
      const oBase = tokenOffset(0, token, run.h, total, hq, dv);
      const kBase = tokenOffset(0, token, run.kvHead, total, hkv, dk);
      const vBase = tokenOffset(0, token, run.kvHead, total, hkv, dv);
      const St = states[t]!;
      for (let a = 0; a < dk; a++) {
        for (let c = 0; c < dv; c++) {
          const e = a * dv + c;
          G[e]! += scale * q[qBase + a]! * dO[oBase + c]!;
          dq[qBase + a]! += scale * St[e]! * dO[oBase + c]!;
        }
      }
      for (let a = 0; a < dk; a++) {
        for (let c = 0; c < dv; c++) {
          dkSum[kBase + a]! += G[a * dv + c]! * v[vBase + c]!;
          dvSum[vBase + c]! += G[a * dv + c]! * k[kBase + a]!;
        }
      }
      for (let e = 0; e < G.length; e++) G[e]! *= run.decay;
    }
    dInitialState.set(G, run.sBase);
  });
  return {
    dq: Float32Array.from(dq),
    dk: Float32Array.from(dkSum),
    dv: Float32Array.from(dvSum),
    dInitialState: Float32Array.from(dInitialState),
  };
}

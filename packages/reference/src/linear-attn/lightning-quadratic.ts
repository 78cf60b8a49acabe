/**
 * Lightning attention in its quadratic form, straight from the spec's definition (§2):
 * `o_t = scale · (Σ_{j <= t} λ^(t-j) (q_t · k_j) v_j + λ^(t+1) q_t S_init)` within each sequence,
 * every pair of tokens visited, in f64. The decayed causal mask is written out here rather than
 * taken from the masked reference, so that the two check each other.
 */
import { tokenOffset } from '../attention-shape.js';
import {
  checkOutputGradients,
  type LightningAttentionGradients,
  type LightningAttentionInputs,
  type LightningAttentionOptions,
  type LightningAttentionOutput,
  type LightningAttentionOutputGradients,
  type LightningOutputF64,
  lightningOutputF32,
  resolveLightningCall,
  stateOffset,
} from './lightning-options.js';
import { dot } from './shape.js';

/** {@link lightningAttention} in f64 from end to end, for finite differences. */
export function lightningAttentionF64(
  inputs: LightningAttentionInputs,
  options: LightningAttentionOptions,
): LightningOutputF64 {
  const call = resolveLightningCall(inputs, options);
  const { n, hq, hkv, dk, dv, group, scale, decays, spans } = call;
  const { q, k, v, initialState } = inputs;
  // Dense and packed calls alike index tokens along the flattened batch-and-token axis.
  const total = call.batch * n;
  const o = new Float64Array(total * hq * dv);
  const finalState = new Float64Array(spans.length * call.stateSize);
  spans.forEach(({ start, length }, s) => {
    for (let h = 0; h < hq; h++) {
      const decay = decays[h]!;
      const kvHead = Math.floor(h / group);
      const sBase = stateOffset(call, s, h);
      for (let t = 0; t < length; t++) {
        const qBase = tokenOffset(0, start + t, h, total, hq, dk);
        const oBase = tokenOffset(0, start + t, h, total, hq, dv);
        for (let j = 0; j <= t; j++) {
          const kBase = tokenOffset(0, start + j, kvHead, total, hkv, dk);
          const vBase = tokenOffset(0, start + j, kvHead, total, hkv, dv);
          const weight = scale * decay ** (t - j) * dot(q, qBase, k, kBase, dk);
          for (let c = 0; c < dv; c++) o[oBase + c]! += weight * v[vBase + c]!;
        }
        if (initialState === undefined) continue;
        // The initial state sits one step before token 0, so token t sees it decayed t + 1 times.
        const stateWeight = scale * decay ** (t + 1);
        for (let a = 0; a < dk; a++) {
          const qa = stateWeight * q[qBase + a]!;
          for (let c = 0; c < dv; c++) o[oBase + c]! += qa * initialState[sBase + a * dv + c]!;
        }
      }
      for (let a = 0; a < dk; a++) {
        for (let c = 0; c < dv; c++) {
          let sum = initialState === undefined ? 0 : decay ** length * initialState[sBase + a * dv + c]!;
          for (let j = 0; j < length; j++) {
            const kBase = tokenOffset(0, start + j, kvHead, total, hkv, dk);
            const vBase = tokenOffset(0, start + j, kvHead, total, hkv, dv);
            sum += decay ** (length - 1 - j) * k[kBase + a]! * v[vBase + c]!;
          }
          finalState[sBase + a * dv + c] = sum;
        }
      }
    }
  });
  return { o, finalState };
}

/**
 * TransnormerLLM's decayed causal linear attention, quadratic form: within each sequence,
 * `o_t = scale · Σ_{j <= t} λ_h^(t-j) (q_t · k_j) v_j`, plus `scale · λ_h^(t+1) q_t S_init` with an
 * initial state, and the state after the last token. Equal to {@link maskedLinearAttention} with
 * {@link decayMask} (times scale) and to {@link lightningAttentionRecurrent}; accumulated in f64,
 * rounded once to f32.
 *
 * @param inputs - q, k, v, the per-head decays and optionally the initial state.
 * @param options - Sizes, scale and optionally packed sequences.
 * @throws Error if a size, decay or scale is invalid, `cuSeqlens` is malformed or an input's
 *   length does not match.
 */
export function lightningAttention(
  inputs: LightningAttentionInputs,
  options: LightningAttentionOptions,
): LightningAttentionOutput {
  return lightningOutputF32(lightningAttentionF64(inputs, options));
}

/**
 * Gradients of {@link lightningAttention} given `dO` and optionally `dFinalState`, by differentiating
 * the quadratic form term by term (per sequence and query head, `w_tj = scale · λ^(t-j)` for j <= t):
 * `dq_t = Σ_j w_tj (dO_t · v_j) k_j + scale · λ^(t+1) S_init dO_t`,
 * `dk_j = Σ_t w_tj (dO_t · v_j) q_t + λ^(len-1-j) dS_final v_j`,
 * `dv_j = Σ_t w_tj (q_t · k_j) dO_t + λ^(len-1-j) dS_finalᵀ k_j`,
 * `dS_init = scale · Σ_t λ^(t+1) q_tᵀ dO_t + λ^len dS_final`;
 * dk and dv summed over each GQA group. The decays get no gradient (fixed in TransnormerLLM).
 *
 * @param inputs - The forward's inputs.
 * @param grads - dO, and dFinalState when the final state was used.
 * @param options - The forward's options.
 * @throws Error as {@link lightningAttention} does, or if dO or dFinalState has the wrong length.
 */
export function lightningAttentionBackward(
  inputs: LightningAttentionInputs,
  grads: LightningAttentionOutputGradients,
  options: LightningAttentionOptions,
): LightningAttentionGradients {
  const call = resolveLightningCall(inputs, options);
  checkOutputGradients(call, grads);
  const { n, hq, hkv, dk, dv, group, scale, decays, spans } = call;
  const { q, k, v, initialState } = inputs;
  const { dO, dFinalState } = grads;
  const total = call.batch * n;
  const dq = new Float64Array(q.length);
  const dkSum = new Float64Array(k.length);
  const dvSum = new Float64Array(v.length);
  const dInitialState = new Float64Array(spans.length * call.stateSize);
  spans.forEach(({ start, length }, s) => {
    for (let h = 0; h < hq; h++) {
      const decay = decays[h]!;
      const kvHead = Math.floor(h / group);
      const sBase = stateOffset(call, s, h);
      for (let t = 0; t < length; t++) {
        const qBase = tokenOffset(0, start + t, h, total, hq, dk);
        const oBase = tokenOffset(0, start + t, h, total, hq, dv);
        for (let j = 0; j <= t; j++) {
          const kBase = tokenOffset(0, start + j, kvHead, total, hkv, dk);
          const vBase = tokenOffset(0, start + j, kvHead, total, hkv, dv);
          const w = scale * decay ** (t - j);
          const dScore = w * dot(dO, oBase, v, vBase, dv);
          const score = w * dot(q, qBase, k, kBase, dk);
          for (let a = 0; a < dk; a++) {
            dq[qBase + a]! += dScore * k[kBase + a]!;
            dkSum[kBase + a]! += dScore * q[qBase + a]!;
          }
          for (let c = 0; c < dv; c++) dvSum[vBase + c]! += score * dO[oBase + c]!;
        }
        const stateWeight = scale * decay ** (t + 1);
        for (let a = 0; a < dk; a++) {
          for (let c = 0; c < dv; c++) {
            const e = sBase + a * dv + c;
            if (initialState !== undefined) dq[qBase + a]! += stateWeight * initialState[e]! * dO[oBase + c]!;
            dInitialState[e]! += stateWeight * q[qBase + a]! * dO[oBase + c]!;
          }
        }
      }
      if (dFinalState === undefined) continue;
      for (let a = 0; a < dk; a++) {
        for (let c = 0; c < dv; c++) {
          const e = sBase + a * dv + c;
          const g = dFinalState[e]!;
          dInitialState[e]! += decay ** length * g;
          for (let j = 0; j < length; j++) {
            const kBase = tokenOffset(0, start + j, kvHead, total, hkv, dk);
            const vBase = tokenOffset(0, start + j, kvHead, total, hkv, dv);
            const w = decay ** (length - 1 - j) * g;
            dkSum[kBase + a]! += w * v[vBase + c]!;
            dvSum[vBase + c]! += w * k[kBase + a]!;
          }
        }
      }
    }
  });
  return {
    dq: Float32Array.from(dq),
    dk: Float32Array.from(dkSum),
    dv: Float32Array.from(dvSum),
    dInitialState: Float32Array.from(dInitialState),
  };
}

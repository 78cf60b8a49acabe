/**
 * The NSA backward (spec §7, §13 step 8): through the combine into the three branches, each a
 * softmax-attention backward recomputed from its saved lse, and from the compressed branch on through
 * the compression into k, v and the compressors' parameters. The selection is a constant: no gradient
 * flows through the block scores or the top-n.
 */
import { checkLength } from '../attention-shape.js';
import { combineBackward } from './combine.js';
import {
  type CompressorGradientsF64,
  compressTokensBackward,
  type NsaCompressorGradients,
} from './compress.js';
import type { ResolvedNsaConfig } from './config.js';
import { MEAN, runNsaForward } from './forward.js';
import type { NsaInputs, NsaOptions } from './inputs.js';
import { keySetAttentionBackward } from './key-set-attention.js';
import { compressedKeySet, denseCall, type NsaCall, planNsa, selectedKeySet, windowKeySet } from './plan.js';

/** Gradients of a scalar loss with respect to every NSA input and parameter, each the shape of its input. */
export interface NsaGradients {
  /** Gradient of q, from all three branches. */
  dq: Float32Array;
  /** Gradient of k: selected and window branches, and the compressed branch through the key compression. */
  dk: Float32Array;
  /** Gradient of v, likewise. */
  dv: Float32Array;
  /** Gradient of the gate logits, `[batch, n, hq, 3]`. */
  dGates: Float32Array;
  /** Gradients of the key compressor's parameters (empty for `mean`). */
  kCompressor: NsaCompressorGradients;
  /** Gradients of the value compressor's parameters (empty for `mean`). */
  vCompressor: NsaCompressorGradients;
}

/** {@link NsaGradients} in f64. */
export interface NsaGradientsF64 {
  dq: Float64Array;
  dk: Float64Array;
  dv: Float64Array;
  dGates: Float64Array;
  kCompressor: CompressorGradientsF64;
  vCompressor: CompressorGradientsF64;
}

function sum(...terms: Float64Array[]): Float64Array {
  const out = new Float64Array(terms[0]!.length);
  for (const term of terms) for (let e = 0; e < out.length; e++) out[e]! += term[e]!;
  return out;
}

/** The backward of one internal call, the forward recomputed first (the reference keeps nothing). */
export function runNsaBackward(
  inputs: NsaInputs,
  dO: ArrayLike<number>,
  call: NsaCall,
  config: ResolvedNsaConfig,
): NsaGradientsF64 {
  const plan = planNsa(inputs, call, config);
  const forward = runNsaForward(inputs, plan);
  const { batch, nq, hq, dv } = call;
  checkLength('dO', dO, [batch, nq, hq, dv]);
  const { q, k, v } = inputs;
  const { compressed, selected, window } = forward;
  const {
    dBranches: [dCompressed, dSelected, dWindow],
    dGates,
  } = combineBackward([compressed.o, selected.o, window.o], inputs.gates, dO, dv);
  const throughCompressed = keySetAttentionBackward(
    q,
    forward.cmpK,
    forward.cmpV,
    compressed.o,
    compressed.lse,
    dCompressed,
    plan.compressed,
    compressedKeySet(plan),
  );
  const selectedKeys = selectedKeySet(plan, forward.selection);
  const throughSelected = keySetAttentionBackward(
    q,
    k,
    v,
    selected.o,
    selected.lse,
    dSelected,
    plan.tokens,
    selectedKeys,
  );
  const throughWindow = keySetAttentionBackward(
    q,
    k,
    v,
    window.o,
    window.lse,
    dWindow,
    plan.tokens,
    windowKeySet(plan),
  );
  const kCompression = compressTokensBackward(
    k,
    throughCompressed.dk,
    inputs.kCompressor ?? MEAN,
    plan.kTokens,
    config,
  );
  const vCompression = compressTokensBackward(
    v,
    throughCompressed.dv,
    inputs.vCompressor ?? MEAN,
    plan.vTokens,
    config,
  );
  return {
    dq: sum(throughCompressed.dq, throughSelected.dq, throughWindow.dq),
    dk: sum(kCompression.dx, throughSelected.dk, throughWindow.dk),
    dv: sum(vCompression.dx, throughSelected.dv, throughWindow.dv),
    dGates,
    kCompressor: kCompression.params,
    vCompressor: vCompression.params,
  };
}

/** Rounds a compressor's parameter gradients to f32. */
export function compressorGradientsF32(grads: CompressorGradientsF64): NsaCompressorGradients {
  const out: NsaCompressorGradients = {};
  if (grads.weight) out.weight = Float32Array.from(grads.weight);
  if (grads.pe) out.pe = Float32Array.from(grads.pe);
  return out;
}

/**
 * Gradients of a scalar loss L given `dO = ∂L/∂o` for {@link nsaForward} with the same inputs, in f64
 * and rounded once to f32. The forward is recomputed; its selection (or `inputs.selection`) is held
 * fixed, as in the reference kernels.
 *
 * @param inputs - The forward's inputs.
 * @param dO - `[batch, n, hq, dv]`.
 * @param options - The forward's options.
 * @throws Error if a size or hyper-parameter is invalid or an input has the wrong length.
 */
export function nsaBackward(inputs: NsaInputs, dO: ArrayLike<number>, options: NsaOptions): NsaGradients {
  const { call, config } = denseCall(options);
  const grads = runNsaBackward(inputs, dO, call, config);
  return {
    dq: Float32Array.from(grads.dq),
    dk: Float32Array.from(grads.dk),
    dv: Float32Array.from(grads.dv),
    dGates: Float32Array.from(grads.dGates),
    kCompressor: compressorGradientsF32(grads.kCompressor),
    vCompressor: compressorGradientsF32(grads.vCompressor),
  };
}

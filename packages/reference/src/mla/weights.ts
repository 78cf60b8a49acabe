/** The weights of one MLA attention layer as the HF checkpoints store them (spec §1.2), and their checks. */

import { checkLength } from '../attention-shape.js';
import { checkMlaDims, type MlaDims, queryInputSize } from './dims.js';

/**
 * One layer's attention weights, each a `nn.Linear` weight in PyTorch's `[out, in]` layout
 * (`y = W x`, no biases) or a norm's scale. Head-major rows: head h owns a contiguous block.
 */
export interface MlaWeights {
  /** `q_a_proj`, `[qLoraRank, hiddenSize]` (W_DQ); with `dims.qLoraRank`. */
  qAProj?: ArrayLike<number>;
  /** `q_a_layernorm`, `[qLoraRank]`; with `dims.qLoraRank`. */
  qALayernorm?: ArrayLike<number>;
  /**
   * `q_b_proj`, `[heads · (qkNopeHeadDim + qkRopeHeadDim), qLoraRank]`; with `dims.qLoraRank`. Inside a
   * head: the nope rows, then the rope rows.
   */
  qBProj?: ArrayLike<number>;
  /** `q_proj`, `[heads · (qkNopeHeadDim + qkRopeHeadDim), hiddenSize]`, rows as in `qBProj`; without `dims.qLoraRank`. */
  qProj?: ArrayLike<number>;
  /**
   * `kv_a_proj_with_mqa`, `[kvLoraRank + qkRopeHeadDim, hiddenSize]`: the first `kvLoraRank` rows give
   * the raw latent (W_DKV), the rest the shared rope key (W_KR).
   */
  kvAProjWithMqa: ArrayLike<number>;
  /** `kv_a_layernorm`, `[kvLoraRank]`; normalises the latent only, not the rope key. */
  kvALayernorm: ArrayLike<number>;
  /** `kv_b_proj`, `[heads · (qkNopeHeadDim + vHeadDim), kvLoraRank]`; inside a head: W_UK rows, then W_UV rows. */
  kvBProj: ArrayLike<number>;
  /** `o_proj`, `[hiddenSize, heads · vHeadDim]`. */
  oProj: ArrayLike<number>;
}

/** The weights both forms share: the query down-projection, the latent projection and o_proj. */
export type MlaSharedWeights = Pick<
  MlaWeights,
  'qAProj' | 'qALayernorm' | 'kvAProjWithMqa' | 'kvALayernorm' | 'oProj'
>;

function required(name: string, array: ArrayLike<number> | undefined): ArrayLike<number> {
  if (array === undefined) throw new Error(`mla: weights.${name} is required by these dims`);
  return array;
}

/**
 * Checks the shared weights against `dims`: a query down-projection exactly when `dims.qLoraRank` is
 * set, and every length.
 */
export function checkSharedWeights(weights: MlaSharedWeights, dims: MlaDims): void {
  checkMlaDims(dims);
  const { hiddenSize, heads, qLoraRank, kvLoraRank, qkRopeHeadDim, vHeadDim } = dims;
  if (qLoraRank === undefined) {
    if (weights.qAProj !== undefined || weights.qALayernorm !== undefined) {
      throw new Error('mla: weights.qAProj and qALayernorm need dims.qLoraRank');
    }
  } else {
    checkLength('qAProj', required('qAProj', weights.qAProj), [qLoraRank, hiddenSize]);
    checkLength('qALayernorm', required('qALayernorm', weights.qALayernorm), [qLoraRank]);
  }
  checkLength('kvAProjWithMqa', weights.kvAProjWithMqa, [kvLoraRank + qkRopeHeadDim, hiddenSize]);
  checkLength('kvALayernorm', weights.kvALayernorm, [kvLoraRank]);
  checkLength('oProj', weights.oProj, [hiddenSize, heads * vHeadDim]);
}

/**
 * Checks every weight against `dims` and returns the query up-projection: `q_b_proj` with a query
 * rank, `q_proj` without; giving the other one is a config mismatch.
 */
export function checkMlaWeights(weights: MlaWeights, dims: MlaDims): ArrayLike<number> {
  checkSharedWeights(weights, dims);
  const { heads, qLoraRank, kvLoraRank, qkNopeHeadDim, qkRopeHeadDim, vHeadDim } = dims;
  const direct = qLoraRank === undefined;
  const [used, unused] = direct ? ['qProj', 'qBProj'] : ['qBProj', 'qProj'];
  if ((direct ? weights.qBProj : weights.qProj) !== undefined) {
    throw new Error(`mla: weights.${unused} does not fit these dims (qLoraRank ${qLoraRank}); give ${used}`);
  }
  const qUp = required(used, direct ? weights.qProj : weights.qBProj);
  checkLength(used, qUp, [heads * (qkNopeHeadDim + qkRopeHeadDim), queryInputSize(dims)]);
  checkLength('kvBProj', weights.kvBProj, [heads * (qkNopeHeadDim + vHeadDim), kvLoraRank]);
  return qUp;
}

/**
 * What the forward, the backward and decode derive from a call's sizes before computing anything:
 * checked sizes, block counts, the sizes of each branch and the keys each query attends.
 */
import { checkLength, resolveAttention } from '../attention-shape.js';
import {
  compressedBlockCount,
  compressedKeys,
  type KeySet,
  selectedKeys,
  selectionBlockCount,
  windowKeys,
} from './blocks.js';
import type { TokenSizes } from './compress.js';
import { type ResolvedNsaConfig, resolveNsaConfig } from './config.js';
import type { NsaInputs, NsaOptions, NsaShape } from './inputs.js';
import type { BranchSizes } from './key-set-attention.js';

/**
 * Sizes of one internal call: sequences of n tokens, of which the last `nq` are queries. The dense
 * forward has `nq = n`; decode has `nq = 1`. q and gates are `[batch, nq, ...]`, k and v `[batch, n, ...]`.
 */
export interface NsaCall extends NsaShape {
  /** Query tokens per sequence, the last of the n. */
  nq: number;
}

/** A call's checked sizes and hyper-parameters, and the branch sizes they give. */
export interface NsaPlan {
  call: NsaCall;
  config: ResolvedNsaConfig;
  /** Compressed blocks per sequence, M. */
  blocks: number;
  /** Selection blocks per sequence, NB. */
  selectionBlocks: number;
  /** The selected and window branches: keys are tokens. */
  tokens: BranchSizes;
  /** The compressed branch: keys are compressed blocks. */
  compressed: BranchSizes;
  /** k, as the key compressor reads it. */
  kTokens: TokenSizes;
  /** v, as the value compressor reads it. */
  vTokens: TokenSizes;
}

/** Checks the sizes and the inputs' lengths, and derives the branch sizes. */
export function planNsa(inputs: NsaInputs, call: NsaCall, config: ResolvedNsaConfig): NsaPlan {
  const { batch, n, nq, hq, hkv, dqk, dv } = call;
  // The dense reference checks the sizes (non-negative integers, hq a multiple of hkv) the same way.
  resolveAttention({ batch, n, nk: n, hq, hkv, d: dqk, dv });
  checkLength('q', inputs.q, [batch, nq, hq, dqk]);
  checkLength('k', inputs.k, [batch, n, hkv, dqk]);
  checkLength('v', inputs.v, [batch, n, hkv, dv]);
  checkLength('gates', inputs.gates, [batch, nq, hq, 3]);
  const blocks = compressedBlockCount(n, config);
  const tokens = { batch, nq, nk: n, hq, hkv, dqk, dv, scale: config.scale, firstQuery: n - nq };
  return {
    call,
    config,
    blocks,
    selectionBlocks: selectionBlockCount(n, config),
    tokens,
    compressed: { ...tokens, nk: blocks },
    kTokens: { batch, n, heads: hkv, dim: dqk },
    vTokens: { batch, n, heads: hkv, dim: dv },
  };
}

/** The sizes and hyper-parameters of a dense call, every query a token. */
export function denseCall(options: NsaOptions): { call: NsaCall; config: ResolvedNsaConfig } {
  const { batch, n, hq, hkv, dqk, dv, ...config } = options;
  return { call: { batch, n, nq: n, hq, hkv, dqk, dv }, config: resolveNsaConfig(config, dqk) };
}

/** The compressed blocks each query row attends. */
export function compressedKeySet(plan: NsaPlan): KeySet {
  return (_b, _kvHead, t) => compressedKeys(t, plan.blocks, plan.config);
}

/** The tokens each query row attends in the selected branch, given the selection `[batch, nq, hkv, topN]`. */
export function selectedKeySet(plan: NsaPlan, selection: Int32Array): KeySet {
  const { nq, hkv, firstQuery } = plan.tokens;
  const { topN } = plan.config;
  return (b, kvHead, t) => {
    const row = (b * nq + t - firstQuery) * hkv + kvHead;
    return selectedKeys(selection.subarray(row * topN, (row + 1) * topN), t, plan.config);
  };
}

/** The tokens each query row attends in the window branch. */
export function windowKeySet(plan: NsaPlan): KeySet {
  return (_b, _kvHead, t) => windowKeys(t, plan.config);
}

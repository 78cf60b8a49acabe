/**
 * MLA's dimensions, named as in the HF configs, with MiniCPM3-4B's (MLA spec §1.1) as the one preset.
 * The reference keeps its own copy rather than importing `@webattn/mla`: the reference is what that
 * package is tested against, so it must not depend on it.
 */

/** Sizes of one MLA layer. */
export interface MlaDims {
  /** Model width, the input and output size of the layer (`hidden_size`). */
  hiddenSize: number;
  /** Attention heads, `H` (`num_attention_heads`). */
  heads: number;
  /**
   * Rank of the query down-projection `q_a_proj` (`q_lora_rank`). Absent when the model projects
   * queries straight from the hidden state with `q_proj` (DeepSeek-V2-Lite).
   */
  qLoraRank?: number;
  /** Rank of the latent KV cache, `R` (`kv_lora_rank`). */
  kvLoraRank: number;
  /** Non-rotary part of each query and key head, `d_n` (`qk_nope_head_dim`). */
  qkNopeHeadDim: number;
  /** Rotary part of each query head and of the one key shared by all heads, `d_r` (`qk_rope_head_dim`). */
  qkRopeHeadDim: number;
  /** Value and output head dimension, `d_v` (`v_head_dim`). */
  vHeadDim: number;
}

/** MiniCPM3-4B (spec §1.1): hidden 2560, 40 heads, q rank 768, kv rank 256, nope 64, rope 32, v 64. */
export const MINICPM3_MLA_DIMS: Readonly<MlaDims> = Object.freeze({
  hiddenSize: 2560,
  heads: 40,
  qLoraRank: 768,
  kvLoraRank: 256,
  qkNopeHeadDim: 64,
  qkRopeHeadDim: 32,
  vHeadDim: 64,
});

/**
 * Throws unless every size is a positive integer and the rope part has an even size (it rotates
 * pairs of values).
 */
export function checkMlaDims(dims: MlaDims): void {
  const sizes = {
    hiddenSize: dims.hiddenSize,
    heads: dims.heads,
    kvLoraRank: dims.kvLoraRank,
    qkNopeHeadDim: dims.qkNopeHeadDim,
    qkRopeHeadDim: dims.qkRopeHeadDim,
    vHeadDim: dims.vHeadDim,
    ...(dims.qLoraRank !== undefined && { qLoraRank: dims.qLoraRank }),
  };
  for (const [name, value] of Object.entries(sizes)) {
    if (!Number.isSafeInteger(value) || value < 1) {
      throw new Error(`mla: dims.${name} must be a positive integer, got ${value}`);
    }
  }
  if (dims.qkRopeHeadDim % 2 !== 0) {
    throw new Error(`mla: dims.qkRopeHeadDim must be even (rope rotates pairs), got ${dims.qkRopeHeadDim}`);
  }
}

/** Size of the input of the query up-projection: `qLoraRank`, or `hiddenSize` without q_a_proj. */
export function queryInputSize(dims: MlaDims): number {
  return dims.qLoraRank ?? dims.hiddenSize;
}

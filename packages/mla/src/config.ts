/**
 * MLA's dimensions, with MiniCPM3-4B's as defaults (see the MLA spec, section 1): the latent KV
 * cache holds `kvLoraRank` compressed values plus a shared `qkRopeHeadDim` rotary key per token.
 */
import { check } from '@webattn/core';

/** MLA dimensions. */
export interface MlaConfig {
  /** Query heads (40 in MiniCPM3-4B). */
  heads: number;
  /** Rank of the compressed KV latent, `R` (256). */
  kvLoraRank: number;
  /** Non-rotary part of the q/k head, `d_n` (64). */
  qkNopeHeadDim: number;
  /** Rotary part of the q/k head, shared by all heads on the key side, `d_r` (32). */
  qkRopeHeadDim: number;
  /** Value head dim, `d_v` (64). */
  vHeadDim: number;
  /** Softmax scale, `(qkNopeHeadDim + qkRopeHeadDim) ** -0.5` by default (96^-0.5 for MiniCPM3). */
  scale: number;
}

const MINICPM3 = { heads: 40, kvLoraRank: 256, qkNopeHeadDim: 64, qkRopeHeadDim: 32, vHeadDim: 64 };

/** Fills in MiniCPM3's dimensions where not given and checks every field. */
export function resolveMlaConfig(config: Partial<MlaConfig> = {}): MlaConfig {
  const dims = { ...MINICPM3, ...config };
  const c: MlaConfig = { scale: (dims.qkNopeHeadDim + dims.qkRopeHeadDim) ** -0.5, ...dims };
  for (const key of ['heads', 'kvLoraRank', 'qkNopeHeadDim', 'vHeadDim'] as const) {
    check(
      Number.isSafeInteger(c[key]) && c[key] > 0,
      'invalid-argument',
      () => `config.${key}: expected a positive integer, got ${c[key]}`,
    );
  }
  check(
    Number.isSafeInteger(c.qkRopeHeadDim) && c.qkRopeHeadDim >= 0 && c.qkRopeHeadDim % 2 === 0,
    'invalid-argument',
    () => `config.qkRopeHeadDim: expected a non-negative even integer (rotary pairs), got ${c.qkRopeHeadDim}`,
  );
  check(
    Number.isFinite(c.scale) && c.scale > 0,
    'invalid-argument',
    () => `config.scale: expected a positive number, got ${c.scale}`,
  );
  return c;
}

/**
 * Head dims of the absorbed attention over the latent cache: queries and keys have
 * `kvLoraRank + qkRopeHeadDim` entries (288 for MiniCPM3), values `kvLoraRank` (256).
 */
export function absorbedHeadDims(c: MlaConfig): { qk: number; v: number } {
  return { qk: c.kvLoraRank + c.qkRopeHeadDim, v: c.kvLoraRank };
}

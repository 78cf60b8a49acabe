/** Cache footprint per token and layer, MLA's latent cache against a standard per-head K/V cache (spec §4.1). */
import type { MlaDims } from './dims.js';

/**
 * Bytes per token per layer of the latent cache: `(kvLoraRank + qkRopeHeadDim) · bytesPerValue`,
 * 288 values, 576 bytes in f16 for MiniCPM3.
 *
 * @param dims - Latent and rope sizes.
 * @param bytesPerValue - 2 for f16 (the default), 4 for f32.
 */
export function mlaCacheBytesPerToken(
  dims: Pick<MlaDims, 'kvLoraRank' | 'qkRopeHeadDim'>,
  bytesPerValue = 2,
): number {
  return (dims.kvLoraRank + dims.qkRopeHeadDim) * bytesPerValue;
}

/**
 * Bytes per token per layer of the cache of an eager layer, which stores the expanded per-head keys
 * (nope and rope) and values: `heads · (qkNopeHeadDim + qkRopeHeadDim + vHeadDim) · bytesPerValue`,
 * 6400 values, 12,800 bytes in f16 for MiniCPM3 (22.2× the latent cache).
 *
 * @param dims - Head count and head sizes.
 * @param bytesPerValue - 2 for f16 (the default), 4 for f32.
 */
export function standardKvCacheBytesPerToken(
  dims: Pick<MlaDims, 'heads' | 'qkNopeHeadDim' | 'qkRopeHeadDim' | 'vHeadDim'>,
  bytesPerValue = 2,
): number {
  return dims.heads * (dims.qkNopeHeadDim + dims.qkRopeHeadDim + dims.vHeadDim) * bytesPerValue;
}

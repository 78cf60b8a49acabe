/**
 * The unabsorbed form's keys and values: the latent cache expanded through kv_b_proj into explicit
 * per-head K and V, what eager attention (MiniCPM3's original module) holds in its cache.
 */

import { checkLength } from '../attention-shape.js';
import { checkMlaDims, type MlaDims } from './dims.js';
import type { MlaSequenceCache } from './layer-options.js';
import { linearF64 } from './linear.js';

/** Per-head keys and values of one sequence. */
export interface MlaExpandedKv {
  /** `[tokens, heads, qkNopeHeadDim + qkRopeHeadDim]`: `W_UK[h] c_kv`, then the shared rotated k_pe. */
  k: Float32Array;
  /** `[tokens, heads, vHeadDim]`: `W_UV[h] c_kv`. */
  v: Float32Array;
}

/** {@link mlaExpandKv} in f64. */
export function mlaExpandKvF64(
  cache: MlaSequenceCache,
  kvBProj: ArrayLike<number>,
  dims: MlaDims,
): { k: Float64Array; v: Float64Array } {
  checkMlaDims(dims);
  const { heads, kvLoraRank: r, qkNopeHeadDim: dn, qkRopeHeadDim: dr, vHeadDim: dv } = dims;
  const tokens = cache.cKv.length / r;
  if (!Number.isInteger(tokens))
    throw new Error(`mla: cKv has ${cache.cKv.length} elements, not [tokens, ${r}]`);
  checkLength('kPe', cache.kPe, [tokens, dr]);
  checkLength('kvBProj', kvBProj, [heads * (dn + dv), r]);
  // Spec §1.3 step 4: kv viewed [heads, dn + dv], the key nope part first.
  const kv = linearF64(cache.cKv, kvBProj, tokens, r, heads * (dn + dv));
  const dk = dn + dr;
  const k = new Float64Array(tokens * heads * dk);
  const v = new Float64Array(tokens * heads * dv);
  for (let t = 0; t < tokens; t++) {
    for (let h = 0; h < heads; h++) {
      const from = (t * heads + h) * (dn + dv);
      k.set(kv.subarray(from, from + dn), (t * heads + h) * dk);
      // Spec §1.3 step 6: one rope key, the same for every head.
      for (let c = 0; c < dr; c++) k[(t * heads + h) * dk + dn + c] = cache.kPe[t * dr + c]!;
      v.set(kv.subarray(from + dn, from + dn + dv), (t * heads + h) * dv);
    }
  }
  return { k, v };
}

/**
 * Expands one sequence's latent cache into explicit per-head keys and values (spec §1.3 steps 4
 * and 6), in f64 and rounded once to f32: the unabsorbed form, and the cache an eager layer holds.
 *
 * @param cache - The sequence's latent cache.
 * @param kvBProj - `kv_b_proj`, `[heads · (qkNopeHeadDim + vHeadDim), kvLoraRank]`.
 * @param dims - Layer sizes.
 * @throws Error if a size does not match.
 */
export function mlaExpandKv(
  cache: MlaSequenceCache,
  kvBProj: ArrayLike<number>,
  dims: MlaDims,
): MlaExpandedKv {
  const { k, v } = mlaExpandKvF64(cache, kvBProj, dims);
  return { k: Float32Array.from(k), v: Float32Array.from(v) };
}

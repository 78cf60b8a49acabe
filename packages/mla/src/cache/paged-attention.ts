/** The absorbed attention read through a paged cache's block tables. */
import { check, type Gpu, pickTier, type Tensor } from '@webattn/core';
import {
  checkQueries,
  checkScale,
  checkSplits,
  launchMlaAttention,
  type MlaAttentionOptions,
  resolveMlaKernel,
} from '../attention/attention.js';
import type { MlaLaunch } from '../attention/launch-types.js';
import { launchMlaFlashPrefill } from '../prefill/prefill.js';
import { u32Tensor } from '../u32.js';
import type { MlaCache } from './cache.js';

/**
 * The absorbed attention (as {@link mlaAttention}) over the sequences `ids` of a paged cache: sequence `ids[i]` supplies
 * `lengths[i] = cache.length(ids[i])` keys, and the nq queries sit at the end of it (append the new
 * tokens first, then attend: decode, chunked prefill and speculative verification alike). Page
 * slots past a sequence's length are never read.
 *
 * @param gpu - The device.
 * @param qLatent - `[b, nq, h, r]` in the cache's dtype.
 * @param qPe - `[b, nq, h, dr]`.
 * @param cache - The paged latent cache.
 * @param ids - `b` sequence ids of the cache.
 * @param wUv - `[h, r, dv]`.
 * @param options - Scale, tier, splits, kernel.
 * @returns o `[b, nq, h, dv]`, owned by the caller.
 * @throws WebAttnError naming the argument for bad shapes, dtypes, ids, scale or splits.
 */
export async function mlaAttentionPaged(
  gpu: Gpu,
  qLatent: Tensor,
  qPe: Tensor,
  cache: MlaCache,
  ids: readonly number[],
  wUv: Tensor,
  options: MlaAttentionOptions,
): Promise<Tensor> {
  const op = 'mlaAttentionPaged';
  const [batch, nq, , r, dr] = checkQueries(op, qLatent, qPe, wUv);
  check(
    ids.length === batch,
    'shape-mismatch',
    () => `${op}: ids: expected ${batch} entries (qLatent's batch), got ${ids.length}`,
  );
  check(
    r === cache.r,
    'shape-mismatch',
    () => `${op}: qLatent: expected r = ${cache.r} (the cache's), got ${r}`,
  );
  check(
    dr === cache.dr,
    'shape-mismatch',
    () => `${op}: qPe: expected dr = ${cache.dr} (the cache's), got ${dr}`,
  );
  check(
    qLatent.dtype === cache.dtype,
    'dtype-mismatch',
    () => `${op}: qLatent: expected dtype ${cache.dtype} (the cache's), got ${qLatent.dtype}`,
  );
  checkScale(op, options?.scale);
  checkSplits(op, options.splits);
  const tier = pickTier(gpu.caps, qLatent.dtype, options.tier, op);
  const { words, maxPages, lengths } = cache.tables(ids);
  using table = u32Tensor(gpu, words);
  const launch: MlaLaunch = {
    qLatent,
    qPe,
    keys: { source: 'paged', pages: cache.pages, table, pageSize: cache.pageSize, maxPages },
    wUv,
    lengths,
    scale: options.scale,
    tier,
    ...(options.splits !== undefined && { splits: options.splits }),
  };
  if (resolveMlaKernel(options.kernel, tier, nq) === 'flash') {
    return await launchMlaFlashPrefill(gpu, launch, (b, j) => cache.slot(ids[b]!, j));
  }
  return await launchMlaAttention(gpu, launch);
}

/**
 * Split-KV for the flash forward. A launch of few (query tile, head) work items, decode above all
 * (one query per sequence), leaves most of the GPU idle while each workgroup walks all its keys.
 * Cutting every work item's keys into parts run by separate workgroups of the same forward kernel,
 * then merging the parts' outputs by their log-sum-exps, fills it. The merge runs the parts in
 * order, so the result is the same bits on every run.
 */
import { dispatch } from '../dispatch.js';
import type { Gpu } from '../gpu.js';
import { memoizeWgsl } from '../memoize-wgsl.js';
import { Tensor } from '../tensor.js';
import { type FlashProblem, keyRangeLength } from './problem.js';
import { SPLIT_COMBINE_PARAMS, splitCombineWgsl } from './split-combine.wgsl.js';

// Each kernel's WGSL is written once per configuration (see memoizeWgsl).
const splitCombineCode = memoizeWgsl(splitCombineWgsl);

/** When and how finely the forward splits its keys. */
export interface SplitKvSettings {
  /** Work items (query tiles x heads) from which a launch does not split: enough to fill the GPU. */
  targetWorkgroups: number;
  /** Fewest keys a part walks: below that the merge costs more than the part saves. */
  minSplitKeys: number;
  maxSplits: number;
  /** Parts start this many keys apart (a multiple of every kernel's key tile). */
  keyAlign: number;
}

/**
 * The forward's split-KV settings. Mutable so that a diagnostic can time other settings, and a
 * test can make small problems split.
 */
export const FLASH_SPLIT_KV: SplitKvSettings = {
  targetWorkgroups: 4096,
  minSplitKeys: 256,
  maxSplits: 64,
  keyAlign: 64,
};

/** How a launch cuts its keys: `splits` parts of `splitKeys` keys from each work item's first key. */
export interface KeySplits {
  splits: number;
  splitKeys: number;
}

/** No split: every work item walks all its keys. */
export const UNSPLIT: KeySplits = { splits: 1, splitKeys: 0 };

/**
 * The split of a forward launch over `rows`-row query tiles: none when the launch has enough work
 * items or its longest key range is too short, else as many parts as bring the work items up to
 * the target, within the settings' bounds and so that the parts' outputs, `outputBytes` each (o's
 * size), fit one binding of `maxBindingBytes`.
 */
export function planKeySplits(
  p: FlashProblem,
  rows: number,
  settings: SplitKvSettings = FLASH_SPLIT_KV,
  binding?: { outputBytes: number; maxBindingBytes: number },
): KeySplits {
  const tiles = p.sequences.reduce((sum, s) => sum + Math.ceil(s.qLen / rows), 0);
  const items = tiles * p.hq;
  if (items === 0 || items >= settings.targetWorkgroups) return UNSPLIT;
  let longest = 0;
  for (const s of p.sequences) {
    for (let first = 0; first < s.qLen; first += rows) {
      longest = Math.max(longest, keyRangeLength(p, s, first, Math.min(first + rows, s.qLen) - 1));
    }
  }
  const wanted = Math.min(
    settings.maxSplits,
    Math.ceil(settings.targetWorkgroups / items),
    Math.floor(longest / settings.minSplitKeys),
    binding ? Math.floor(binding.maxBindingBytes / binding.outputBytes) : Number.POSITIVE_INFINITY,
  );
  if (wanted < 2) return UNSPLIT;
  const align = settings.keyAlign;
  const splitKeys = Math.ceil(longest / wanted / align) * align;
  const splits = Math.ceil(longest / splitKeys);
  return splits < 2 ? UNSPLIT : { splits, splitKeys };
}

/** The split-KV uniform values of a launch that does not split: every launch but a split forward's. */
export const UNSPLIT_PARAMS = { splits: 1, splitKeys: 0, splitRows: 0, lseSplit: 0 };

/** The uniform values a forward launch adds for its split: the parts' strides in o and lse. */
export function splitParams(p: FlashProblem, lseSize: number, split: KeySplits) {
  if (split.splits <= 1) return UNSPLIT_PARAMS;
  return { splits: split.splits, splitKeys: split.splitKeys, splitRows: p.totalQ, lseSplit: lseSize };
}

/** Where the parts of a split launch write: every part's o and lse, one after another. */
export interface SplitOutputs extends Disposable {
  o: Tensor;
  lse: Tensor;
}

/** Buffers for the parts' outputs of a split launch whose final outputs are `o` and `lse`. */
export function splitOutputs(gpu: Gpu, o: Tensor, lse: Tensor, split: KeySplits): SplitOutputs {
  const partO = Tensor.empty(gpu, [split.splits, ...o.shape], o.dtype);
  try {
    const partLse = Tensor.empty(gpu, [split.splits, ...lse.shape], 'f32');
    return {
      o: partO,
      lse: partLse,
      [Symbol.dispose]() {
        partO.dispose();
        partLse.dispose();
      },
    };
  } catch (error) {
    partO.dispose();
    throw error;
  }
}

/** Merges the parts into `o` and `lse`, in part order; a row no part saw gets o = 0, lse = -inf. */
export async function combineSplits(
  gpu: Gpu,
  p: FlashProblem,
  parts: SplitOutputs,
  o: Tensor,
  lse: Tensor,
  split: KeySplits,
): Promise<void> {
  const rows = p.totalQ * p.hq;
  await dispatch(gpu, {
    label: `flash forward split-KV combine (${split.splits} parts) dv=${p.dv}`,
    code: splitCombineCode({ dtype: o.dtype, dv: p.dv }),
    buffers: [parts.o, parts.lse, o, lse],
    params: {
      layout: SPLIT_COMBINE_PARAMS,
      values: {
        rows,
        hq: p.hq,
        splits: split.splits,
        lseHeadStride: p.lseHeadStride,
        lseSize: lse.size,
        negInf: Number.NEGATIVE_INFINITY,
      },
    },
    workgroups: rows,
  });
}

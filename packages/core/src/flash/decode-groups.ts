/**
 * Decode with grouped-query attention: one query per sequence, G = hq / hkv query heads per KV head.
 * Run as it comes, every (sequence, head) work item fills one row of a tile built for 16 or more
 * and reads its KV head's keys alone, G times over for the group. Run instead as attention with
 * hkv heads over G queries per sequence, query g of KV head k being head k·G + g, the G rows of a
 * group share one tile and one read of its keys. A sequence's one query sits at its last key, so
 * the mask leaves it a run of keys, the last `left + 1` under a window, all of them without: the
 * G queries see that run, unmasked. q is permuted into that layout before the launch, o and lse
 * back after; both are a few kilobytes.
 */
import { dispatch, WORKGROUP_INDEX_WGSL } from '../dispatch.js';
import type { Dtype } from '../dtype.js';
import type { Gpu } from '../gpu.js';
import { memoizeWgsl } from '../memoize-wgsl.js';
import { type ParamLayout, paramsStruct } from '../params.js';
import type { Tensor } from '../tensor.js';
import { enables } from '../wgsl.js';
import { LSE_INDEX_WGSL } from './common.wgsl.js';
import { type FlashProblem, hasKeyBlocks } from './problem.js';

// Each kernel's WGSL is written once per configuration (see memoizeWgsl).
const groupPermuteCode = memoizeWgsl(groupPermuteWgsl);

/** Invocations per workgroup of the permutations. */
const WORKGROUP = 256;

/** Whether grouped decodes run as their grouped problem. Mutable so that a diagnostic can time both. */
export const FLASH_DECODE_GROUPS: { enabled: boolean } = { enabled: true };

/**
 * Whether a forward is a grouped decode that runs faster as its grouped problem: one query per
 * sequence, more than one query head per KV head, plain keys (not NSA's key blocks).
 */
export function isGroupedDecode(p: FlashProblem): boolean {
  if (!FLASH_DECODE_GROUPS.enabled) return false;
  if (p.hq === p.hkv || p.sequences.length === 0) return false;
  if (hasKeyBlocks(p)) return false;
  return p.sequences.every((s) => s.qLen === 1);
}

/**
 * The grouped problem of a grouped decode: sequence b's G queries at packed tokens b·G .. b·G + G − 1,
 * hkv heads each, over the keys its query sees (the last `left + 1` of a window), unmasked;
 * o `[B·G, hkv, dv]`, lse `[hkv, B·G]`.
 */
export function groupedDecodeProblem(p: FlashProblem): FlashProblem {
  const group = p.hq / p.hkv;
  const totalQ = p.sequences.length * group;
  const { left } = p.mask;
  return {
    ...p,
    hq: p.hkv,
    mask: { left: -1, right: -1 },
    sequences: p.sequences.map((s, b) => {
      // The query's diagonal is the last key; right edges reach past the keys there is.
      const skipped = left >= 0 ? Math.max(0, s.kLen - 1 - left) : 0;
      return {
        qStart: b * group,
        qLen: group,
        kStart: s.kStart + skipped,
        kLen: s.kLen - skipped,
        lseBase: b * group,
      };
    }),
    totalQ,
    lseHeadStride: totalQ,
    oShape: [totalQ, p.hkv, p.dv],
    lseShape: [p.hkv, totalQ],
    varlen: true,
    partialKeys: true,
  };
}

/** Uniform parameters of the permutations. */
const GROUP_PARAMS: ParamLayout = [
  /** Sequences (one query each). */
  ['batch', 'u32'],
  ['hkv', 'u32'],
  /** Query heads per KV head. */
  ['group', 'u32'],
  /** The original lse's head stride (common.wgsl.ts, lseIndex). */
  ['lseHeadStride', 'u32'],
];

/**
 * WGSL moving rows of `width` between the original layout (row b·hq + k·G + g) and the grouped one
 * (row (b·G + g)·hkv + k): `toGrouped` for q, else for o, whose invocations of column 0 also move
 * the row's lse from `[hkv, B·G]` to the original layout.
 */
export function groupPermuteWgsl(c: { dtype: Dtype; width: number; toGrouped: boolean }): string {
  const T = c.dtype;
  const lse = c.toGrouped
    ? ''
    : `@group(0) @binding(2) var<storage, read> groupedLse: array<f32>;
@group(0) @binding(3) var<storage, read_write> lse: array<f32>;`;
  const params = c.toGrouped ? 2 : 4;
  const [from, to] = c.toGrouped ? ['original', 'grouped'] : ['grouped', 'original'];
  return `${enables({ f16: T === 'f16' })}
${paramsStruct(GROUP_PARAMS)}
@group(0) @binding(0) var<storage, read> src: array<${T}>;
@group(0) @binding(1) var<storage, read_write> dst: array<${T}>;
${lse}
@group(0) @binding(${params}) var<uniform> p: Params;

${WORKGROUP_INDEX_WGSL}

${LSE_INDEX_WGSL}

@compute @workgroup_size(${WORKGROUP})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let id = workgroupIndex(wid, nwg) * ${WORKGROUP}u + li;
  let hq = p.hkv * p.group;
  if (id >= p.batch * hq * ${c.width}u) { return; }
  let col = id % ${c.width}u;
  // The row in the original layout: sequence b, KV head k, query g of its group.
  let row = id / ${c.width}u;
  let b = row / hq;
  let k = (row % hq) / p.group;
  let g = row % p.group;
  let original = row;
  let grouped = (b * p.group + g) * p.hkv + k;
  dst[${to} * ${c.width}u + col] = src[${from} * ${c.width}u + col];
  // Sequence b's one query is token b of the original problem, token b·G + g of the grouped one.
  ${c.toGrouped ? '' : 'if (col == 0u) { lse[lseIndex(b, k * p.group + g, hq, p.lseHeadStride)] = groupedLse[lseIndex(b * p.group + g, k, p.hkv, p.batch * p.group)]; }'}
}
`;
}

function groupParams(p: FlashProblem) {
  return {
    layout: GROUP_PARAMS,
    values: { batch: p.sequences.length, hkv: p.hkv, group: p.hq / p.hkv, lseHeadStride: p.lseHeadStride },
  };
}

/** Queues q `[B, hq, d]` (rows of the original layout) into `grouped` `[B·G, hkv, d]`. */
export async function groupQueries(gpu: Gpu, p: FlashProblem, q: Tensor, grouped: Tensor): Promise<void> {
  await dispatch(gpu, {
    label: `flash decode group queries d=${p.d}`,
    code: groupPermuteCode({ dtype: q.dtype, width: p.d, toGrouped: true }),
    buffers: [q, grouped],
    params: groupParams(p),
    workgroups: Math.ceil((p.sequences.length * p.hq * p.d) / WORKGROUP),
  });
}

/** Queues the grouped outputs back into o `[B, hq, dv]` and lse (the original problem's layout). */
export async function ungroupOutputs(
  gpu: Gpu,
  p: FlashProblem,
  grouped: { o: Tensor; lse: Tensor },
  o: Tensor,
  lse: Tensor,
): Promise<void> {
  await dispatch(gpu, {
    label: `flash decode ungroup outputs dv=${p.dv}`,
    code: groupPermuteCode({ dtype: o.dtype, width: p.dv, toGrouped: false }),
    buffers: [grouped.o, o, grouped.lse, lse],
    params: groupParams(p),
    workgroups: Math.ceil((p.sequences.length * p.hq * p.dv) / WORKGROUP),
  });
}

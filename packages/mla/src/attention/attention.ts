/** Host side of the absorbed MLA attention: checks, tiling, the attention and combine launches. */
import {
  check,
  type Dtype,
  dispatch,
  type Gpu,
  memoizeWgsl,
  pickTier,
  Tensor,
  type Tier,
} from '@webattn/core';
import { launchMlaFlashPrefill } from '../prefill/prefill.js';
import { u32Tensor } from '../u32.js';
import {
  MLA_ATTENTION_PARAMS,
  MLA_COMBINE_PARAMS,
  type MlaKeySource,
  mlaAttentionWgsl,
  mlaCombineWgsl,
} from './attention.wgsl.js';
import {
  MLA_PAD_PARAMS,
  mlaAttentionMatrixWgsl,
  mlaMatrixHoldsQuery,
  mlaPadRowsWgsl,
} from './attention-matrix.wgsl.js';
import type { MlaLaunch } from './launch-types.js';
import { planMlaLaunch } from './plan.js';

// Each kernel's WGSL is written once per configuration (see memoizeWgsl).
const mlaAttentionMatrixCode = memoizeWgsl(mlaAttentionMatrixWgsl);
const mlaAttentionCode = memoizeWgsl(mlaAttentionWgsl);
const mlaCombineCode = memoizeWgsl(mlaCombineWgsl);
const mlaPadRowsCode = memoizeWgsl(mlaPadRowsWgsl);

/** Options of {@link mlaAttention}. */
export interface MlaAttentionOptions {
  /** Softmax scale applied to the sum of both dot products (`(d_nope + d_rope) ** -0.5`, 96^-0.5 for MiniCPM3). */
  scale: number;
  /** Kernel tier; by default the fastest the device has for the tensors' dtype. */
  tier?: Tier;
  /** Key splits per sequence (split-KV); by default enough to fill the device. */
  splits?: number;
  /**
   * Which kernel runs: `latent`, the head-packed kernel over the latent cache; `flash`, core's
   * flash attention as MQA over gathered keys (tensor cores on `subgroup-matrix`). `auto` (default)
   * takes `flash` for prefill-sized calls (nq >= {@link MLA_FLASH_MIN_QUERIES}) on `subgroup-matrix`.
   */
  kernel?: MlaKernelChoice;
}

/** The kernels {@link mlaAttention} can run. */
export type MlaKernelChoice = 'auto' | 'latent' | 'flash';

/** Query tokens per sequence from which `auto` takes the flash path on tensor cores. */
export const MLA_FLASH_MIN_QUERIES = 64;

/** The kernel a call runs. */
export function resolveMlaKernel(
  choice: MlaKernelChoice | undefined,
  tier: Tier,
  nq: number,
): 'latent' | 'flash' {
  check(
    choice === undefined || choice === 'auto' || choice === 'latent' || choice === 'flash',
    'invalid-argument',
    () => `mlaAttention: options.kernel: expected 'auto', 'latent' or 'flash', got ${JSON.stringify(choice)}`,
  );
  if (choice === 'latent' || choice === 'flash') return choice;
  return tier === 'subgroup-matrix' && nq >= MLA_FLASH_MIN_QUERIES ? 'flash' : 'latent';
}

function shapeOf(t: Tensor): string {
  return `[${t.shape.join(', ')}]`;
}

/** Checks a tensor's rank, dtype and the extents given (undefined = any), naming the argument. */
export function checkTensor(
  op: string,
  name: string,
  t: Tensor,
  expected: readonly (number | undefined)[],
  dtype: Dtype,
  names: string,
): void {
  const ok =
    t.shape.length === expected.length && expected.every((e, i) => e === undefined || e === t.shape[i]);
  check(
    ok,
    'shape-mismatch',
    () =>
      `${op}: ${name}: expected shape ${names} = [${expected.map((e) => e ?? '*').join(', ')}], got ${shapeOf(t)}`,
  );
  check(
    t.dtype === dtype,
    'dtype-mismatch',
    () => `${op}: ${name}: expected dtype ${dtype} (qLatent's), got ${t.dtype}`,
  );
}

/** Checks per-sequence lengths: `batch` integers in `[0, max]`. */
export function checkLengths(
  op: string,
  lengths: ArrayLike<number>,
  batch: number,
  max: number,
  maxName: string,
): void {
  check(
    lengths.length === batch,
    'shape-mismatch',
    () => `${op}: lengths: expected ${batch} entries (the batch), got ${lengths.length}`,
  );
  for (let i = 0; i < lengths.length; i++) {
    const length = lengths[i]!;
    check(
      Number.isSafeInteger(length) && length >= 0 && length <= max,
      'invalid-argument',
      () => `${op}: lengths[${i}]: expected an integer in [0, ${max}] (${maxName}), got ${length}`,
    );
  }
}

/** Runs a checked launch; returns o `[b, nq, h, dv]` in the queries' dtype. */
export async function launchMlaAttention(gpu: Gpu, launch: MlaLaunch): Promise<Tensor> {
  const { qLatent, qPe, keys, wUv, lengths, scale } = launch;
  const [batch, nq, heads, r] = qLatent.shape as [number, number, number, number];
  const dr = qPe.shape[3]!;
  const dv = wUv.shape[2]!;
  const dtype = qLatent.dtype;
  const o = Tensor.empty(gpu, [batch, nq, heads, dv], dtype);
  if (o.size === 0) return o;
  const rows = nq * heads;
  using lengthsTensor = u32Tensor(gpu, lengths);
  const keyBuffers = keys.source === 'dense' ? [keys.cKv, keys.kPe] : [keys.pages, keys.table];
  const maxLength = Math.max(0, ...Array.from(lengths));
  const planInput = {
    batch,
    nq,
    heads,
    r,
    dr,
    maxLength,
    ...(launch.splits !== undefined && { splits: launch.splits }),
  };
  const { plan, matrix } = planMlaLaunch(gpu, planInput, launch.tier);
  const fused = !matrix && plan.splits === 1;
  const source: MlaKeySource = keys.source;
  const matrixConfig = matrix && { heads, r, dr, ...matrix, source };
  const code = matrixConfig
    ? mlaAttentionMatrixCode(matrixConfig)
    : mlaAttentionCode({ dtype, heads, r, dr, dv, rows: plan.rows, keyTile: plan.keyTile, source, fused });
  const params = {
    layout: MLA_ATTENTION_PARAMS,
    values: {
      batch,
      nq,
      rows,
      rowBlocks: plan.rowBlocks,
      splits: plan.splits,
      keysPerSplit: plan.keysPerSplit,
      slots: keys.source === 'dense' ? keys.slots : keys.pageSize,
      maxPages: keys.source === 'dense' ? 0 : keys.maxPages,
      scale,
    },
  };
  const kind = matrix ? 'matrix' : 'rows';
  const label = `mla attention ${kind} ${source} [${launch.tier}] h=${heads} r=${r} rows=${plan.rows} splits=${plan.splits}`;
  const workgroups = batch * plan.rowBlocks * plan.splits;
  try {
    if (fused) {
      await dispatch(gpu, {
        label,
        code,
        buffers: [qLatent, qPe, ...keyBuffers, lengthsTensor, wUv, o],
        params,
        workgroups,
      });
      return o;
    }
    // The tensor-core kernel loads and stores whole 16-row fragments: its partials have padded
    // row blocks, and so do its queries unless it stages them itself (held queries).
    const rowStride = matrix ? plan.rowBlocks * plan.rows : rows;
    using part = Tensor.empty(gpu, [batch, plan.splits, rowStride, r], 'f32');
    using stats = Tensor.empty(gpu, [batch, plan.splits, rowStride, 2], 'f32');
    const padQueries = matrixConfig !== undefined && !mlaMatrixHoldsQuery(matrixConfig);
    using qlPadded = padQueries ? await padRows(gpu, qLatent, batch, rows, rowStride, r) : undefined;
    using qpPadded = padQueries ? await padRows(gpu, qPe, batch, rows, rowStride, dr) : undefined;
    await dispatch(gpu, {
      label,
      code,
      buffers: [qlPadded ?? qLatent, qpPadded ?? qPe, ...keyBuffers, lengthsTensor, part, stats],
      params,
      workgroups,
    });
    await dispatch(gpu, {
      label: `mla combine [${launch.tier}] splits=${plan.splits}`,
      code: mlaCombineCode({ dtype, heads, r, dv }),
      buffers: [part, stats, wUv, o],
      params: { layout: MLA_COMBINE_PARAMS, values: { batch, rows, splits: plan.splits, rowStride } },
      workgroups: batch * rows,
    });
    return o;
  } catch (error) {
    o.dispose();
    throw error;
  }
}

/** `[b, rows, width]` f16 rows copied to `[b, padded, width]`, zero after each sequence's rows. */
async function padRows(gpu: Gpu, x: Tensor, batch: number, rows: number, padded: number, width: number) {
  const y = Tensor.empty(gpu, [batch, padded, width], 'f16');
  if (y.size > 0) {
    await dispatch(gpu, {
      label: 'mla pad rows',
      code: mlaPadRowsCode({ width }),
      buffers: [x, y],
      params: { layout: MLA_PAD_PARAMS, values: { batch, rows, padded } },
      workgroups: Math.ceil(y.size / 256),
    });
  }
  return y;
}

/** Checks the query side and W_UV; returns `[batch, nq, heads, r, dr, dv]`. */
export function checkQueries(
  op: string,
  qLatent: Tensor,
  qPe: Tensor,
  wUv: Tensor,
): [number, number, number, number, number, number] {
  check(
    qLatent.shape.length === 4,
    'shape-mismatch',
    () => `${op}: qLatent: expected shape [b, nq, h, r] (4 dims), got ${shapeOf(qLatent)}`,
  );
  const [batch, nq, heads, r] = qLatent.shape as [number, number, number, number];
  check(
    heads > 0 && r > 0,
    'shape-mismatch',
    () => `${op}: qLatent: expected h > 0 and r > 0, got ${shapeOf(qLatent)}`,
  );
  const dtype = qLatent.dtype;
  checkTensor(op, 'qPe', qPe, [batch, nq, heads, undefined], dtype, '[b, nq, h, dr]');
  checkTensor(op, 'wUv', wUv, [heads, r, undefined], dtype, '[h, r, dv]');
  const dv = wUv.shape[2]!;
  check(dv > 0, 'shape-mismatch', () => `${op}: wUv: expected dv > 0, got ${shapeOf(wUv)}`);
  return [batch, nq, heads, r, qPe.shape[3]!, dv];
}

/** Checks the scale, a finite number. */
export function checkScale(op: string, scale: unknown): asserts scale is number {
  check(
    typeof scale === 'number' && Number.isFinite(scale),
    'invalid-argument',
    () => `${op}: options.scale: expected a finite number, got ${String(scale)}`,
  );
}

/**
 * Absorbed MLA attention over a dense latent cache, the contract of `webattn run mla` and of the
 * reference's `mlaAbsorbedAttention`. For sequence b, head h and query i (of nq, at position
 * `p = lengths[b] − nq + i`): `s_j = scale · (q_latent·c_kv[j] + q_pe·k_pe[j])` over keys `j <= p`,
 * `ō = Σ_j softmax(s)_j c_kv[j]`, `o = ō · w_uv[h]`. Slots at or past `lengths[b]` are never read,
 * so they may hold anything, NaN included; a query with no visible key (an empty sequence, or
 * `i < nq − lengths[b]`) gets 0. Decode (nq = 1..k), prefill (nq = lengths) and chunked prefill are
 * all this one call.
 *
 * @param gpu - The device.
 * @param qLatent - `[b, nq, h, r]`, queries in the latent space (`W_UKᵀ q_nope`).
 * @param qPe - `[b, nq, h, dr]`, rotated.
 * @param cKv - `[b, nk, r]`, the normalised latent cache.
 * @param kPe - `[b, nk, dr]`, the rotated rope keys.
 * @param wUv - `[h, r, dv]`.
 * @param lengths - Keys per sequence, `b` integers in `[0, nk]`.
 * @param options - Scale, tier, splits.
 * @returns o `[b, nq, h, dv]` in the inputs' dtype, owned by the caller.
 * @throws WebAttnError naming the argument, expected and actual value for bad shapes, dtypes, lengths or scale.
 */
export async function mlaAttention(
  gpu: Gpu,
  qLatent: Tensor,
  qPe: Tensor,
  cKv: Tensor,
  kPe: Tensor,
  wUv: Tensor,
  lengths: ArrayLike<number>,
  options: MlaAttentionOptions,
): Promise<Tensor> {
  const op = 'mlaAttention';
  const [batch, , , r, dr] = checkQueries(op, qLatent, qPe, wUv);
  const dtype = qLatent.dtype;
  check(
    cKv.shape.length === 3,
    'shape-mismatch',
    () => `${op}: cKv: expected shape [b, nk, r], got ${shapeOf(cKv)}`,
  );
  const nk = cKv.shape[1]!;
  checkTensor(op, 'cKv', cKv, [batch, nk, r], dtype, '[b, nk, r]');
  checkTensor(op, 'kPe', kPe, [batch, nk, dr], dtype, '[b, nk, dr]');
  checkLengths(op, lengths, batch, nk, 'nk, the cache slots');
  checkScale(op, options?.scale);
  checkSplits(op, options.splits);
  const tier = pickTier(gpu.caps, dtype, options.tier, op);
  const launch: MlaLaunch = {
    qLatent,
    qPe,
    keys: { source: 'dense', cKv, kPe, slots: nk },
    wUv,
    lengths,
    scale: options.scale,
    tier,
    ...(options.splits !== undefined && { splits: options.splits }),
  };
  if (resolveMlaKernel(options.kernel, tier, qLatent.shape[1]!) === 'flash') {
    return launchMlaFlashPrefill(gpu, launch, (b, j) => b * nk + j);
  }
  return launchMlaAttention(gpu, launch);
}

/** Checks a forced split count. */
export function checkSplits(op: string, splits: number | undefined): void {
  check(
    splits === undefined || (Number.isSafeInteger(splits) && splits >= 1),
    'invalid-argument',
    () => `${op}: options.splits: expected a positive integer, got ${splits}`,
  );
}

/** Host side of selected-block attention. */
import {
  type Capabilities,
  check,
  type DispatchSpec,
  dispatch,
  type Gpu,
  matrixSubgroupSize,
  memoizeWgsl,
  preferredMatrixConfig,
  type SubgroupMatrixConfig,
  Tensor,
  type Tier,
  withinWorkgroupMemorySteps,
} from '@webattn/core';
import type { NsaConfig } from '../config.js';
import type { NsaLayout } from '../layout.js';
import { invertSelection } from '../select/inverse.js';
import { SELECTED_PARAMS, SELECTED_WORKGROUP, selectedAttentionWgsl } from './selected.wgsl.js';
import {
  SELECTED_BACKWARD_WORKGROUP,
  SELECTED_KEYS_PARAMS,
  SELECTED_STATS_ROWS,
  selectedDkWgsl,
  selectedDqWgsl,
  selectedDvWgsl,
  selectedStatsWgsl,
} from './selected-backward.wgsl.js';
import {
  SELECTED_MATRIX_BACKWARD_PARAMS,
  selectedBackwardMatrixUnsupported,
  selectedDqMatrixSharedBytes,
  selectedDqMatrixWgsl,
  selectedKeysMatrixSharedBytes,
  selectedKeysMatrixWgsl,
  selectedKeysSumWgsl,
} from './selected-backward-matrix.wgsl.js';
import {
  type SelectedDkDvRolesConfig,
  selectedDkDvRolesInvocations,
  selectedDkDvRolesMatrixWgsl,
  selectedDkDvRolesSharedBytes,
  selectedDkDvRolesUnsupported,
} from './selected-dkdv-roles-matrix.wgsl.js';
import {
  selectedDqRolesMatrixWgsl,
  selectedDqRolesSharedBytes,
  selectedDqRolesUnsupported,
} from './selected-dq-roles-matrix.wgsl.js';
import { selectedGroupSharedBytes, selectedGroupWgsl } from './selected-group.wgsl.js';
import {
  type SelectedLazyConfig,
  selectedLazyMatrixWgsl,
  selectedLazySharedBytes,
  selectedLazyThreads,
  selectedLazyUnsupported,
} from './selected-lazy-matrix.wgsl.js';
import {
  type SelectedMatrixConfig,
  selectedMatrixSharedBytes,
  selectedMatrixUnsupported,
  selectedMatrixWgsl,
} from './selected-matrix.wgsl.js';

// Each kernel's WGSL is written once per configuration (see memoizeWgsl).
const selectedAttentionCode = memoizeWgsl(selectedAttentionWgsl);
const selectedDkDvRolesMatrixCode = memoizeWgsl(selectedDkDvRolesMatrixWgsl);
const selectedDkCode = memoizeWgsl(selectedDkWgsl);
const selectedDqMatrixCode = memoizeWgsl(selectedDqMatrixWgsl);
const selectedDqRolesMatrixCode = memoizeWgsl(selectedDqRolesMatrixWgsl);
const selectedDqCode = memoizeWgsl(selectedDqWgsl);
const selectedDvCode = memoizeWgsl(selectedDvWgsl);
const selectedGroupCode = memoizeWgsl(selectedGroupWgsl);
const selectedKeysMatrixCode = memoizeWgsl(selectedKeysMatrixWgsl);
const selectedKeysSumCode = memoizeWgsl(selectedKeysSumWgsl);
const selectedLazyMatrixCode = memoizeWgsl(selectedLazyMatrixWgsl);
const selectedMatrixCode = memoizeWgsl(selectedMatrixWgsl);
const selectedStatsCode = memoizeWgsl(selectedStatsWgsl);

/**
 * Key tiles the tensor-core selected kernels try, widest first (the first that fits wins). Mutable
 * so that the selected-attention diagnostic can time each; not exported from the package.
 */
export const SELECTED_MATRIX_TILES: number[] = [64, 32, 16];

/**
 * The tensor-core forward's shape. `lazyTile`, above 0, runs the flash-shaped kernel
 * (selected-lazy-matrix.wgsl.ts) over tiles of that many keys, split over `lazySubgroups`
 * subgroups (0: one 16-key slice each); on the H200 at 65,536 tokens (nsa-selected-ablations lazy)
 * it took the selected attention from 43.4 to 28.2 ms with 32-key tiles and 26.5 with 64. With
 * `lazyTile` 0, the wide kernel (selected-matrix.wgsl.ts) at the widest of SELECTED_MATRIX_TILES
 * that fits: over how many parts of d it splits each key slice's scores (one subgroup per slice
 * and part; SelectedMatrixConfig.scoreParts), and whether its workgroup arrays hold vectors where
 * the shape allows (SelectedMatrixConfig.vectorArrays). Both load K and V 16 bytes at a time with
 * `wideLoads`. `lazyPrefetchKeys` loads each tile's keys during the tile before in the
 * flash-shaped kernel where a block is one tile (SelectedLazyConfig.prefetchKeys): 26.7 -> 24.3 ms
 * on the H200 at 65,536 tokens, the same bits (nsa-selected-ablations lazy-prefetch; issuing the
 * values' loads before the scores as well, 27.1 / 26.8, lost). Mutable so that a diagnostic can
 * time each; not exported from the package.
 */
export const SELECTED_FORWARD: {
  scoreParts: number;
  wideLoads: boolean;
  vectorArrays: boolean;
  lazyTile: number;
  lazySubgroups: number;
  lazyPrefetchKeys: boolean;
} = {
  scoreParts: 2,
  wideLoads: true,
  vectorArrays: true,
  lazyTile: 64,
  lazySubgroups: 0,
  lazyPrefetchKeys: true,
};

/**
 * Whether the tensor-core kernels read each next selected block (the forward and dQ) or listing
 * token (dK/dV) one step ahead (SelectedMatrixConfig.indexAhead). On the H200 at 65,536 tokens
 * (nsa-selected-ablations ahead, two runs each): the selected attention 44.3 / 44.0 -> 43.7 / 43.5
 * ms, its dQ 47.6 / 47.3 -> 47.0 / 46.7, its dK/dV 75.6 / 75.3 -> 73.5 / 72.8, the same bits.
 * Mutable so that a diagnostic can time both; not exported from the package.
 */
export const SELECTED_INDEX_AHEAD: { enabled: boolean } = { enabled: true };

/**
 * Whether the tensor-core forward and dQ kernels walk the tokens of one KV head before the next
 * (SelectedMatrixConfig.kvHeadMajor). Mutable so that a diagnostic can time each; not exported
 * from the package.
 */
export const SELECTED_ORDER: { kvHeadMajor: boolean } = { kvHeadMajor: true };

/**
 * How the backward's tensor-core kernels split their work by role where that applies (d = dv):
 * `dq`, whether dQ runs with Q held by one role's subgroups and dO by the other's;
 * `dkdvColumnSplits`, above 0, computes dK and dV in one kernel (selectedDkDvRolesMatrixWgsl), S
 * by one role and dP by the other, each role's work split by columns over that many subgroups; 0
 * runs the separate dK and dV kernels; `wideLoads`, whether the role-split dQ and dK/dV kernels
 * read q, k, v and dO 16 bytes per load (else 8). On the H200 at 65,536 tokens 16-byte loads took
 * the dQ kernel from 37.4 to 36.6 ms and the dK/dV kernel from 46.1 to 49.6 (two sessions alike,
 * the same bits; nsa-backward-kernels), so each kernel has its own. One column split in dK/dV: its
 * 32-key tiles then declare 16,000 bytes (K and V staged in turn), three workgroups of four
 * subgroups per H200 SM as the 16-key tiles over two splits had, each token's q and dO now staged
 * once per 32 keys instead of 16: 46.8 -> 32.5 ms at 65,536 tokens (nsa-backward-kernels
 * dkdv-tiles; 32 keys over two splits 39.9, 64 over one or two 45.9 / 44.8, 16 over one 54.1;
 * within 1.8e-4 of the largest gradient of two splits' sums). `prefetchDqTiles`, whether the dQ
 * kernel loads each key tile during the tile before (SelectedMatrixConfig.prefetchTiles): 36.9 ->
 * 36.3-36.7 ms at 65,536 tokens, the same bits (nsa-backward-kernels prefetch, two runs). Mutable
 * so that a diagnostic can time each; not exported from the package.
 */
export const SELECTED_ROLE_SPLIT: {
  dq: boolean;
  dkdvColumnSplits: number;
  wideLoads: { dq: boolean; dkdv: boolean };
  prefetchDqTiles: boolean;
} = {
  dq: true,
  dkdvColumnSplits: 1,
  wideLoads: { dq: true, dkdv: false },
  prefetchDqTiles: true,
};

/** What every tensor-core selected kernel's shape takes from the config and the adapter. */
function selectedShape(
  caps: Capabilities,
  config: Pick<NsaConfig, 'headDim' | 'vHeadDim' | 'topN' | 'heads' | 'kvHeads' | 'blockSize'>,
  matrix: Pick<SubgroupMatrixConfig, 'M' | 'N' | 'K'>,
) {
  return {
    d: config.headDim,
    dv: config.vHeadDim,
    topN: config.topN,
    group: config.heads / config.kvHeads,
    blockSize: config.blockSize,
    matrix,
    ...matrixSubgroupSize(caps),
  };
}

/**
 * The shape of a tensor-core kernel (the forward, the backward's dQ or its dK/dV) for this config:
 * for the forward the largest key tile that divides the block size and fits the workgroup memory,
 * for the backward's kernels the largest within the lowest step of WORKGROUP_MEMORY_STEPS any
 * tile fits; undefined when none fits. `assumeMatrix` stands in for an
 * adapter that lists no matrix shape (the null backend, which compiles them all).
 */
export function selectedMatrixConfig(
  caps: Capabilities,
  config: Pick<NsaConfig, 'headDim' | 'vHeadDim' | 'topN' | 'heads' | 'kvHeads' | 'blockSize'>,
  assumeMatrix?: Pick<SubgroupMatrixConfig, 'M' | 'N' | 'K'>,
  kernel: 'forward' | 'dq' | 'dq-roles' | 'dk' | 'dkdv-roles' | 'dv' = 'forward',
): SelectedMatrixConfig | undefined {
  const matrix = preferredMatrixConfig(caps) ?? assumeMatrix;
  if (!matrix) return undefined;
  // The forward at each tile: its scores split as SELECTED_FORWARD says, else whole.
  const scoreParts = kernel === 'forward' ? [...new Set([SELECTED_FORWARD.scoreParts, 1])] : [1];
  // 16-byte loads where the kernel reads them (the plain backward kernels do not).
  const wideLoads =
    kernel === 'forward'
      ? SELECTED_FORWARD.wideLoads
      : kernel === 'dq-roles'
        ? SELECTED_ROLE_SPLIT.wideLoads.dq
        : kernel === 'dkdv-roles' && SELECTED_ROLE_SPLIT.wideLoads.dkdv;
  const prefetchTiles = kernel === 'dq-roles' && SELECTED_ROLE_SPLIT.prefetchDqTiles;
  const candidates: { c: SelectedMatrixConfig; bytes: number }[] = [];
  for (const [tile, parts] of SELECTED_MATRIX_TILES.flatMap((t) => scoreParts.map((p) => [t, p] as const))) {
    const plain: SelectedMatrixConfig = {
      ...selectedShape(caps, config, matrix),
      tile,
      ...(parts > 1 ? { scoreParts: parts } : {}),
      ...(wideLoads && { wideLoads }),
      ...(SELECTED_ORDER.kvHeadMajor &&
        (kernel === 'forward' || kernel.startsWith('dq')) && { kvHeadMajor: true }),
      ...(SELECTED_INDEX_AHEAD.enabled && { indexAhead: true }),
      ...(prefetchTiles && { prefetchTiles }),
    };
    // The forward's arrays of vectors where its shape allows them (the same bytes either way).
    const vectors: SelectedMatrixConfig = { ...plain, vectorArrays: true };
    const c =
      kernel === 'forward' &&
      SELECTED_FORWARD.vectorArrays &&
      selectedMatrixUnsupported(vectors) === undefined
        ? vectors
        : plain;
    const bytes = {
      forward: () => selectedMatrixSharedBytes(c),
      dq: () => selectedDqMatrixSharedBytes(c),
      'dq-roles': () => selectedDqRolesSharedBytes(c),
      'dkdv-roles': () => selectedDkDvRolesSharedBytes(fused(c)),
      dk: () => selectedKeysMatrixSharedBytes(c, 'dk'),
      dv: () => selectedKeysMatrixSharedBytes(c, 'dv'),
    }[kernel]();
    const why =
      kernel === 'forward'
        ? selectedMatrixUnsupported(c)
        : kernel === 'dq-roles'
          ? selectedDqRolesUnsupported(c)
          : kernel === 'dkdv-roles'
            ? (selectedDkDvRolesUnsupported(fused(c)) ?? invocationsUnsupported(fused(c), caps))
            : selectedBackwardMatrixUnsupported(c);
    if (why === undefined) candidates.push({ c, bytes });
  }
  const limit = caps.limits.maxComputeWorkgroupStorageSize;
  // The backward kernels take a narrower tile under a step of the workgroup memory an SM holds
  // over a wider one above it: at 65,536 tokens on the H200 the role-split dQ kernel ran at 46.7 ms
  // with 64-key tiles (42.6 KiB), 40.1 with 32 (21.6) and 36.6 with 16 (11.1); the fused dK/dV
  // kernel, over two column splits with K and V side by side, at 68.9 with 32 (28.6 KiB) and 50.0
  // with 16 (15.1) (nsa-backward-kernels tiles); over one split, with K and V in turn, 32-key tiles
  // fit under the first step (SELECTED_ROLE_SPLIT).
  const chosen =
    kernel === 'forward'
      ? candidates.find((x) => x.bytes <= limit)
      : withinWorkgroupMemorySteps(candidates, (x) => x.bytes, limit);
  return chosen?.c;
}

/** Why the fused dK/dV kernel's invocations exceed the adapter's limit (four column splits: 512), or undefined. */
function invocationsUnsupported(c: SelectedDkDvRolesConfig, caps: Capabilities): string | undefined {
  const invocations = selectedDkDvRolesInvocations(c);
  const limit = caps.limits.maxComputeInvocationsPerWorkgroup;
  return invocations > limit ? `${invocations} invocations exceed the limit of ${limit}` : undefined;
}

/** A backward shape as the fused dK/dV kernel's, with the column splits SELECTED_ROLE_SPLIT sets. */
function fused(c: SelectedMatrixConfig): SelectedDkDvRolesConfig {
  return { ...c, columnSplits: SELECTED_ROLE_SPLIT.dkdvColumnSplits };
}

/**
 * The flash-shaped tensor-core forward's shape (selected-lazy-matrix.wgsl.ts): at the tile
 * SELECTED_FORWARD.lazyTile, or the widest of its halves (down to N keys) that divides the block
 * size and fits; undefined when that is 0, the adapter has no matrix shape (`assumeMatrix` stands
 * in for one) or no tile fits.
 */
export function selectedLazyConfig(
  caps: Capabilities,
  config: Pick<NsaConfig, 'headDim' | 'vHeadDim' | 'topN' | 'heads' | 'kvHeads' | 'blockSize'>,
  assumeMatrix?: Pick<SubgroupMatrixConfig, 'M' | 'N' | 'K'>,
): SelectedLazyConfig | undefined {
  const matrix = preferredMatrixConfig(caps) ?? assumeMatrix;
  if (!matrix) return undefined;
  for (let tile = SELECTED_FORWARD.lazyTile; tile >= matrix.N; tile /= 2) {
    const c: SelectedLazyConfig = {
      ...selectedShape(caps, config, matrix),
      tile,
      ...(SELECTED_FORWARD.lazySubgroups > 0 && { subgroups: SELECTED_FORWARD.lazySubgroups }),
      ...(SELECTED_FORWARD.wideLoads && { wideLoads: true }),
      ...(SELECTED_ORDER.kvHeadMajor && { kvHeadMajor: true }),
      ...(SELECTED_INDEX_AHEAD.enabled && { indexAhead: true }),
      ...(SELECTED_FORWARD.lazyPrefetchKeys && tile === config.blockSize && { prefetchKeys: true }),
    };
    const fits =
      selectedLazyUnsupported(c) === undefined &&
      selectedLazySharedBytes(c) <= caps.limits.maxComputeWorkgroupStorageSize &&
      selectedLazyThreads(c) <= caps.limits.maxComputeInvocationsPerWorkgroup;
    if (fits) return c;
  }
  return undefined;
}

/** The forward kernel a tier runs: tensor cores where they fit, else group-centric or per row. */
function selectedForwardKernel(gpu: Gpu, config: NsaConfig, tier: Tier, dtype: Tensor['dtype']) {
  const lazy = tier === 'subgroup-matrix' ? selectedLazyConfig(gpu.caps, config) : undefined;
  if (lazy) return { code: selectedLazyMatrixCode(lazy), groupCentric: true };
  const matrix = tier === 'subgroup-matrix' ? selectedMatrixConfig(gpu.caps, config) : undefined;
  if (matrix) return { code: selectedMatrixCode(matrix), groupCentric: true };
  const kernel = {
    dtype,
    d: config.headDim,
    dv: config.vHeadDim,
    topN: config.topN,
    group: config.heads / config.kvHeads,
  };
  // The group-centric kernel reads each key once per group; the row kernel is the fallback for
  // groups whose scores do not fit the device's workgroup memory.
  return selectedGroupSharedBytes(kernel) <= gpu.caps.limits.maxComputeWorkgroupStorageSize
    ? { code: selectedGroupCode(kernel), groupCentric: true }
    : { code: selectedAttentionCode(kernel), groupCentric: false };
}

/** Output of the selected branch: `o` like q's rows with dv columns, and its natural-log lse `[tokens, heads]`. */
export interface SelectedAttention {
  o: Tensor;
  lse: Tensor;
}

/** The values of {@link SELECTED_PARAMS} for a call, shared by the forward and backward kernels. */
function selectedParamValues(layout: NsaLayout, config: NsaConfig, meta: { tokenTable: number }) {
  return {
    tokens: layout.tokens,
    heads: config.heads,
    kvHeads: config.kvHeads,
    group: config.heads / config.kvHeads,
    scale: config.scale,
    blockSize: config.blockSize,
    tokenTable: meta.tokenTable,
  };
}

/** Attention of every query over the blocks selected for its KV head. */
export async function selectedAttention(
  gpu: Gpu,
  q: Tensor,
  k: Tensor,
  v: Tensor,
  selection: Tensor,
  meta: { tensor: Tensor; tokenTable: number },
  layout: NsaLayout,
  config: NsaConfig,
  tier: Tier,
): Promise<SelectedAttention> {
  const o = Tensor.empty(gpu, [...layout.tokenDims, config.heads, config.vHeadDim], q.dtype);
  const lse = Tensor.empty(gpu, [layout.tokens, config.heads]);
  const kernel = selectedForwardKernel(gpu, config, tier, q.dtype);
  await dispatch(gpu, {
    label: 'nsa selected attention',
    code: kernel.code,
    buffers: [q, k, v, selection, meta.tensor, o, lse],
    params: { layout: SELECTED_PARAMS, values: selectedParamValues(layout, config, meta) },
    // Group kernels: a workgroup per (token, KV head); the row kernel: an invocation per (token, head).
    workgroups: kernel.groupCentric
      ? layout.tokens * config.kvHeads
      : Math.ceil((layout.tokens * config.heads) / SELECTED_WORKGROUP),
  });
  return { o, lse };
}

/** Gradients of the selected branch's inputs. */
export interface SelectedGradients {
  dq: Tensor;
  dk: Tensor;
  dv: Tensor;
}

/** Where the backward kernels find the sequences and the selection blocks. */
export interface SelectedTables {
  tensor: Tensor;
  tokenTable: number;
  blockTable: number;
  /** Selection blocks of all sequences. */
  blocks: number;
}

/**
 * Backward of {@link selectedAttention} given its output, lse and upstream gradient, and where
 * the caller has it, each row's `delta = <dO, o>` (f32 `[tokens, heads]`, as the combine's
 * backward writes it), which then takes the place of the statistics pass over o and dO.
 */
export async function selectedAttentionBackward(
  gpu: Gpu,
  inputs: {
    q: Tensor;
    k: Tensor;
    v: Tensor;
    selection: Tensor;
    o: Tensor;
    lse: Tensor;
    dO: Tensor;
    delta?: Tensor;
  },
  meta: SelectedTables,
  layout: NsaLayout,
  config: NsaConfig,
  tier: Tier,
): Promise<SelectedGradients> {
  const { q, k, v, selection, o, lse, dO, delta } = inputs;
  const kernel = { dtype: q.dtype, d: config.headDim, dv: config.vHeadDim, topN: config.topN };
  const values = selectedParamValues(layout, config, meta);
  const rows = layout.tokens * config.heads;
  const keyRows = layout.tokens * config.kvHeads;
  using stats = Tensor.empty(gpu, [2, layout.tokens, config.heads]);
  if (delta) {
    check(
      delta.shape.join() === lse.shape.join(),
      'shape-mismatch',
      () => `delta: expected shape [${lse.shape.join(', ')}] (lse's), got [${delta.shape.join(', ')}]`,
    );
    check(delta.dtype === 'f32', 'dtype-mismatch', () => `delta: expected dtype f32, got ${delta.dtype}`);
    // The kernels read [lse | delta] from one binding.
    stats.copyFrom([lse, delta]);
  } else {
    await dispatch(gpu, {
      label: 'nsa selected attention stats',
      code: selectedStatsCode(kernel),
      buffers: [o, dO, lse, stats],
      params: { layout: SELECTED_PARAMS, values },
      workgroups: Math.ceil(rows / SELECTED_STATS_ROWS),
    });
  }
  const dqKernel = (kind: 'dq' | 'dq-roles') =>
    tier === 'subgroup-matrix' ? selectedMatrixConfig(gpu.caps, config, undefined, kind) : undefined;
  const dqRoles = SELECTED_ROLE_SPLIT.dq ? dqKernel('dq-roles') : undefined;
  const dqPlain = dqRoles ? undefined : dqKernel('dq');
  const matrixDqCode = dqRoles
    ? selectedDqRolesMatrixCode(dqRoles)
    : dqPlain
      ? selectedDqMatrixCode(dqPlain)
      : undefined;
  // dK and dV in one kernel where it applies (its own tile; the chunk sum follows it).
  const dkdvShape =
    tier === 'subgroup-matrix' && SELECTED_ROLE_SPLIT.dkdvColumnSplits > 0
      ? selectedMatrixConfig(gpu.caps, config, undefined, 'dkdv-roles')
      : undefined;
  const dkdvRoles = dkdvShape ? fused(dkdvShape) : undefined;
  // Otherwise a kernel per gradient. dK's kernel holds the value tile as well, so dV may fit a wider
  // tile than dK (64 against 32 keys at d = 128 in 48 KiB); tensor cores for both or for neither.
  const keyConfigs = (['dk', 'dv'] as const).map((grad) =>
    tier === 'subgroup-matrix' && !dkdvRoles
      ? selectedMatrixConfig(gpu.caps, config, undefined, grad)
      : undefined,
  );
  const matrixKeys = keyConfigs[0] && keyConfigs[1] ? { dk: keyConfigs[0], dv: keyConfigs[1] } : undefined;
  // The other tiers run an invocation per (token, query head) or (key token, KV head).
  const scalar = (
    name: string,
    code: string,
    buffers: Tensor[],
    invocations: number,
    params: DispatchSpec['params'] = { layout: SELECTED_PARAMS, values },
  ) =>
    dispatch(gpu, {
      label: `nsa selected attention ${name}`,
      code,
      buffers,
      params,
      workgroups: Math.ceil(invocations / SELECTED_BACKWARD_WORKGROUP),
    });
  // The tensor-core kernels share one uniform layout; dQ reads none of the inverted selection's.
  const matrixValues = {
    ...values,
    blockTable: meta.blockTable,
    inverseEntries: 0,
    slots: 0,
    chunkStart: 0,
    keyChunk: 0,
  };
  const dq = Tensor.empty(gpu, q.shape, q.dtype);
  const dk = Tensor.empty(gpu, k.shape, k.dtype);
  const dv = Tensor.empty(gpu, v.shape, v.dtype);
  try {
    const dqInputs = [q, k, v, selection, meta.tensor, dO, stats, dq];
    if (matrixDqCode) {
      // A workgroup per (token, KV head).
      await dispatch(gpu, {
        label: 'nsa selected attention dq',
        code: matrixDqCode,
        buffers: dqInputs,
        params: { layout: SELECTED_MATRIX_BACKWARD_PARAMS, values: matrixValues },
        workgroups: layout.tokens * config.kvHeads,
      });
    } else {
      await scalar('dq', selectedDqCode(kernel), dqInputs, rows);
    }
    // dK and dV gather, per block of keys, from the tokens that selected it.
    const inverse = await invertSelection(gpu, selection, meta, layout, config);
    using _inverse = inverse.tensor;
    const dkInputs = [q, k, v, inverse.tensor, meta.tensor, dO, stats, dk];
    const dvInputs = [q, k, inverse.tensor, meta.tensor, dO, stats, dv];
    if (dkdvRoles || matrixKeys) {
      // A workgroup per (chunk of a block's token list, key tile), each writing its part of the
      // tile's gradient; then, per (list, key tile), the parts summed in chunk order.
      const slots = meta.blocks * config.kvHeads;
      const params = {
        layout: SELECTED_MATRIX_BACKWARD_PARAMS,
        values: {
          ...matrixValues,
          inverseEntries: inverse.entries,
          slots,
          chunkStart: inverse.chunkStart,
          keyChunk: inverse.chunk,
        },
      };
      const width = dkdvRoles ? 2 * config.headDim : Math.max(config.headDim, config.vHeadDim);
      using partials = Tensor.empty(gpu, [inverse.maxChunks * config.blockSize * width]);
      // One fused pass writing dV's and dK's columns, or a pass per gradient.
      const passes = dkdvRoles
        ? [
            {
              name: 'dk dv',
              tile: dkdvRoles.tile,
              code: selectedDkDvRolesMatrixCode(dkdvRoles),
              inputs: dkInputs,
              sum: selectedKeysSumCode(dkdvRoles, 'dkdv'),
              outputs: [dv, dk],
            },
          ]
        : matrixKeys
          ? (['dk', 'dv'] as const).map((grad) => ({
              name: grad,
              tile: matrixKeys[grad].tile,
              code: selectedKeysMatrixCode(matrixKeys[grad], grad),
              inputs: grad === 'dk' ? dkInputs : dvInputs,
              sum: selectedKeysSumCode(matrixKeys[grad], grad),
              outputs: [grad === 'dk' ? dk : dv],
            }))
          : [];
      for (const pass of passes) {
        const tilesPerBlock = config.blockSize / pass.tile;
        await dispatch(gpu, {
          label: `nsa selected attention ${pass.name}`,
          code: pass.code,
          buffers: [...pass.inputs.slice(0, -1), partials],
          params,
          workgroups: inverse.maxChunks * tilesPerBlock,
        });
        await dispatch(gpu, {
          label: `nsa selected attention ${pass.name} sum`,
          code: pass.sum,
          buffers: [inverse.tensor, meta.tensor, partials, ...pass.outputs],
          params,
          workgroups: slots * tilesPerBlock,
        });
      }
    } else {
      const params = {
        layout: SELECTED_KEYS_PARAMS,
        values: {
          ...values,
          blockTable: meta.blockTable,
          blocks: meta.blocks,
          inverseEntries: inverse.entries,
        },
      };
      await scalar('dk', selectedDkCode(kernel), dkInputs, keyRows, params);
      await scalar('dv', selectedDvCode(kernel), dvInputs, keyRows, params);
    }
  } catch (error) {
    for (const t of [dq, dk, dv]) t.dispose();
    throw error;
  }
  return { dq, dk, dv };
}

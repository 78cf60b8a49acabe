/**
 * Dense FlashAttention-2 (causal, sliding window, GQA, bottom-right alignment, packed variable-length
 * batches, a dense KV cache read to each sequence's length), forward and backward. The kernels
 * never materialise the n x n scores; the backward recomputes probabilities from the saved
 * log-sum-exp. A GQA decode runs with the group's heads as one tile's rows (decode-groups.ts), and
 * a launch of few work items splits its keys over more workgroups (split-kv.ts).
 */
import type { Capabilities, SubgroupMatrixConfig, Tier } from '../capabilities.js';
import { dispatch } from '../dispatch.js';
import { bytesPerElement } from '../dtype.js';
import { check } from '../errors.js';
import type { Gpu } from '../gpu.js';
import { matrixSubgroupSize, preferredMatrixConfig } from '../matmul/matmul.js';
import { memoizeWgsl } from '../memoize-wgsl.js';
import { Tensor } from '../tensor.js';
import { pickTier, tierDtype } from '../tiers.js';
import { workgroupsPerSm } from '../workgroup-memory-steps.js';
import { flashDeltaWgsl, flashDkDvWgsl, flashDqWgsl } from './backward.wgsl.js';
import {
  flashDkDvMatrixWgsl,
  flashDqMatrixWgsl,
  type MatrixBackwardConfig,
  matrixBackwardUnsupported,
  matrixDkDvSharedBytes,
  matrixDqSharedBytes,
} from './backward-matrix.wgsl.js';
import {
  flashDkDvRolesMatrixWgsl,
  matrixDkDvRolesSharedBytes,
  matrixDkDvRolesUnsupported,
  type RolesConfig,
  roleSplitRows,
  roleSplitSubgroups,
} from './backward-roles-matrix.wgsl.js';
import { FLASH_PARAMS } from './common.wgsl.js';
import { groupedDecodeProblem, groupQueries, isGroupedDecode, ungroupOutputs } from './decode-groups.js';
import {
  flashDqRolesMatrixWgsl,
  matrixDqRolesSharedBytes,
  matrixDqRolesUnsupported,
} from './dq-roles-matrix.wgsl.js';
import { flashForwardWgsl, type RowKernelConfig } from './forward.wgsl.js';
import {
  flashForwardMatrixWgsl,
  type MatrixForwardConfig,
  matrixForwardQueryInWorkgroup,
  matrixForwardRows,
  matrixForwardSharedBytes,
  matrixForwardSubgroups,
  matrixForwardUnsupported,
  matrixForwardValueLoads,
} from './forward-matrix.wgsl.js';
import { matrixShape, rowGroupsOf, withoutRowGroups } from './matrix-kernel.js';
import {
  type FlashProblem,
  flashProblem,
  hasKeyBlocks,
  type LaunchMeta,
  launchMeta,
  longestKeyRows,
  longestQueryRows,
  type ProblemOptions,
} from './problem.js';
import {
  combineSplits,
  FLASH_SPLIT_KV,
  planKeySplits,
  splitOutputs,
  splitParams,
  UNSPLIT_PARAMS,
} from './split-kv.js';

/** Options of {@link flashAttention}. */
export interface FlashAttentionOptions extends ProblemOptions {
  /** Kernel tier; by default the fastest the device has for the tensors' dtype. */
  tier?: Tier;
}

/** What the backward needs from the forward. The caller keeps q, k, v, o and lse alive until then. */
export interface FlashAttentionContext {
  gpu: Gpu;
  q: Tensor;
  k: Tensor;
  v: Tensor;
  o: Tensor;
  lse: Tensor;
  problem: FlashProblem;
  tier: Tier;
}

/** Output of {@link flashAttention}: `o` (q's dtype) and `lse` (f32, natural log), both owned by the caller. */
export interface FlashAttentionResult {
  o: Tensor;
  lse: Tensor;
  ctx: FlashAttentionContext;
}

/** Gradients from {@link flashAttentionBackward}, each shaped like its input. */
export interface FlashAttentionGrads {
  dq: Tensor;
  dk: Tensor;
  dv: Tensor;
}

/** Query (or key) rows per workgroup of the row-per-thread kernels. */
export const FLASH_ROWS = 64;

/**
 * The row kernels' shape for a head size on this device: as many staged rows per tile as fit the
 * workgroup storage (at most 32), since every staged row is reused by all of the workgroup's rows.
 */
export function rowKernelConfig(caps: Capabilities, tier: Tier, d: number, dv: number): RowKernelConfig {
  const rowBytes = (d + dv + 2) * 4;
  const fit = Math.floor(caps.limits.maxComputeWorkgroupStorageSize / rowBytes);
  check(
    fit >= 1,
    'limit-exceeded',
    () =>
      `flashAttention: head dims d = ${d}, dv = ${dv} need ${rowBytes} bytes of workgroup storage per row; this device has ${caps.limits.maxComputeWorkgroupStorageSize}`,
  );
  const tile = Math.min(32, 2 ** Math.floor(Math.log2(fit)));
  return { dtype: tierDtype(tier), d, dv, rows: FLASH_ROWS, tile };
}

/** The forward kernel a call runs: tensor cores where the tier and head dims allow, else row-per-thread. */
export type FlashForwardVariant =
  | { kind: 'matrix'; config: MatrixForwardConfig }
  | { kind: 'row'; config: RowKernelConfig };

/**
 * A tensor-core shape to try: subgroups per workgroup (per row group), keys per tile, fragments of
 * query rows (per row group), and for the forward its row groups (MatrixForwardConfig.rowGroups,
 * 1 unless given).
 */
export type MatrixShapeChoice = readonly [
  subgroups: number,
  tile: number,
  rowFragments: number,
  rowGroups?: number,
];

/**
 * Shapes of the tensor-core forward to try. Of those that fit the device's limits and hold Q in
 * registers, the one with the most query rows per H200 SM wins (matrixForwardConfig), ties to the
 * earlier here; a shape with row groups only where they hold more subgroups per SM than the same
 * shape without (rowGroupsWithoutGain). Each subgroup owning two row fragments halves the
 * workgroup-memory loads per multiply-accumulate: at the same rows per SM they were faster (d = 128:
 * [2, 32, 2, 2] 24.0 ms against [2, 32, 1, 4] 26.8; d = 96: 22.9 against 24.4). Where two
 * fragments do not hold Q, groups of one fragment do: at d = 256, [2, 32, 1, 4] (32,016 bytes, 64
 * rows per SM) ran 62.8 ms against [2, 32, 1] 168.3 (two workgroups of 16 rows); at d = 192,
 * [2, 32, 1, 3] (24,144 bytes, two of 48 rows) 42.6 against [2, 32, 2] 114.6; the MLA prefill's
 * forward (288/256) 9.9 against 21.7 ms; at d = 64, [2, 32, 1, 3] (144 rows per SM) 18.8 against
 * [2, 32, 2] (128) 18.9. More than four groups were slower at 288/256 ([2, 32, 1, 5]: 12.1 ms). All
 * H200, n = 16384 (MLA: 8192), causal; the same bits where the row fragments per subgroup stay,
 * within 1.3e-4 of the largest output where they change (flash-shapes forward S,T,R,G d=N,
 * mla-prefill-shapes).
 */
export const FORWARD_SHAPES: MatrixShapeChoice[] = [
  [2, 32, 2, 2],
  [2, 32, 2],
  [2, 32, 1, 4],
  [2, 32, 1, 3],
  [2, 32, 1],
  [1, 16, 1],
];

/**
 * Shapes of the tensor-core backward kernels. Measured on the H100 (d = 128, n = 8192, causal): 2
 * subgroups with 16-key tiles were fastest; wider tiles cost registers the compiler no longer has.
 */
export const BACKWARD_SHAPES: MatrixShapeChoice[] = [
  [2, 16, 1],
  [4, 16, 1],
  [1, 16, 1],
];

/**
 * Whether a tensor-core backward pass runs its role-split kernel where it applies, over what tile,
 * and with each role's work split over how many subgroups by columns.
 */
export interface RoleSplitChoice {
  roles: boolean;
  /** Rows of the other side per staged tile, apart from the backward shape's. */
  rolesTile: number;
  columnSplits: number;
  /** Whether the role-split kernel loads each tile during the one before (RolesConfig.prefetchTiles). */
  prefetchTiles?: boolean;
  /**
   * Whether the dK/dV kernel's column splits split each score's d-steps instead of the tile's
   * columns (RolesConfig.splitSteps), so that 16-key tiles split too.
   */
  splitSteps?: boolean;
  /**
   * The dQ kernel's groups of query rows sharing each staged key tile (RolesConfig.rowGroups);
   * 1 unless given.
   */
  rowGroups?: number;
}

/**
 * Which tensor-core dK/dV kernel runs where both could: the role-split one (four subgroups over the
 * plain kernel's 32 key rows, half the accumulators each; d = dv) or the plain one; the role-split
 * kernel's query tile, apart from the dQ kernel's key tile; and its column splits. At n = 16384 on
 * the H200 (d = 128, causal) the dK/dV pass took 282.7 ms plain, 198.6 split over 32-query tiles
 * and 130.4 with each role split again over two subgroups by columns (eight subgroups, a quarter
 * of the accumulators each), its gradients equal bit for bit. Each query tile loaded during the
 * tile before it (prefetchTiles): 105.3 -> 87.5 ms, the same bits (flash-shapes backward-prefetch).
 * Over 16-query tiles with the two parts splitting each score's d-steps (22,144 bytes, two
 * workgroups per SM, where 32-query tiles split by columns declare 32,000: one): 87.0 -> 69.5 ms
 * (flash-shapes dkdv-steps). Two row groups of one part sharing each 16-query tile (24,192 bytes:
 * two workgroups of eight subgroups, 128 key rows, per SM) ran slower, 80.4 against 69.4 ms: each
 * subgroup then holds all eight of its K or V fragments and a whole accumulator (flash-shapes
 * dkdv-groups). Mutable so that a diagnostic can time the choices in one run.
 */
export const DKDV_KERNEL: RoleSplitChoice = {
  roles: true,
  rolesTile: 16,
  columnSplits: 2,
  prefetchTiles: true,
  splitSteps: true,
  rowGroups: 1,
};

/**
 * The same choice for the dQ pass (its role split: Q and dO held by one role each): at n = 16384 on
 * the H200 122.1 ms plain, 76.2 split over 16-key tiles, 81.1 over 32-key tiles split again by
 * columns; each key tile loaded during the tile before it, 63.2 -> 51.4 ms, the same bits. Two
 * row groups sharing each key tile (22,016 bytes: two workgroups of eight subgroups per SM, where
 * one group's 15,360 bytes hold three of four): 40.9 -> 34.1 ms, the same bits (flash-shapes
 * dq-groups).
 */
export const DQ_KERNEL: RoleSplitChoice = {
  roles: true,
  rolesTile: 16,
  columnSplits: 1,
  prefetchTiles: true,
  rowGroups: 2,
};

/**
 * Whether the tensor-core forward and backward read q, k, v and dO 16 bytes per load
 * (MatrixKernelConfig.wideLoads). Mutable so that a diagnostic can time both.
 */
export const FLASH_WIDE_LOADS: { forward: boolean; backward: boolean } = { forward: true, backward: true };

/**
 * Whether the tensor-core forward issues each tile's value loads before its softmax and stores
 * them after (MatrixForwardConfig.prefetchValues), where each invocation holds at most
 * {@link PREFETCH_MAX_VALUE_LOADS} of them. On the H200 at n = 16384 (d = 128, eight 16-byte
 * loads per invocation), 38.96 / 39.15 -> 37.56 / 37.30 ms, the same bits (flash-shapes prefetch).
 * Mutable so that a diagnostic can time both.
 */
export const FLASH_PREFETCH_VALUES: { forward: boolean } = { forward: true };

/**
 * Whether the tensor-core forward's workgroup arrays hold vectors: its staging (`vec4<f16>`, one
 * or two stores per load instead of four or eight; MatrixForwardConfig.vectorStaging) and its
 * scores and probabilities (four keys per access; vectorScores, where the shape allows). On the
 * H200 at n = 16384 the staging took the forward from 36.73 / 37.00 to 34.49 / 34.80 ms, the same
 * bits, and the vector scores to 32.01 / 32.37 (flash-shapes vectors). `backwardStaging` and
 * `backwardScores` ask the same of the backward kernels (MatrixBackwardConfig.vectorStaging,
 * vectorScores, each kernel's scores where its split of the tile allows): their staged q, k, v and
 * dO rows, and their S, dP, P and dS with the query statistics; the backward went from 202.3 /
 * 203.1 to 170.1 / 169.4 ms, the same bits (flash-shapes backward-vectors). Mutable so that a
 * diagnostic can time each.
 */
export const FLASH_VECTORS: {
  staging: boolean;
  scores: boolean;
  backwardStaging: boolean;
  backwardScores: boolean;
} = { staging: true, scores: true, backwardStaging: true, backwardScores: true };

/**
 * Most value loads per invocation the forward holds through its softmax: 32 registers. MLA's
 * prefill (dv = 256, 16 per invocation) would hold 64 next to its 136 of Q and accumulator.
 */
const PREFETCH_MAX_VALUE_LOADS = 8;

/**
 * A backward pass's plain and role-split kernels: WGSL, why the split does not apply, its memory,
 * its subgroups and its rows of its own side per workgroup.
 */
interface RoleSplitKernels {
  plain: (c: MatrixBackwardConfig) => string;
  split: (c: RolesConfig) => string;
  splitUnsupported: (c: RolesConfig) => string | undefined;
  splitSharedBytes: (c: RolesConfig) => number;
  splitSubgroups: (c: RolesConfig) => number;
  splitRows: (c: RolesConfig) => number;
}

/** A tensor-core backward pass's kernel: its WGSL and the rows of its own side per workgroup. */
export interface BackwardKernel {
  code: string;
  rows: number;
}

/**
 * A tensor-core backward pass's kernel for a backward shape: its role-split kernel as `choice`
 * asks where that fits the device, else the role-split kernel at the shape's tile without column
 * splits, else the plain kernel. Row groups are dropped where they do not fit, where one group's
 * rows cover every sequence's `longestRows` (the others would idle, as the forward's do in decode:
 * flashForwardVariant), and where they hold no more subgroups per H200 SM than one group
 * (rowGroupsGainSubgroups, the forward's rule too).
 */
function roleSplitKernel(
  caps: Capabilities,
  matrix: MatrixBackwardConfig,
  choice: RoleSplitChoice,
  kernels: RoleSplitKernels,
  longestRows = Number.POSITIVE_INFINITY,
): BackwardKernel {
  const plain = { code: kernels.plain(matrix), rows: matrixShape(matrix).rows };
  if (!choice.roles) return plain;
  const fits = (c: RolesConfig) =>
    matrixBackwardUnsupported(c) === undefined &&
    kernels.splitUnsupported(c) === undefined &&
    kernels.splitSharedBytes(c) <= caps.limits.maxComputeWorkgroupStorageSize &&
    kernels.splitSubgroups(c) * c.subgroupSize <= caps.limits.maxComputeInvocationsPerWorkgroup;
  // Each split with vector scores where the backward shape has them, then without them (for a
  // split that leaves a lane fewer than four columns).
  const prefetch = choice.prefetchTiles === true && { prefetchTiles: true };
  const steps = choice.splitSteps === true && { splitSteps: true };
  const chosen: RolesConfig = {
    ...matrix,
    tile: choice.rolesTile,
    columnSplits: choice.columnSplits,
    ...prefetch,
    ...steps,
  };
  const grouped = { ...chosen, rowGroups: rowGroupsOf(choice) };
  const groupsPay =
    grouped.rowGroups > 1 &&
    longestRows > kernels.splitRows(chosen) &&
    rowGroupsGainSubgroups(grouped, chosen, kernels.splitSharedBytes, kernels.splitSubgroups);
  const groups = groupsPay ? [grouped] : [];
  const split = [...groups, chosen, { ...matrix, columnSplits: 1, ...prefetch }]
    .flatMap((c) => (c.vectorScores ? [c, { ...c, vectorScores: false }] : [c]))
    .find(fits);
  return split ? { code: kernels.split(split), rows: kernels.splitRows(split) } : plain;
}

/**
 * The tensor-core backward's dQ and dK/dV kernels for a backward shape, where no sequence has more
 * than `longestQuery` query rows and `longestKey` key rows (their row groups depend on them).
 */
export function matrixBackwardKernels(
  caps: Capabilities,
  matrix: MatrixBackwardConfig,
  longestQuery = Number.POSITIVE_INFINITY,
  longestKey = Number.POSITIVE_INFINITY,
): { dq: BackwardKernel; dkDv: BackwardKernel } {
  return {
    dq: roleSplitKernel(caps, matrix, DQ_KERNEL, DQ_KERNELS, longestQuery),
    dkDv: roleSplitKernel(caps, matrix, DKDV_KERNEL, DKDV_KERNELS, longestKey),
  };
}

const DKDV_KERNELS: RoleSplitKernels = {
  plain: memoizeWgsl(flashDkDvMatrixWgsl),
  split: memoizeWgsl(flashDkDvRolesMatrixWgsl),
  splitUnsupported: matrixDkDvRolesUnsupported,
  splitSharedBytes: matrixDkDvRolesSharedBytes,
  splitSubgroups: roleSplitSubgroups,
  splitRows: roleSplitRows,
};

const DQ_KERNELS: RoleSplitKernels = {
  plain: memoizeWgsl(flashDqMatrixWgsl),
  split: memoizeWgsl(flashDqRolesMatrixWgsl),
  splitUnsupported: matrixDqRolesUnsupported,
  splitSharedBytes: matrixDqRolesSharedBytes,
  splitSubgroups: roleSplitSubgroups,
  splitRows: roleSplitRows,
};

/**
 * The tensor-core forward's shape for these head dims on this device, or undefined when none fits:
 * of `FORWARD_SHAPES` that fit and hold Q in registers, the one with the most query rows per H200
 * SM (ties to the earlier), else the first that fits. At MLA's prefill dims (288/256, 8192 tokens)
 * one row fragment holding Q ran at 33.5 TFLOPS on the H200 where two reading it from workgroup
 * memory ran at 30.2. `assumeMatrix` stands in for adapters that list no matrix shapes (the null
 * backend compiles them).
 */
export function matrixForwardConfig(
  caps: Capabilities,
  d: number,
  dv: number,
  assumeMatrix?: Pick<SubgroupMatrixConfig, 'M' | 'N' | 'K'>,
): MatrixForwardConfig | undefined {
  const usable = (c: MatrixForwardConfig) => matrixForwardUnsupported(c) ?? rowGroupsWithoutGain(c);
  const fitting = fittingMatrixShapes(
    caps,
    d,
    dv,
    FORWARD_SHAPES,
    usable,
    [matrixForwardSharedBytes],
    FLASH_WIDE_LOADS.forward,
    assumeMatrix,
  ).map(withForwardOptions);
  const rowsPerSm = (c: MatrixForwardConfig) =>
    workgroupsPerSm(matrixForwardSharedBytes(c)) * matrixForwardRows(c);
  const holding = fitting.filter((c) => !matrixForwardQueryInWorkgroup(c));
  // The most rows per SM among shapes whose staged tiles serve two row fragments or more; reduce
  // keeps the earlier of equals. One fragment per workgroup is the fallback for small workgroup
  // memory: its many small workgroups count more rows per SM than they run ([1, 16, 1] would count
  // 160 at d = 64, against 128 for [2, 32, 2]).
  const best = holding
    .filter((c) => matrixForwardRows(c) >= 2 * c.matrix.M)
    .reduce<MatrixForwardConfig | undefined>(
      (kept, c) => (kept === undefined || rowsPerSm(c) > rowsPerSm(kept) ? c : kept),
      undefined,
    );
  return best ?? holding[0] ?? fitting[0];
}

/** A forward shape with the options the planner adds: prefetched values, vector arrays. */
function withForwardOptions(config: MatrixForwardConfig): MatrixForwardConfig {
  const prefetch =
    FLASH_PREFETCH_VALUES.forward && matrixForwardValueLoads(config) <= PREFETCH_MAX_VALUE_LOADS;
  const chosen: MatrixForwardConfig = {
    ...config,
    ...(prefetch && { prefetchValues: true }),
    ...(FLASH_VECTORS.staging && { vectorStaging: true }),
  };
  const withVectorScores = { ...chosen, vectorScores: true };
  return FLASH_VECTORS.scores && matrixForwardUnsupported(withVectorScores) === undefined
    ? withVectorScores
    : chosen;
}

/**
 * Why a forward shape's row groups do not pay, or undefined: they share each staged tile, but the
 * larger array can leave an H200 SM as few subgroups as the same shape without groups (at d = 64,
 * 19.7 KiB for two groups of two subgroups, two workgroups per SM, against 11.9 KiB for one: four).
 */
function rowGroupsWithoutGain(c: MatrixForwardConfig): string | undefined {
  const groups = rowGroupsOf(c);
  if (groups === 1) return undefined;
  const ungrouped = withoutRowGroups(c);
  if (rowGroupsGainSubgroups(c, ungrouped, matrixForwardSharedBytes, matrixForwardSubgroups))
    return undefined;
  const perSm = (x: MatrixForwardConfig) =>
    subgroupsPerSm(x, matrixForwardSharedBytes, matrixForwardSubgroups);
  return `${groups} row groups hold ${perSm(c)} subgroups per SM, no more than ${perSm(ungrouped)} without`;
}

/** Subgroups of a kernel config that an H200 SM holds at once, by its workgroup memory. */
function subgroupsPerSm<C>(c: C, sharedBytes: (c: C) => number, subgroups: (c: C) => number): number {
  return workgroupsPerSm(sharedBytes(c)) * subgroups(c);
}

/**
 * Whether a kernel's row groups (`grouped`) hold more subgroups per H200 SM than the same kernel
 * with one group (`ungrouped`): the rule the forward's and the dQ kernel's row groups both follow.
 */
function rowGroupsGainSubgroups<C>(
  grouped: C,
  ungrouped: C,
  sharedBytes: (c: C) => number,
  subgroups: (c: C) => number,
): boolean {
  return subgroupsPerSm(grouped, sharedBytes, subgroups) > subgroupsPerSm(ungrouped, sharedBytes, subgroups);
}

/**
 * The tensor-core backward's shape (shared by its dQ and dK/dV kernels), or undefined when none
 * fits; its arrays of vectors as FLASH_VECTORS asks, vector scores where the plain kernels' lanes
 * have four columns or more (the role-split kernels drop them where theirs do not).
 */
export function matrixBackwardConfig(
  caps: Capabilities,
  d: number,
  dv: number,
  assumeMatrix?: Pick<SubgroupMatrixConfig, 'M' | 'N' | 'K'>,
): MatrixBackwardConfig | undefined {
  const [config] = fittingMatrixShapes(
    caps,
    d,
    dv,
    BACKWARD_SHAPES,
    matrixBackwardUnsupported,
    [matrixDqSharedBytes, matrixDkDvSharedBytes],
    FLASH_WIDE_LOADS.backward,
    assumeMatrix,
  );
  if (!config) return undefined;
  const chosen: MatrixBackwardConfig = {
    ...config,
    ...(FLASH_VECTORS.backwardStaging && { vectorStaging: true }),
  };
  const withVectorScores = { ...chosen, vectorScores: true };
  return FLASH_VECTORS.backwardScores && matrixBackwardUnsupported(withVectorScores) === undefined
    ? withVectorScores
    : chosen;
}

/**
 * The shapes, in their order, that the kernel supports at these head dims and that fit the device's
 * workgroup memory (every one of `sharedBytes`) and invocations.
 */
function fittingMatrixShapes(
  caps: Capabilities,
  d: number,
  dv: number,
  shapes: readonly MatrixShapeChoice[],
  unsupported: (c: MatrixForwardConfig) => string | undefined,
  sharedBytes: readonly ((c: MatrixForwardConfig) => number)[],
  wideLoads: boolean,
  assumeMatrix?: Pick<SubgroupMatrixConfig, 'M' | 'N' | 'K'>,
): MatrixForwardConfig[] {
  const matrix = preferredMatrixConfig(caps) ?? assumeMatrix;
  if (!matrix) return [];
  const subgroup = matrixSubgroupSize(caps);
  const fitting: MatrixForwardConfig[] = [];
  for (const [subgroups, tile, rowFragments, rowGroups = 1] of shapes) {
    const config: MatrixForwardConfig = {
      d,
      dv,
      matrix,
      ...subgroup,
      subgroups,
      tile,
      rowFragments,
      ...(rowGroups > 1 && { rowGroups }),
      ...(wideLoads && { wideLoads }),
    };
    if (unsupported(config)) continue;
    if (sharedBytes.some((bytes) => bytes(config) > caps.limits.maxComputeWorkgroupStorageSize)) continue;
    if (rowGroups * subgroups * subgroup.subgroupSize > caps.limits.maxComputeInvocationsPerWorkgroup)
      continue;
    fitting.push(config);
  }
  return fitting;
}

/**
 * The forward kernel {@link flashAttention} runs for a tier and head dims, where no sequence has
 * more than `longestQuery` query rows. The tensor-core kernel drops its row groups where one group
 * covers every sequence's rows: a decode step (one query per head, or a GQA group's heads as rows)
 * would leave the other groups idle and launch half the workgroups (the dense decode at batch 8
 * over 16,384 cached tokens ran at 0.235 ms with them, 0.195 without, on the H200).
 */
export function flashForwardVariant(
  caps: Capabilities,
  tier: Tier,
  d: number,
  dv: number,
  longestQuery = Number.POSITIVE_INFINITY,
): FlashForwardVariant {
  const matrix = tier === 'subgroup-matrix' ? matrixForwardConfig(caps, d, dv) : undefined;
  if (!matrix) return { kind: 'row', config: rowKernelConfig(caps, tier, d, dv) };
  const groups = rowGroupsOf(matrix);
  const idleGroups = groups > 1 && longestQuery <= matrixForwardRows(matrix) / groups;
  return { kind: 'matrix', config: idleGroups ? withoutRowGroups(matrix) : matrix };
}

/** Query rows per workgroup of a forward variant: the rows of one of its launch's query tiles. */
export function flashForwardRows(variant: FlashForwardVariant): number {
  return variant.kind === 'matrix' ? matrixForwardRows(variant.config) : variant.config.rows;
}

/** WGSL of a forward variant. */
export function flashForwardVariantWgsl(variant: FlashForwardVariant): string {
  return variant.kind === 'matrix'
    ? flashForwardMatrixWgsl(variant.config)
    : flashForwardWgsl(variant.config);
}

// Each launch's kernels, written once per configuration (see memoizeWgsl).
const flashForwardCode = memoizeWgsl(flashForwardVariantWgsl);
const flashDeltaCode = memoizeWgsl(flashDeltaWgsl);
const flashDqCode = memoizeWgsl(flashDqWgsl);
const flashDkDvCode = memoizeWgsl(flashDkDvWgsl);

/** The meta table as a tensor; u32 words travel in an f32-typed tensor, only their bits matter. */
function metaTensor(gpu: Gpu, meta: LaunchMeta): Tensor {
  return Tensor.from(gpu, new Float32Array(meta.words.buffer, meta.words.byteOffset, meta.words.length), [
    meta.words.length,
  ]);
}

function paramsFor(p: FlashProblem, meta: LaunchMeta, statsDelta = 0, split = UNSPLIT_PARAMS) {
  return {
    layout: FLASH_PARAMS,
    values: {
      hq: p.hq,
      hkv: p.hkv,
      group: p.hq / p.hkv,
      scale: p.scale,
      left: p.mask.left,
      right: p.mask.right,
      tiles: meta.tiles,
      lseHeadStride: p.lseHeadStride,
      tileBase: meta.tileBase,
      statsDelta,
      negInf: Number.NEGATIVE_INFINITY,
      keyStride: p.keyBlocks.stride,
      keySize: p.keyBlocks.size,
      ...split,
    },
  };
}

function checkFits(gpu: Gpu, what: string, elements: number, bytesPer: number): void {
  const bytes = elements * bytesPer;
  const limit = gpu.caps.limits.maxStorageBufferBindingSize;
  check(
    bytes <= limit,
    'limit-exceeded',
    () => `flashAttention: ${what} needs ${bytes} bytes in one binding; this device allows ${limit}`,
  );
}

/**
 * The end of a kernel label for attention over pooled key blocks (NSA's compressed branch), so
 * per-kernel timings can tell it from plain attention: " key blocks", or nothing.
 */
function keyBlocksLabel(problem: FlashProblem): string {
  return hasKeyBlocks(problem) ? ' key blocks' : '';
}

/**
 * Attention `softmax(scale · q kᵀ + mask) v` per head, q `[b, n, hq, d]`, k `[b, nk, hkv, d]`,
 * v `[b, nk, hkv, dv]` (or packed `[total, heads, dim]` with `cuSeqlensQ`/`cuSeqlensK`). Query head h
 * reads KV head `floor(h / (hq / hkv))`. Returns o `[b, n, hq, dv]` and lse `[b, hq, n]`
 * (`[hq, totalQ]` packed); a row that sees no key gets o = 0 and lse = -inf.
 */
export async function flashAttention(
  gpu: Gpu,
  q: Tensor,
  k: Tensor,
  v: Tensor,
  options: FlashAttentionOptions = {},
): Promise<FlashAttentionResult> {
  const problem = flashProblem(q, k, v, options);
  const tier = pickTier(gpu.caps, q.dtype, options.tier, 'flashAttention');
  for (const [name, t] of [
    ['q', q],
    ['k', k],
    ['v', v],
  ] as const)
    checkFits(gpu, name, t.size, bytesPerElement(t.dtype));
  const o = Tensor.empty(gpu, problem.oShape, q.dtype);
  const lse = Tensor.empty(gpu, problem.lseShape, 'f32');
  try {
    if (isGroupedDecode(problem)) {
      // The group's query heads share a tile and its key reads (decode-groups.ts).
      const grouped = groupedDecodeProblem(problem);
      using groupedQ = Tensor.empty(gpu, [grouped.totalQ, grouped.hq, grouped.d], q.dtype);
      using groupedO = Tensor.empty(gpu, grouped.oShape, q.dtype);
      using groupedLse = Tensor.empty(gpu, grouped.lseShape, 'f32');
      await groupQueries(gpu, problem, q, groupedQ);
      await launchForward(gpu, grouped, tier, { q: groupedQ, k, v, o: groupedO, lse: groupedLse });
      await ungroupOutputs(gpu, problem, { o: groupedO, lse: groupedLse }, o, lse);
    } else {
      await launchForward(gpu, problem, tier, { q, k, v, o, lse });
    }
  } catch (error) {
    o.dispose();
    lse.dispose();
    throw error;
  }
  return { o, lse, ctx: { gpu, q, k, v, o, lse, problem, tier } };
}

/**
 * Queues the forward of `problem` into `o` and `lse`: one launch of the tier's kernel, or, with few
 * work items, a launch split over the keys and the merge of its parts (split-kv.ts).
 */
async function launchForward(
  gpu: Gpu,
  problem: FlashProblem,
  tier: Tier,
  t: { q: Tensor; k: Tensor; v: Tensor; o: Tensor; lse: Tensor },
): Promise<void> {
  const variant = flashForwardVariant(gpu.caps, tier, problem.d, problem.dv, longestQueryRows(problem));
  const rows = flashForwardRows(variant);
  const meta = launchMeta(problem, rows, 'q');
  if (meta.tiles === 0) return;
  const split = planKeySplits(problem, rows, FLASH_SPLIT_KV, {
    outputBytes: t.o.byteLength,
    maxBindingBytes: gpu.caps.limits.maxStorageBufferBindingSize,
  });
  // Released to the pool when this returns; the queued pass is ordered before any reuse.
  using metaBuffer = metaTensor(gpu, meta);
  // A split launch's parts write their own outputs, merged into o and lse after.
  using parts = split.splits > 1 ? splitOutputs(gpu, t.o, t.lse, split) : undefined;
  await dispatch(gpu, {
    label: `flash forward ${variant.kind} [${tier}] d=${problem.d} dv=${problem.dv}${keyBlocksLabel(problem)}${parts ? ` split-KV ${split.splits}x${split.splitKeys}` : ''}`,
    code: flashForwardCode(variant),
    buffers: [t.q, t.k, t.v, metaBuffer, parts?.o ?? t.o, parts?.lse ?? t.lse],
    params: paramsFor(problem, meta, 0, splitParams(problem, t.lse.size, split)),
    workgroups: meta.tiles * problem.hq * split.splits,
  });
  if (parts) await combineSplits(gpu, problem, parts, t.o, t.lse, split);
}

/** Options of {@link flashAttentionBackward}. */
export interface FlashBackwardOptions {
  /**
   * Each query row's `delta = rowsum(dO ∘ o)` (f32, shaped and laid out like the forward's lse),
   * where the caller has it already: the backward then skips its own pass over o and dO. A caller
   * that forms dO from o's consumer (a gated sum of attention branches, say) can add the products
   * as it writes dO, for the cost of no extra read.
   */
  delta?: Tensor;
}

/**
 * Gradients of the forward that produced `ctx`, given dO (o's shape and dtype): dq, dk, dv, with dk
 * and dv summed over each GQA group. Deterministic: no atomics, the same bits every run.
 */
export async function flashAttentionBackward(
  ctx: FlashAttentionContext,
  dO: Tensor,
  options: FlashBackwardOptions = {},
): Promise<FlashAttentionGrads> {
  const { gpu, q, k, v, o, lse, problem, tier } = ctx;
  check(
    dO.shape.join() === o.shape.join(),
    'shape-mismatch',
    () => `dO: expected shape [${o.shape.join(', ')}] (o's), got [${dO.shape.join(', ')}]`,
  );
  check(dO.dtype === o.dtype, 'dtype-mismatch', () => `dO: expected dtype ${o.dtype} (o's), got ${dO.dtype}`);
  const { delta } = options;
  if (delta) {
    check(
      delta.shape.join() === lse.shape.join(),
      'shape-mismatch',
      () =>
        `options.delta: expected shape [${lse.shape.join(', ')}] (lse's), got [${delta.shape.join(', ')}]`,
    );
    check(
      delta.dtype === 'f32',
      'dtype-mismatch',
      () => `options.delta: expected dtype f32, got ${delta.dtype}`,
    );
  }
  const config = rowKernelConfig(gpu.caps, tier, problem.d, problem.dv);
  const matrix =
    tier === 'subgroup-matrix' ? matrixBackwardConfig(gpu.caps, problem.d, problem.dv) : undefined;
  const rows = matrix ? matrixShape(matrix).rows : config.rows;
  const dq = Tensor.empty(gpu, q.shape, q.dtype);
  // Key rows of no sequence (a cache's past its lengths) get no gradient from the kernels: zero.
  const keyGradient = problem.partialKeys ? Tensor.zeros : Tensor.empty;
  const dk = keyGradient(gpu, k.shape, k.dtype);
  const dv = keyGradient(gpu, v.shape, v.dtype);
  using stats = Tensor.empty(gpu, [2, lse.size], 'f32');
  const { dq: dqKernel, dkDv: dkDvKernel } = matrix
    ? matrixBackwardKernels(gpu.caps, matrix, longestQueryRows(problem), longestKeyRows(problem))
    : { dq: { code: flashDqCode(config), rows }, dkDv: { code: flashDkDvCode(config), rows } };
  const qMeta = launchMeta(problem, rows, 'q');
  const kMeta = launchMeta(problem, dkDvKernel.rows, 'k');
  // The dQ kernel's query tiles, where its row groups make them taller than the delta pass's.
  const dqMeta = dqKernel.rows === rows ? qMeta : launchMeta(problem, dqKernel.rows, 'q');
  using qMetaBuffer = metaTensor(gpu, qMeta);
  using kMetaBuffer = metaTensor(gpu, kMeta);
  using dqMetaBuffer = dqMeta === qMeta ? undefined : metaTensor(gpu, dqMeta);
  const label = `${matrix ? 'matrix' : 'row'} [${tier}] d=${problem.d} dv=${problem.dv}${keyBlocksLabel(problem)}`;
  try {
    if (qMeta.tiles > 0) {
      if (delta) {
        // The kernels read [lse | delta] from one binding.
        stats.copyFrom([lse, delta]);
      } else {
        await dispatch(gpu, {
          label: `flash backward delta ${label}`,
          code: flashDeltaCode({ ...config, rows }),
          buffers: [o, dO, lse, qMetaBuffer, stats],
          params: paramsFor(problem, qMeta, lse.size),
          workgroups: qMeta.tiles * problem.hq,
        });
      }
      await dispatch(gpu, {
        label: `flash backward dq ${label}`,
        code: dqKernel.code,
        buffers: [q, k, v, dO, stats, dqMetaBuffer ?? qMetaBuffer, dq],
        params: paramsFor(problem, dqMeta, lse.size),
        workgroups: dqMeta.tiles * problem.hq,
      });
    }
    if (kMeta.tiles > 0) {
      await dispatch(gpu, {
        label: `flash backward dk dv ${label}`,
        code: dkDvKernel.code,
        buffers: [q, k, v, dO, stats, kMetaBuffer, dk, dv],
        params: paramsFor(problem, kMeta, lse.size),
        workgroups: kMeta.tiles * problem.hkv,
      });
    }
  } catch (error) {
    for (const t of [dq, dk, dv]) t.dispose();
    throw error;
  }
  return { dq, dk, dv };
}

/** Tile and split choices of the absorbed attention for a problem on a device. */
import { check, type Gpu, matrixSubgroupSize, type Tier } from '@webattn/core';
import { MLA_WORKGROUP, mlaAttentionSharedBytes, mlaAttentionUnsupported } from './attention.wgsl.js';
import { mlaMatrixSharedBytes, mlaMatrixUnsupported } from './attention-matrix.wgsl.js';

/**
 * Workgroups a launch may reach by splitting keys: one per SM of an H100/H200 (132 SMs), as many
 * as the tensor-core kernel keeps resident at once with its queries held in registers. A split
 * count that overshoots it starts a second wave: on the H200 (mla-splits, 2026-11-30, sixth
 * session), batch 32 x 4096 keys took 135 µs with 4 splits (128 workgroups) and 140 with 8, batch
 * 8 x 4096 53 µs with 16 splits and 68 with 32. Before the queries were held, two workgroups fit an
 * SM and the target was 264.
 */
export const MLA_TARGET_WORKGROUPS = 132;

/**
 * Fewest keys a split gets when the planner picks the split count, and the most splits it picks:
 * each split is a combine input, and the combine's time grows with them. At batch 1 on the H200
 * (mla-splits, 2026-11-30, sixth session): 1024 keys took 47 µs with 4 splits and 39 with 8;
 * 4096 keys 51 µs with 16 and 45 with 32; 16384 keys 63 µs with 64 and 72 with 128.
 */
export const MLA_MIN_SPLIT_KEYS = 128;
export const MLA_MAX_SPLITS = 64;

/** How one call is tiled. */
export interface MlaPlan {
  /** Packed rows (heads × queries) per workgroup. */
  rows: number;
  /** Row blocks per sequence. */
  rowBlocks: number;
  /** Keys per tile. */
  keyTile: number;
  /** Key splits per (sequence, row block). */
  splits: number;
  /** Keys per split, a multiple of the key tile. */
  keysPerSplit: number;
}

/** Sizes a plan depends on. */
export interface MlaPlanInput {
  batch: number;
  nq: number;
  heads: number;
  r: number;
  dr: number;
  /** The longest sequence, in keys. */
  maxLength: number;
  /** Forced split count; by default chosen so that the launch fills the device. */
  splits?: number;
}

/**
 * Row blocks and key splits for a tiling: the caller's split count, or as many splits as keep the
 * launch within {@link MLA_TARGET_WORKGROUPS} workgroups (at least one), at most one split per
 * {@link MLA_MIN_SPLIT_KEYS} keys and at most {@link MLA_MAX_SPLITS}; each split a whole number of
 * key tiles.
 */
function splitKeys(
  input: MlaPlanInput,
  tiling: { rows: number; keyTile: number },
): Pick<MlaPlan, 'rowBlocks' | 'splits' | 'keysPerSplit'> {
  const { keyTile } = tiling;
  const rowBlocks = Math.ceil((input.nq * input.heads) / tiling.rows);
  const keys = Math.max(1, input.maxLength);
  let splits = input.splits;
  if (splits === undefined) {
    const blocks = Math.max(1, input.batch * rowBlocks);
    splits = Math.min(
      Math.floor(MLA_TARGET_WORKGROUPS / blocks),
      Math.ceil(keys / MLA_MIN_SPLIT_KEYS),
      MLA_MAX_SPLITS,
    );
  }
  splits = Math.max(1, Math.min(splits, Math.ceil(keys / keyTile)));
  const keysPerSplit = Math.ceil(Math.ceil(keys / splits) / keyTile) * keyTile;
  return { rowBlocks, splits: Math.ceil(keys / keysPerSplit), keysPerSplit };
}

/** Picks tiles that fit the device's workgroup storage, then the key splits. */
export function planMlaAttention(gpu: Gpu, input: MlaPlanInput): MlaPlan {
  const { nq, heads, r, dr } = input;
  const limit = gpu.caps.limits.maxComputeWorkgroupStorageSize;
  const packed = nq * heads;
  // At most 64 accumulators per invocation (64 rows at r = 256, fewer for larger ranks) and at
  // most 128 rows, which bounds the scores each invocation computes per key tile.
  const maxRows = Math.min(128, Math.max(16, Math.floor((64 * MLA_WORKGROUP) / r)));
  let chosen: { rows: number; keyTile: number } | undefined;
  for (const keyTile of [16, 8, 4]) {
    const quantum = MLA_WORKGROUP / keyTile;
    let rows = Math.ceil(Math.min(packed, maxRows) / quantum) * quantum;
    while (
      mlaAttentionUnsupported({
        dtype: 'f32',
        heads,
        r,
        dr,
        dv: 1,
        rows,
        keyTile,
        source: 'dense',
        fused: true,
      })
    ) {
      rows += quantum;
      if (rows > 4 * maxRows) break;
    }
    if (mlaAttentionSharedBytes({ r, dr, rows, keyTile }) <= limit && rows <= 4 * maxRows) {
      chosen = { rows, keyTile };
      break;
    }
  }
  check(
    chosen !== undefined,
    'limit-exceeded',
    () =>
      `mlaAttention: r = ${r}, dr = ${dr} need more workgroup storage than this device's ${limit} bytes (maxComputeWorkgroupStorageSize)`,
  );
  return { ...chosen, ...splitKeys(input, chosen) };
}

/** How a call is tiled on tensor cores. */
export interface MlaMatrixPlan extends MlaPlan {
  /** Subgroups per workgroup. */
  subgroups: number;
  /** Subgroup size built for, and whether it is pinned. */
  subgroupSize: number;
  pinSubgroupSize: boolean;
  /** Whether the latent cache is read 16 bytes per load. */
  wideLoads: boolean;
  /** Whether each subgroup holds its score task's query fragments in registers (where it can). */
  holdQuery: boolean;
  /** Whether the key tile's array holds vectors of four f16, each loaded vector stored whole. */
  vectorStaging: boolean;
}

/**
 * Subgroups per workgroup of the tensor-core kernel to try, in order: the first that divides the
 * latent columns into whole fragments and fits wins. Each owns r / subgroups accumulator columns,
 * so more subgroups hold fewer registers each. Mutable so that a diagnostic can time each.
 */
export const MLA_MATRIX_SUBGROUPS: number[] = [8, 4];

/**
 * Keys per staged tile of the tensor-core kernel to try, in order, for each subgroup count and row
 * block: the first that fits wins. At MiniCPM3's dims 32-key tiles declare 30.8 KiB and 16-key
 * tiles 20.1, which under the 48 KiB pattern (core's docs/perf-notes.md, 2026-12-01) would let an
 * SM hold two workgroups where it holds one, if their registers allow. Mutable so that a
 * diagnostic can time each; not exported from the package.
 */
export const MLA_MATRIX_KEY_TILES: number[] = [32, 16];

/**
 * Whether the tensor-core kernel reads the latent cache 16 bytes per load (eight f16) rather than
 * 8. Mutable so that a diagnostic can time both; not exported from the package.
 */
export const MLA_WIDE_LOADS: { enabled: boolean } = { enabled: true };

/**
 * Whether the tensor-core kernel holds each subgroup's query fragments in registers across the
 * key loop (where every subgroup has at most one score fragment per tile) instead of reading them
 * from storage in every tile. Mutable so that a diagnostic can time both; not exported from the
 * package.
 */
export const MLA_HOLD_QUERY: { enabled: boolean } = { enabled: true };

/**
 * Whether the tensor-core kernel stages its key tiles (and held queries) into an array of
 * `vec4<f16>` rather than of f16: one or two stores per load instead of four or eight, which took
 * core's flash forward from 36.7 to 34.5 ms. Here it changed nothing measurable (H200, batch 32 x
 * 4096, mla-ablations vectors in a fresh process: 136 / 138 us against 137 / 141, the same bits):
 * this kernel waits on its key loads, not on its stores. Off, so the bench's figures are the f16
 * staging's. Mutable so that a diagnostic can time both; not exported from the package.
 */
export const MLA_VECTOR_STAGING: { enabled: boolean } = { enabled: false };

/**
 * The tensor-core tiling for a problem on this device, or undefined where the dims or limits do not
 * allow it (the caller falls back to the row kernel). Subgroup size and pinning come from core.
 */
export function planMlaMatrix(gpu: Gpu, input: MlaPlanInput): MlaMatrixPlan | undefined {
  const { nq, heads, r, dr } = input;
  const { subgroupSize, pinSubgroupSize } = matrixSubgroupSize(gpu.caps);
  const limit = gpu.caps.limits.maxComputeWorkgroupStorageSize;
  const packed = nq * heads;
  const invocations = gpu.caps.limits.maxComputeInvocationsPerWorkgroup;
  for (const subgroups of MLA_MATRIX_SUBGROUPS) {
    if (subgroups * subgroupSize > invocations) continue;
    const base = { heads, r, dr, subgroups, subgroupSize, pinSubgroupSize, source: 'dense' as const };
    for (const rows of [Math.min(64, Math.ceil(packed / 16) * 16), 32, 16]) {
      if (rows > Math.ceil(packed / 16) * 16) continue;
      for (const keyTile of MLA_MATRIX_KEY_TILES) {
        const c = { ...base, rows, keyTile };
        if (mlaMatrixUnsupported(c) === undefined && mlaMatrixSharedBytes(c) <= limit) {
          const chosen = { rows, keyTile };
          return {
            ...chosen,
            ...splitKeys(input, chosen),
            subgroups,
            subgroupSize,
            pinSubgroupSize,
            wideLoads: MLA_WIDE_LOADS.enabled,
            holdQuery: MLA_HOLD_QUERY.enabled,
            vectorStaging: MLA_VECTOR_STAGING.enabled,
          };
        }
      }
    }
  }
  return undefined;
}

/** The tiling of one launch: the tensor-core plan where it applies, and the plan either way. */
export interface MlaLaunchPlan {
  plan: MlaPlan;
  /** Present when the launch runs the tensor-core kernel. */
  matrix?: MlaMatrixPlan;
}

/**
 * How a launch on `tier` is tiled: the tensor-core kernel on the subgroup-matrix tier where the
 * dims and limits allow it, the row kernel otherwise.
 */
export function planMlaLaunch(gpu: Gpu, input: MlaPlanInput, tier: Tier): MlaLaunchPlan {
  const matrix = tier === 'subgroup-matrix' ? planMlaMatrix(gpu, input) : undefined;
  return matrix ? { plan: matrix, matrix } : { plan: planMlaAttention(gpu, input) };
}

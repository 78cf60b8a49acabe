/**
 * Batched matrix multiply, the first kernel family: it exercises every tier end to end (tiling,
 * subgroups, f16 storage, tensor cores) and serves the families' projections.
 */
import type { Capabilities, SubgroupMatrixConfig, Tier } from '../capabilities.js';
import { dispatch } from '../dispatch.js';
import type { Dtype } from '../dtype.js';
import { check, WebAttnError } from '../errors.js';
import type { Gpu } from '../gpu.js';
import { memoizeWgsl } from '../memoize-wgsl.js';
import { Tensor } from '../tensor.js';
import { pickTier, tierDtype } from '../tiers.js';
import { MATMUL_PARAMS } from './layout.js';
import { SPLIT_K_OUTPUTS, splitKMatmulWgsl } from './split-k.wgsl.js';
import { subgroupMatrixMatmulWgsl, subgroupMatrixTile } from './subgroup-matrix.wgsl.js';
import { TILED_TILE, tiledMatmulWgsl } from './tiled.wgsl.js';

/** Options of {@link matmul}. */
export interface MatmulOptions {
  /** Kernel tier; by default the fastest the device has for the tensors' dtype. */
  tier?: Tier;
  /** Read `b` as `[N, K]` (or `[batch, N, K]`), the layout of a linear layer's weight. */
  transposeB?: boolean;
}

/** A matmul kernel: which generator, over which storage, for which B layout. */
export type MatmulVariant =
  | { kind: 'tiled'; tier: 'portable' | 'f16'; transposeB: boolean }
  | { kind: 'split-k'; tier: 'subgroups'; transposeB: boolean }
  | {
      kind: 'subgroup-matrix';
      tier: 'subgroup-matrix';
      transposeB: boolean;
      matrix: Pick<SubgroupMatrixConfig, 'M' | 'N' | 'K'>;
      subgroupSize: number;
      pinSubgroupSize: boolean;
    };

/** Rows of A per batch at or below which the `subgroups` tier uses the split-K kernel. */
export const SPLIT_K_MAX_ROWS = 8;

/** The WGSL of a variant. */
export function matmulWgsl(variant: MatmulVariant): string {
  const dtype = tierDtype(variant.tier);
  switch (variant.kind) {
    case 'tiled':
      return tiledMatmulWgsl({ dtype, transposeB: variant.transposeB });
    case 'split-k':
      return splitKMatmulWgsl({ dtype, transposeB: variant.transposeB });
    case 'subgroup-matrix':
      return subgroupMatrixMatmulWgsl(variant);
  }
}

/** {@link matmulWgsl}, written once per variant (see memoizeWgsl). */
const matmulCode = memoizeWgsl(matmulWgsl);

/** A name for a variant, for labels and `webattn verify` lines. */
export function matmulVariantName(v: MatmulVariant): string {
  const shape = v.kind === 'subgroup-matrix' ? ` ${v.matrix.M}x${v.matrix.N}x${v.matrix.K}` : '';
  return `matmul ${v.kind}${shape} [${v.tier}]${v.transposeB ? ' B^T' : ''}`;
}

/**
 * The subgroup size tensor-core kernels are built for. A workgroup must be a multiple of the largest
 * size the adapter may pick unless the size is pinned; pinning (where `subgroup-size-control` exists)
 * to 32, or the nearest size offered, keeps four-subgroup workgroups within the invocation limit.
 */
export function matrixSubgroupSize(caps: Capabilities): { subgroupSize: number; pinSubgroupSize: boolean } {
  if (caps.features.has('subgroup-size-control')) {
    return {
      subgroupSize: Math.min(caps.subgroupMaxSize, Math.max(caps.subgroupMinSize, 32)),
      pinSubgroupSize: true,
    };
  }
  return { subgroupSize: caps.subgroupMaxSize, pinSubgroupSize: false };
}

/** The fragment shape the tensor-core kernel uses: NVIDIA's and AMD's 16x16x16 where offered. */
export function preferredMatrixConfig(caps: Capabilities): SubgroupMatrixConfig | undefined {
  const configs = caps.subgroupMatrixConfigs;
  return configs.find((c) => c.M === 16 && c.N === 16 && c.K === 16) ?? configs[0];
}

/**
 * Every variant this device can run. `assumeMatrix` stands in for the matrix shapes an adapter does
 * not list (the null backend lists none but compiles them), so every variant can be compiled there.
 */
export function matmulVariants(
  caps: Capabilities,
  assumeMatrix?: Pick<SubgroupMatrixConfig, 'M' | 'N' | 'K'>,
): MatmulVariant[] {
  const out: MatmulVariant[] = [];
  for (const transposeB of [false, true]) {
    out.push({ kind: 'tiled', tier: 'portable', transposeB });
    if (caps.features.has('subgroups')) out.push({ kind: 'split-k', tier: 'subgroups', transposeB });
    if (caps.features.has('shader-f16')) out.push({ kind: 'tiled', tier: 'f16', transposeB });
    const matrix = preferredMatrixConfig(caps) ?? assumeMatrix;
    const canMatrix =
      caps.features.has('chromium-experimental-subgroup-matrix') &&
      caps.features.has('shader-f16') &&
      caps.features.has('subgroups');
    if (matrix && canMatrix) {
      out.push({
        kind: 'subgroup-matrix',
        tier: 'subgroup-matrix',
        transposeB,
        matrix,
        ...matrixSubgroupSize(caps),
      });
    }
  }
  return out;
}

/** The variant {@link matmul} launches for a tier and problem. */
export function selectMatmulVariant(
  caps: Capabilities,
  tier: Tier,
  rows: number,
  transposeB: boolean,
): MatmulVariant {
  switch (tier) {
    case 'portable':
    case 'f16':
      return { kind: 'tiled', tier, transposeB };
    case 'subgroups':
      return rows <= SPLIT_K_MAX_ROWS
        ? { kind: 'split-k', tier, transposeB }
        : { kind: 'tiled', tier: 'portable', transposeB };
    case 'subgroup-matrix': {
      const matrix = preferredMatrixConfig(caps);
      if (!matrix)
        throw new WebAttnError('missing-feature', 'matmul: this adapter lists no f16->f32 matrix shape');
      return { kind: 'subgroup-matrix', tier, transposeB, matrix, ...matrixSubgroupSize(caps) };
    }
  }
}

/** Sizes of one matmul, as {@link matmulProblem} derives them. */
export interface MatmulProblem {
  batch: number;
  M: number;
  K: number;
  N: number;
  batchStrideB: number;
  dtype: Dtype;
}

/** Checks shapes and dtypes and derives the problem size; every error names the argument. */
export function matmulProblem(a: Tensor, b: Tensor, transposeB: boolean): MatmulProblem {
  check(
    a.shape.length === 2 || a.shape.length === 3,
    'shape-mismatch',
    () => `a: expected rank 2 [M, K] or 3 [batch, M, K], got shape [${a.shape.join(', ')}]`,
  );
  check(
    b.shape.length === 2 || b.shape.length === 3,
    'shape-mismatch',
    () => `b: expected rank 2 or 3, got shape [${b.shape.join(', ')}]`,
  );
  check(a.dtype === b.dtype, 'dtype-mismatch', () => `b: expected dtype ${a.dtype} (a's), got ${b.dtype}`);
  const batch = a.shape.length === 3 ? a.shape[0]! : 1;
  const [M, K] = a.shape.slice(-2) as [number, number];
  const [b0, b1] = b.shape.slice(-2) as [number, number];
  const [bK, N] = transposeB ? [b1, b0] : [b0, b1];
  check(
    bK === K,
    'shape-mismatch',
    () =>
      `b: expected ${transposeB ? 'its last' : 'its first matrix'} dimension to be K = ${K} (from a), got ${bK} (shape [${b.shape.join(', ')}]${transposeB ? ', transposeB' : ''})`,
  );
  if (b.shape.length === 3) {
    check(
      b.shape[0] === batch,
      'shape-mismatch',
      () => `b: expected batch ${batch} (a's), got ${b.shape[0]}`,
    );
  }
  return { batch, M, K, N, batchStrideB: b.shape.length === 3 ? K * N : 0, dtype: a.dtype };
}

/** `a · b` (or `a · bᵀ`) with f32 accumulation; the result has a's dtype and shape `[.., M, N]`. */
export async function matmul(gpu: Gpu, a: Tensor, b: Tensor, options: MatmulOptions = {}): Promise<Tensor> {
  const transposeB = options.transposeB ?? false;
  const problem = matmulProblem(a, b, transposeB);
  const tier = pickTier(gpu.caps, problem.dtype, options.tier, 'matmul');
  const variant = selectMatmulVariant(gpu.caps, tier, problem.M, transposeB);
  const outShape = a.shape.length === 3 ? [problem.batch, problem.M, problem.N] : [problem.M, problem.N];
  const c = Tensor.empty(gpu, outShape, problem.dtype);
  try {
    await launchMatmul(gpu, variant, a, b, c, problem);
  } catch (error) {
    c.dispose();
    throw error;
  }
  return c;
}

/**
 * Queues one matmul variant on prepared tensors. Exported so that verification can run every
 * variant, and (through `code`) prove that it notices a wrong kernel.
 */
export async function launchMatmul(
  gpu: Gpu,
  variant: MatmulVariant,
  a: Tensor,
  b: Tensor,
  c: Tensor,
  problem: MatmulProblem,
  code: string = matmulCode(variant),
): Promise<void> {
  const { batch, M, N } = problem;
  if (c.size === 0) return;
  let items: number;
  let tilesN = 1;
  let tilesPerBatch = 1;
  if (variant.kind === 'split-k') {
    items = Math.ceil((batch * M * N) / SPLIT_K_OUTPUTS);
  } else {
    const tile =
      variant.kind === 'tiled' ? { rows: TILED_TILE, cols: TILED_TILE } : subgroupMatrixTile(variant.matrix);
    tilesN = Math.ceil(N / tile.cols);
    tilesPerBatch = Math.ceil(M / tile.rows) * tilesN;
    items = batch * tilesPerBatch;
  }
  await dispatch(gpu, {
    label: matmulVariantName(variant),
    code,
    buffers: [a, b, c],
    params: {
      layout: MATMUL_PARAMS,
      values: { batch, M, N, K: problem.K, batchStrideB: problem.batchStrideB, items, tilesN, tilesPerBatch },
    },
    workgroups: items,
  });
}

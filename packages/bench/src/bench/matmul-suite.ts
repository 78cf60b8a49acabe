/**
 * `webattn bench core`: square matmul with each kernel that suits large matrices (the tiled kernel in
 * f32 and f16, the tensor-core kernel), the plainest measure of what each tier reaches. The split-K
 * kernel of the subgroups tier is for few rows and is verified, not benched, here.
 */
import {
  type Gpu,
  launchMatmul,
  type MatmulVariant,
  matmulProblem,
  matmulVariants,
  randomNormal,
  Tensor,
  tierDtype,
} from '@webattn/core';
import type { SuiteOptions } from './suites.js';
import type { Implementation, TableSpec } from './types.js';

const GPU_SIZES = [1024, 2048, 4096, 8192];
const CPU_SIZES = [64, 128, 256];

function variantColumn(variant: MatmulVariant): Implementation {
  const dtype = tierDtype(variant.tier);
  return {
    name: `${variant.kind} ${dtype}`,
    tier: variant.tier,
    async prepare(gpu: Gpu, n: number) {
      const a = await randomNormal(gpu, [n, n], 1, { dtype });
      const b = await randomNormal(gpu, [n, n], 2, { dtype });
      const c = Tensor.empty(gpu, [n, n], dtype);
      const problem = matmulProblem(a, b, false);
      return {
        run: () => launchMatmul(gpu, variant, a, b, c, problem),
        dispose() {
          for (const t of [a, b, c]) t.dispose();
        },
      };
    },
  };
}

/** The matmul table: one column per large-matrix kernel the adapter runs (filtered by --dtype and --tier). */
export function matmulTable(gpu: Gpu, options: SuiteOptions): TableSpec {
  const variants = matmulVariants(gpu.caps).filter(
    (v) =>
      !v.transposeB &&
      v.kind !== 'split-k' &&
      (!options.tier || v.tier === options.tier) &&
      (!options.dtype || tierDtype(v.tier) === options.dtype),
  );
  return {
    id: 'matmul',
    title: 'matmul C = A·B, square n x n, f32 accumulation',
    sizeLabel: 'n',
    sizes: options.sizes ?? (options.cpu ? CPU_SIZES : GPU_SIZES),
    implementations: variants.map(variantColumn),
    flops: (n) => 2 * n * n * n,
  };
}

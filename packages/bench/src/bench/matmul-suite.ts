/** `webattn bench core`: square matmul per tier, the plainest measure of what each tier reaches. */
import { type Gpu, matmul, Tensor, type Tier, tierDtype } from '@webattn/core';
import { randn } from '@webattn/reference';
import type { SuiteOptions } from './suites.js';
import type { Implementation, TableSpec } from './types.js';

const GPU_SIZES = [1024, 2048, 4096, 8192];
const CPU_SIZES = [64, 128, 256];

function tierImplementation(tier: Tier): Implementation {
  return {
    name: tier,
    tier,
    async prepare(gpu: Gpu, n: number) {
      const dtype = tierDtype(tier);
      const a = Tensor.from(gpu, randn(n * n, 1), [n, n], dtype);
      const b = Tensor.from(gpu, randn(n * n, 2), [n, n], dtype);
      let c: Tensor | undefined;
      return {
        async run() {
          c?.dispose();
          c = await matmul(gpu, a, b, { tier });
        },
        dispose() {
          for (const t of [a, b, c]) t?.dispose();
        },
      };
    },
  };
}

/** The matmul table: one column per tier the adapter has (filtered by --dtype and --tier). */
export function matmulTable(gpu: Gpu, options: SuiteOptions): TableSpec {
  const tiers = gpu.caps.tiers.filter(
    (t) => (!options.tier || t === options.tier) && (!options.dtype || tierDtype(t) === options.dtype),
  );
  return {
    id: 'matmul',
    title:
      'matmul C = A·B, square n x n (f32 accumulation; f16 storage on the f16 and subgroup-matrix tiers)',
    sizeLabel: 'n',
    sizes: options.sizes ?? (options.cpu ? CPU_SIZES : GPU_SIZES),
    implementations: tiers.map(tierImplementation),
    flops: (n) => 2 * n * n * n,
  };
}

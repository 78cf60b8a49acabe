// Diagnostic (not the bench): times the tensor-core MLA decode (MiniCPM3 dims, paged cache, f16) at
// the bench's shapes with the planner's split count and with forced ones, printing per-kernel GPU
// times, so that one GPU call tells how many splits the planner should aim for.
// `pnpm gpu:bundle` builds it into .gpu-kit/mla-splits.mjs; on the GPU machine:
//   node .gpu-kit/mla-splits.mjs

import { createGpu, measure } from '../../packages/core/src/index.js';
import { mlaAttentionPaged } from '../../packages/mla/src/index.js';
import { MLA_SCALE, mlaDecodeProblem } from './mla-problem.js';

const gpu = await createGpu({ fast: true, maxPooledBytes: 16 * 2 ** 30 });
const cases: [number, number][] = [
  [32, 4096],
  [1, 16384],
  [64, 4096],
];
for (const [batch, n] of cases) {
  const { cache, ids, q, qp, w, bytes, dispose } = await mlaDecodeProblem(gpu, batch, n);
  for (const splits of [undefined, 4, 8, 16, 32, 64]) {
    const m = await measure(
      gpu,
      async () => {
        const o = await mlaAttentionPaged(gpu, q, qp, cache, ids, w, {
          scale: MLA_SCALE,
          tier: 'subgroup-matrix',
          ...(splits !== undefined && { splits }),
        });
        o.dispose();
      },
      { warmup: 1, iters: 5 },
    );
    const kernels = Object.entries(m.kernels?.[1] ?? {})
      .map(([label, ms]) => `${label} ${(ms * 1000).toFixed(0)} us`)
      .join('; ');
    console.log(
      `batch ${batch} cache ${n} splits ${splits ?? 'planned'}: ${(m.median * 1000).toFixed(0)} us, ${(bytes / m.median / 1e6).toFixed(0)} GB/s [${kernels}]`,
    );
  }
  dispose();
}

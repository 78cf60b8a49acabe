// Diagnostic (not the bench): times the tensor-core MLA decode (MiniCPM3 dims, paged cache, f16) at
// the bench's shapes with the planner's split count and with forced ones, printing per-kernel GPU
// times, so that one GPU call tells how many splits the planner should aim for.
// `pnpm gpu:bundle` builds it into .gpu-kit/mla-splits.mjs; on the GPU machine:
//   node .gpu-kit/mla-splits.mjs

import { createGpu } from '../../packages/core/src/index.js';
import { kernelMicroseconds, mlaDecodeProblem } from './mla-problem.js';

const gpu = await createGpu({ fast: true, maxPooledBytes: 16 * 2 ** 30 });
// Batch 1 first: a single sequence's decode has the fewest workgroups to spread.
const cases: [number, number][] = [
  [1, 1024],
  [1, 4096],
  [1, 16384],
  [8, 4096],
  [32, 4096],
  [64, 4096],
];
for (const [batch, n] of cases) {
  const problem = await mlaDecodeProblem(gpu, batch, n);
  for (const splits of [undefined, 4, 8, 16, 32, 64, 128]) {
    const m = await problem.time(splits);
    console.log(
      `batch ${batch} cache ${n} splits ${splits ?? 'planned'}: ${(m.median * 1000).toFixed(0)} us, ${(problem.bytes / m.median / 1e6).toFixed(0)} GB/s [${kernelMicroseconds(m)}]`,
    );
  }
  problem.dispose();
}

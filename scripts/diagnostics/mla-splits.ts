// Diagnostic (not the bench): times the tensor-core MLA decode (MiniCPM3 dims, paged cache, f16) at
// the bench's shapes with the planner's split count and with forced ones, printing per-kernel GPU
// times, so that one GPU call tells how many splits the planner should aim for.
// `pnpm gpu:bundle` builds it into .gpu-kit/mla-splits.mjs; on the GPU machine:
//   node .gpu-kit/mla-splits.mjs

import { createGpu, measure, randomNormal } from '../../packages/core/src/index.js';
import { MlaCache, mlaAttentionPaged } from '../../packages/mla/src/index.js';

const gpu = await createGpu({ fast: true, maxPooledBytes: 16 * 2 ** 30 });
const [heads, r, dr, dv] = [40, 256, 32, 64];
const scale = (64 + dr) ** -0.5;
const cases: [number, number][] = [
  [32, 4096],
  [1, 16384],
  [64, 4096],
];
for (const [batch, n] of cases) {
  const cache = new MlaCache(gpu, {
    kvLoraRank: r,
    qkRopeHeadDim: dr,
    pages: batch * Math.ceil(n / 64),
    dtype: 'f16',
  });
  const ids = Array.from({ length: batch }, () => cache.create());
  {
    using c = await randomNormal(gpu, [batch, n, r], 1, { dtype: 'f16' });
    using k = await randomNormal(gpu, [batch, n, dr], 2, { dtype: 'f16' });
    await cache.append(ids, c, k);
  }
  const q = await randomNormal(gpu, [batch, 1, heads, r], 3, { dtype: 'f16' });
  const qp = await randomNormal(gpu, [batch, 1, heads, dr], 4, { dtype: 'f16' });
  const w = await randomNormal(gpu, [heads, r, dv], 5, { dtype: 'f16' });
  const bytes = batch * n * (r + dr) * 2;
  for (const splits of [undefined, 4, 8, 16, 32, 64]) {
    const m = await measure(
      gpu,
      async () => {
        const o = await mlaAttentionPaged(gpu, q, qp, cache, ids, w, {
          scale,
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
  for (const t of [q, qp, w]) t.dispose();
  cache.dispose();
}

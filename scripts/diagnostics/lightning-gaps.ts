// Diagnostic (not the bench): times lightning attention's backward at the bench's shapes in the
// bench's order and prints, per timed run, the span the bench reports next to the sum of its
// kernels, so the idle GPU time inside a call (h=16 and h=12 cells read 3-8 ms over their kernels)
// shows up, with the kernels by label.
// `pnpm gpu:bundle` builds it into .gpu-kit/lightning-gaps.mjs; on the GPU machine:
//   node .gpu-kit/lightning-gaps.mjs

import { createGpu, measure, randomNormal } from '../../packages/core/src/index.js';
import {
  alibiSlopes,
  disposeLightningContext,
  lightningAttention,
  lightningAttentionBackward,
} from '../../packages/linear-attn/src/index.js';

const gpu = await createGpu({ fast: true, maxPooledBytes: 16 * 2 ** 30 });
const cases: [number, number, number][] = [
  [16, 128, 4096],
  [16, 128, 16384],
  [32, 128, 4096],
  [12, 64, 16384],
  [12, 64, 65536],
  [16, 128, 4096],
];
for (const [heads, d, n] of cases) {
  gpu.pool.trim();
  const shape = [1, n, heads, d];
  const [q, k, v] = await Promise.all(
    [1, 2, 3].map((seed) => randomNormal(gpu, shape, seed, { dtype: 'f16' })),
  );
  const dO = await randomNormal(gpu, shape, 4, { dtype: 'f16', scale: 0.1 });
  const options = { slopes: alibiSlopes(heads), tier: 'subgroup-matrix' as const, checkFinite: false };
  const held = await lightningAttention(gpu, q!, k!, v!, options);
  const m = await measure(
    gpu,
    async () => {
      const g = await lightningAttentionBackward(held.ctx, dO);
      for (const t of [g.dq, g.dk, g.dv]) t.dispose();
    },
    { warmup: 1, iters: 3 },
  );
  const runs = m.samples.map((span, i) => {
    const kernels = m.kernels?.[i] ?? {};
    const sum = Object.values(kernels).reduce((a, b) => a + b, 0);
    return `span ${span.toFixed(2)} kernels ${sum.toFixed(2)}`;
  });
  const labels = Object.entries(m.kernels?.[0] ?? {})
    .map(([label, ms]) => `${label} ${ms.toFixed(2)}`)
    .join('; ');
  console.log(`h=${heads} d=${d} n=${n}: ${runs.join(' | ')}\n  ${labels}`);
  held.o.dispose();
  held.finalState.dispose();
  disposeLightningContext(held.ctx);
  for (const t of [q, k, v, dO]) t!.dispose();
}

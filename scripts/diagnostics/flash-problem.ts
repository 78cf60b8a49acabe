// What the flash diagnostics share: the seed's problem (b=1, hq=64, hkv=4, d=128, causal, f16,
// tensor-core tier) on random inputs, timers for its forward and backward, and a one-line listing
// of a measurement's kernels. Not the bench: per-kernel GPU times to decide what to change.

import {
  createGpu,
  flashAttention,
  flashAttentionBackward,
  type Gpu,
  type Measurement,
  measure,
  randomNormal,
} from '../../packages/core/src/index.js';

/** Causal forward FLOPs of the problem at n tokens (the backward counts 2.5x these). */
export const forwardFlops = (n: number) => ((2 * 2 * (n * n)) / 2) * 128 * 64;

/** One timed run's kernels, `label ms` joined by `; ` (labels cut at their tier tag). */
export function kernelTimes(m: Measurement): string {
  return Object.entries(m.kernels?.[1] ?? m.kernels?.[0] ?? {})
    .map(([label, ms]) => `${label.replace(/ \[subgroup-matrix\].*/, '')} ${ms.toFixed(1)}`)
    .join('; ');
}

/** The problem at n tokens on a device with a 16 GiB pool, with its forward's context held. */
export async function flashProblem(n: number): Promise<{
  gpu: Gpu;
  timeForward: () => Promise<Measurement>;
  timeBackward: () => Promise<Measurement>;
}> {
  const gpu = await createGpu({ fast: true, maxPooledBytes: 16 * 2 ** 30 });
  const q = await randomNormal(gpu, [1, n, 64, 128], 1, { dtype: 'f16' });
  const k = await randomNormal(gpu, [1, n, 4, 128], 2, { dtype: 'f16' });
  const v = await randomNormal(gpu, [1, n, 4, 128], 3, { dtype: 'f16' });
  const dO = await randomNormal(gpu, [1, n, 64, 128], 4, { dtype: 'f16', scale: 0.1 });
  const options = { causal: true, tier: 'subgroup-matrix' as const };
  const held = await flashAttention(gpu, q, k, v, options);
  const timed = { warmup: 1, iters: 3 };
  return {
    gpu,
    timeForward: () =>
      measure(
        gpu,
        async () => {
          const r = await flashAttention(gpu, q, k, v, options);
          r.o.dispose();
          r.lse.dispose();
        },
        timed,
      ),
    timeBackward: () =>
      measure(
        gpu,
        async () => {
          const g = await flashAttentionBackward(held.ctx, dO);
          for (const t of [g.dq, g.dk, g.dv]) t.dispose();
        },
        timed,
      ),
  };
}

// What the flash diagnostics share: the seed's problem (b=1, hq=64, hkv=4, d=128, causal, f16,
// tensor-core tier) on random inputs, timers for its forward and backward, and a one-line listing
// of a measurement's kernels. Not the bench: per-kernel GPU times to decide what to change.
// An argument `d=256` (anywhere on the command line) runs the problem at another head dim, for q, k
// and v alike.

import {
  createGpu,
  flashAttention,
  flashAttentionBackward,
  type Gpu,
  type Measurement,
  measure,
  randomNormal,
} from '../../packages/core/src/index.js';

/** The problem's head dim: 128, the seed's, unless an argument `d=N` gives another. */
const d = Number(process.argv.find((arg) => /^d=\d+$/.test(arg))?.slice(2) ?? 128);

/** Causal forward FLOPs of the problem at n tokens (the backward counts 2.5x these). */
export const forwardFlops = (n: number) => ((2 * 2 * (n * n)) / 2) * d * 64;

/**
 * Replaces every field of one of core's mutable tuning choices (DKDV_KERNEL, ...) with `choice`'s,
 * so that no field an earlier setting added outlives it (Object.assign alone would keep it).
 */
export function replaceChoice<T extends object>(target: T, choice: T): void {
  for (const key of Object.keys(target)) delete target[key as keyof T];
  Object.assign(target, choice);
}

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
  /** dq, dk and dv of one backward, read back, to compare kernel choices bit for bit. */
  backwardGradients: () => Promise<Float32Array[]>;
  /** o and lse of one forward, read back, likewise. */
  forwardOutputs: () => Promise<Float32Array[]>;
}> {
  const gpu = await createGpu({ fast: true, maxPooledBytes: 16 * 2 ** 30 });
  const q = await randomNormal(gpu, [1, n, 64, d], 1, { dtype: 'f16' });
  const k = await randomNormal(gpu, [1, n, 4, d], 2, { dtype: 'f16' });
  const v = await randomNormal(gpu, [1, n, 4, d], 3, { dtype: 'f16' });
  const dO = await randomNormal(gpu, [1, n, 64, d], 4, { dtype: 'f16', scale: 0.1 });
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
    forwardOutputs: async () => {
      const r = await flashAttention(gpu, q, k, v, options);
      try {
        return await Promise.all([r.o, r.lse].map((t) => t.read()));
      } finally {
        r.o.dispose();
        r.lse.dispose();
      }
    },
    backwardGradients: async () => {
      const g = await flashAttentionBackward(held.ctx, dO);
      try {
        return await Promise.all([g.dq, g.dk, g.dv].map((t) => t.read()));
      } finally {
        for (const t of [g.dq, g.dk, g.dv]) t.dispose();
      }
    },
  };
}

/**
 * How two runs' tensors (named `names`, the gradients dq, dk, dv unless given) differ: undefined
 * when they are equal bit for bit, else per tensor the count of differing elements and the largest
 * difference relative to the tensor's largest magnitude.
 */
export function tensorsDifference(
  a: Float32Array[],
  b: Float32Array[],
  names = ['dq', 'dk', 'dv'],
): string | undefined {
  const parts: string[] = [];
  for (const [t, name] of names.entries()) {
    const x = a[t] as Float32Array;
    const y = b[t] as Float32Array;
    let count = 0;
    let largest = 0;
    let scale = 0;
    for (let i = 0; i < x.length; i++) {
      scale = Math.max(scale, Math.abs(x[i] as number));
      if (Object.is(x[i], y[i])) continue;
      count++;
      largest = Math.max(largest, Math.abs((x[i] as number) - (y[i] as number)));
    }
    if (count > 0)
      parts.push(`${name}: ${count} elements, largest ${(largest / scale).toExponential(2)} of max`);
  }
  return parts.length > 0 ? parts.join('; ') : undefined;
}

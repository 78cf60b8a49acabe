// What the NSA diagnostics share: the bench's reference problem (b=1, hq=64, hkv=4, d=128, f16,
// the reference config) on a fast device, n tokens from the command line (the first numeric
// argument; `defaultTokens`, 65536 unless given, otherwise), and a timer of its tensor-core forward.

import { createGpu, measure, randomNormal } from '../../packages/core/src/index.js';
import {
  disposeNsaForward,
  disposeNsaGradients,
  nsaBackward,
  nsaForward,
  resolveNsaConfig,
} from '../../packages/nsa/src/index.js';

/** The device, config and inputs of the NSA diagnostics, and `timeForward` (per-kernel times included). */
export async function nsaProblem(defaultTokens = 65536) {
  const n = Number(process.argv.slice(2).find((a) => /^\d+$/.test(a)) ?? defaultTokens);
  const gpu = await createGpu({ fast: true, maxPooledBytes: 16 * 2 ** 30 });
  const c = resolveNsaConfig({ heads: 64, kvHeads: 4, headDim: 128 });
  const q = await randomNormal(gpu, [1, n, 64, 128], 1, { dtype: 'f16' });
  const k = await randomNormal(gpu, [1, n, 4, 128], 2, { dtype: 'f16' });
  const v = await randomNormal(gpu, [1, n, 4, 128], 3, { dtype: 'f16' });
  const g = await randomNormal(gpu, [1, n, 64, 3], 4, { dtype: 'f16' });
  const timeForward = () =>
    measure(
      gpu,
      async () => {
        disposeNsaForward(await nsaForward(gpu, c, q, k, v, g, { tier: 'subgroup-matrix' }));
      },
      { warmup: 1, iters: 3 },
    );
  return { n, gpu, c, q, k, v, g, timeForward };
}

/**
 * The problem's backward: an upstream gradient dO, one forward held on the tensor-core tier, and a
 * timer of the backward from it (per-kernel times included).
 */
export async function nsaBackwardProblem(problem: Awaited<ReturnType<typeof nsaProblem>>) {
  const { n, gpu, c, q, k, v, g } = problem;
  const dO = await randomNormal(gpu, [1, n, 64, 128], 5, { dtype: 'f16' });
  const forward = await nsaForward(gpu, c, q, k, v, g, { tier: 'subgroup-matrix' });
  const timeBackward = () =>
    measure(
      gpu,
      async () => {
        disposeNsaGradients(await nsaBackward(forward, dO));
      },
      { warmup: 1, iters: 3 },
    );
  return { dO, forward, timeBackward };
}

// Runs every tensor-core kernel of the bench's problems once, for the diagnostics that look at the
// kernels themselves rather than their times (kernel-memory, dump-spirv): core's flash forward and
// backward and the NSA forward and backward at the reference config (b=1, hq=64, hkv=4, d=128,
// 4096 tokens), the MLA decode (batch 32 x 4096) and prefill (1024 tokens). Prints nothing.

import {
  flashAttention,
  flashAttentionBackward,
  type Gpu,
  randomNormal,
} from '../../packages/core/src/index.js';
import { nsaBackward, nsaForward, resolveNsaConfig } from '../../packages/nsa/src/index.js';
import { mlaDecodeProblem, mlaPrefillProblem } from './mla-problem.js';

/** Runs the bench's problems on `gpu` (the subgroup-matrix tier) and waits for them. */
export async function runBenchKernels(gpu: Gpu): Promise<void> {
  const n = 4096;
  const f16 = (shape: number[], seed: number) => randomNormal(gpu, shape, seed, { dtype: 'f16' });
  const q = await f16([1, n, 64, 128], 1);
  const k = await f16([1, n, 4, 128], 2);
  const v = await f16([1, n, 4, 128], 3);
  const dO = await f16([1, n, 64, 128], 4);
  const g = await f16([1, n, 64, 3], 5);
  const tier = 'subgroup-matrix' as const;
  const flash = await flashAttention(gpu, q, k, v, { causal: true, tier });
  await flashAttentionBackward(flash.ctx, dO);
  const config = resolveNsaConfig({ heads: 64, kvHeads: 4, headDim: 128 });
  await nsaBackward(await nsaForward(gpu, config, q, k, v, g, { tier }), dO);
  await (await mlaDecodeProblem(gpu, 32, 4096)).time();
  await (await mlaPrefillProblem(gpu, 1024)).run();
  await gpu.device.queue.onSubmittedWorkDone();
}

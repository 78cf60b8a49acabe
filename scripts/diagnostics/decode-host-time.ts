// Diagnostic (not the bench): the host time to record MLA decode steps back to back (MiniCPM3 dims,
// paged f16 cache, batch 32 x 4096, tensor-core tier), 2000 steps a line with a submit every 100,
// three lines. The bench's decode tables time single calls after a sync; this is the steady loop a
// generating model runs. Run with `node --cpu-prof` to see where the time goes.
// `pnpm gpu:bundle` builds it into .gpu-kit/decode-host-time.mjs; on the GPU machine:
//   node .gpu-kit/decode-host-time.mjs

import { createGpu } from '../../packages/core/src/index.js';
import { mlaDecodeProblem } from './mla-problem.js';

const STEPS = 2000;
const SUBMIT_EVERY = 100;
const gpu = await createGpu({ fast: true, maxPooledBytes: 16 * 2 ** 30 });
const problem = await mlaDecodeProblem(gpu, 32, 4096);
for (let i = 0; i < 20; i++) {
  await problem.step();
  await gpu.sync();
}
for (let line = 0; line < 3; line++) {
  await gpu.sync();
  const start = performance.now();
  for (let s = 0; s < STEPS; s++) {
    await problem.step();
    if (s % SUBMIT_EVERY === SUBMIT_EVERY - 1) gpu.submit();
  }
  const recorded = performance.now();
  await gpu.sync();
  console.log(
    `mla decode batch 32 x 4096: ${(((recorded - start) / STEPS) * 1000).toFixed(0)} us of host time per step`,
  );
}
problem.dispose();
gpu.destroy();

// Diagnostic (not the bench): times one problem with the kernels whose label starts with a prefix
// declaring more workgroup memory and nothing else changed (ablate.ts, workgroupPadding), first in
// its own process, so that one can tell on which side of a step of the H200's occupancy each
// kernel sits and what trimming its memory could gain. Problems: `nsa` and `nsa-backward` (the
// NSA forward, or its backward, at the bench's reference problem, 65,536 tokens unless a count is
// given), `flash-forward` and `flash-backward` (core's, 16,384 tokens), `mla-decode` (batch 32 x
// 4096), `mla-prefill` (one sequence of 8192 tokens). Prints every kernel's time of the
// measurement.
// `pnpm gpu:bundle` builds it into .gpu-kit/workgroup-padding.mjs; on the GPU machine:
//   node .gpu-kit/workgroup-padding.mjs nsa [TOKENS] 'nsa select$' 8192   ($: that label exactly)
//   node .gpu-kit/workgroup-padding.mjs flash-backward 'flash backward dq' 0

import { createGpu, type Gpu, type Measurement } from '../../packages/core/src/index.js';
import { ablationsOf, workgroupPadding } from './ablate.js';
import { flashProblem } from './flash-problem.js';
import { kernelMicroseconds, mlaDecodeProblem, mlaPrefillProblem } from './mla-problem.js';
import { nsaBackwardProblem, nsaProblem } from './nsa-problem.js';

const [problem, ...rest] = process.argv.slice(2);
const label = rest.find((a) => !/^\d+$/.test(a));
const bytes = Number(rest.filter((a) => /^\d+$/.test(a)).at(-1));
if (!label || !Number.isInteger(bytes) || bytes % 16 !== 0) {
  throw new Error(
    'usage: workgroup-padding <nsa [TOKENS]|flash-forward|flash-backward|mla-decode> LABEL BYTES',
  );
}

/** The problem's device and timer. */
async function timer(): Promise<{ gpu: Gpu; time(): Promise<Measurement> }> {
  if (problem === 'nsa') {
    const { gpu, timeForward } = await nsaProblem();
    return { gpu, time: timeForward };
  }
  if (problem === 'nsa-backward') {
    const nsa = await nsaProblem();
    const { timeBackward } = await nsaBackwardProblem(nsa);
    return { gpu: nsa.gpu, time: timeBackward };
  }
  if (problem === 'flash-forward' || problem === 'flash-backward') {
    const { gpu, timeForward, timeBackward } = await flashProblem(16384);
    return { gpu, time: problem === 'flash-forward' ? timeForward : timeBackward };
  }
  if (problem === 'mla-decode') {
    const gpu = await createGpu({ fast: true });
    const decode = await mlaDecodeProblem(gpu, 32, 4096);
    return { gpu, time: () => decode.time() };
  }
  if (problem === 'mla-prefill') {
    // One sequence of 8192 tokens, as the bench's prefill table.
    const gpu = await createGpu({ fast: true });
    const prefill = await mlaPrefillProblem(gpu, 8192);
    return { gpu, time: prefill.time };
  }
  throw new Error(`workgroup-padding: unknown problem ${problem}`);
}

const { gpu, time } = await timer();
for (const [name, timed] of ablationsOf(gpu, label, [workgroupPadding(bytes)], time)) {
  const m = await timed();
  console.log(
    `${problem} with '${label}' kernels' ${name}: ${m.median.toFixed(3)} ms [${kernelMicroseconds(m)}]`,
  );
}
gpu.destroy();

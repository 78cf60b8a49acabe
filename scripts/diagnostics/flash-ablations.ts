// Diagnostic (not the bench): times core's tensor-core flash backward at b=1, hq=64, hkv=4, d=128,
// causal, f16, n=16384, with one piece of the role-split dK/dV and dQ kernels removed at a time
// (their WGSL rewritten on its way to the pipeline cache), so that one GPU call shows what their
// time is spent on. The ablated results are wrong by construction; only their times mean anything.
// With `forward`, the forward's kernel instead: its key and value loads, score and P·V
// multiply-accumulates, exponentials, and the exchange of the subgroups' tile maxima. With
// `shared`, the forward with 0 to 32 KiB more workgroup memory declared and nothing else changed:
// whether the declared size alone moves its time (V staged in an array of its own, 8.7 KiB more,
// ran 2.3x slower; 2026-11-30, twelfth session).
// `pnpm gpu:bundle` builds it into .gpu-kit/flash-ablations.mjs; on the GPU machine:
//   node .gpu-kit/flash-ablations.mjs [forward|shared [BYTES]]

import { type Ablation, ablationsOf, never, workgroupPadding } from './ablate.js';
import { flashProblem, forwardFlops, kernelTimes } from './flash-problem.js';
import { roleSplitAblations } from './role-split-ablations.js';

const n = 16384;
const { gpu, timeForward, timeBackward } = await flashProblem(n);

/** The forward's pieces, one removed at a time (`forward` on the command line). */
const forwardAblations: Ablation[] = [
  ['none', (c) => c],
  ['key loads', (c) => c.replace(/(ex\d+) = (k\[[^;]*\]);/g, (_, x, load) => never(`${x} = ${load};`))],
  ['value loads', (c) => c.replace(/(ex\d+) = (v\[[^;]*\]);/g, (_, x, load) => never(`${x} = ${load};`))],
  ['score MMAs', (c) => c.replace(/^\s*sf[\d_]+ = subgroupMatrixMultiplyAccumulate\(.*$/gm, '')],
  ['P·V MMAs', (c) => c.replace(/^\s*of[\d_]+ = subgroupMatrixMultiplyAccumulate\(.*$/gm, '')],
  ['exponentials', (c) => c.replace(/exp2\((x\d+) - m\)/g, '($1 - m)')],
  [
    // The subgroups' tile maxima no longer combined, and the barrier before it gone.
    'max exchange',
    (c) =>
      c
        .replace(/(if \(part == 0u\) \{ RowPart\[[^}]*\})\s*workgroupBarrier\(\);/, '$1')
        .replace(/for \(var g = 0u; g < SUBGROUPS; g\+\+\) \{ tileMax = max\(tileMax, RowPart\[[^}]*\}/, ''),
  ],
];
/** Times the forward under each rewrite in turn, printing `forward <how> <name>`, then exits. */
async function timeForwardRewrites(how: string, rewrites: Ablation[]): Promise<never> {
  for (const [name, time] of ablationsOf(gpu, 'flash forward', rewrites, timeForward)) {
    const m = await time();
    const tflops = (forwardFlops(n) / m.median / 1e9).toFixed(1);
    console.log(`forward ${how} ${name}: ${m.median.toFixed(2)} ms (${tflops} TFLOPS) [${kernelTimes(m)}]`);
  }
  gpu.destroy();
  process.exit(0);
}
if (process.argv.includes('shared')) {
  // Each size twice, smallest first then largest first, so that no size is only timed late in the
  // process (some pipelines have been seen to run slower later in one).
  // With a size after it (`shared 8192`), that size alone, first in its own process.
  const only = Number(process.argv[process.argv.indexOf('shared') + 1]);
  const sizes = [0, 4096, 8192, 16384, 24576, 32768];
  const order = Number.isInteger(only) ? [only] : [...sizes, ...[...sizes].reverse()];
  await timeForwardRewrites('with', order.map(workgroupPadding));
}
if (process.argv.includes('forward')) await timeForwardRewrites('without', forwardAblations);

for (const [name, time] of ablationsOf(gpu, 'flash backward', roleSplitAblations, timeBackward)) {
  const m = await time();
  const tflops = ((2.5 * forwardFlops(n)) / m.median / 1e9).toFixed(1);
  console.log(`without ${name}: ${m.median.toFixed(1)} ms (${tflops} TFLOPS) [${kernelTimes(m)}]`);
}
gpu.destroy();

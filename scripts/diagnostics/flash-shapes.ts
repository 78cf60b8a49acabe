// Diagnostic (not the bench): times core's tensor-core flash backward (each pass with and
// without its role-split kernel, the split kernels over 16- and 32-row tiles, then each shape) and forward at b=1, hq=64, hkv=4, d=128, causal, f16,
// n=16384 with each shape (subgroups, tile, row fragments) that fits, printing per-kernel GPU
// times, so that one GPU call tells which kernel and shape to make the default. Everything comes
// from core's sources, so the settings it edits are the ones flash reads.
// `pnpm gpu:bundle` builds it into .gpu-kit/flash-shapes.mjs; on the GPU machine:
//   node .gpu-kit/flash-shapes.mjs

import {
  BACKWARD_SHAPES,
  DKDV_KERNEL,
  DQ_KERNEL,
  FORWARD_SHAPES,
  type MatrixShapeChoice,
  type RoleSplitChoice,
} from '../../packages/core/src/flash/flash.js';
import type { Measurement } from '../../packages/core/src/index.js';
import { flashProblem, forwardFlops, kernelTimes } from './flash-problem.js';

const n = 16384;
const { gpu, timeForward, timeBackward } = await flashProblem(n);

/** Times `time` with each candidate as the only shape in `shapes`, then puts the list back. */
async function tryShapes(
  pass: string,
  shapes: MatrixShapeChoice[],
  candidates: MatrixShapeChoice[],
  time: () => Promise<Measurement>,
  flops: number,
) {
  const original = [...shapes];
  for (const candidate of candidates) {
    shapes.splice(0, shapes.length, candidate);
    try {
      const m = await time();
      const tflops = (flops / m.median / 1e9).toFixed(1);
      console.log(
        `${pass} shape [${candidate.join(', ')}] n=${n}: ${m.median.toFixed(1)} ms (${tflops} TFLOPS) [${kernelTimes(m)}]`,
      );
    } catch (error) {
      console.log(`${pass} shape [${candidate.join(', ')}]: ${String(error).split('\n')[0]}`);
    }
  }
  shapes.splice(0, shapes.length, ...original);
}

// The backward passes with and without their role-split kernels, and the split kernels' tiles.
const choices: [string, RoleSplitChoice, RoleSplitChoice][] = [
  ['plain dK/dV, plain dQ', { roles: false, rolesTile: 16 }, { roles: false, rolesTile: 16 }],
  ['split dK/dV over 32, plain dQ', { roles: true, rolesTile: 32 }, { roles: false, rolesTile: 16 }],
  ['split dK/dV over 32, split dQ over 16', { roles: true, rolesTile: 32 }, { roles: true, rolesTile: 16 }],
  ['split dK/dV over 32, split dQ over 32', { roles: true, rolesTile: 32 }, { roles: true, rolesTile: 32 }],
];
const defaults = [{ ...DKDV_KERNEL }, { ...DQ_KERNEL }] as const;
for (const [name, dkDv, dq] of choices) {
  Object.assign(DKDV_KERNEL, dkDv);
  Object.assign(DQ_KERNEL, dq);
  const m = await timeBackward();
  const tflops = ((2.5 * forwardFlops(n)) / m.median / 1e9).toFixed(1);
  console.log(`backward, ${name}: ${m.median.toFixed(1)} ms (${tflops} TFLOPS) [${kernelTimes(m)}]`);
}
Object.assign(DKDV_KERNEL, defaults[0]);
Object.assign(DQ_KERNEL, defaults[1]);

// [2, 32, 1] and [4, 16, 1] do not fit 48 KiB at d = 128 (the row kernels run: 4.2 s, 2026-11-30).
const backwardCandidates: MatrixShapeChoice[] = [
  [2, 16, 1],
  [1, 32, 1],
  [1, 16, 1],
];
await tryShapes('backward', BACKWARD_SHAPES, backwardCandidates, timeBackward, 2.5 * forwardFlops(n));
const forwardCandidates: MatrixShapeChoice[] = [
  [2, 32, 2],
  [4, 32, 2],
  [2, 64, 2],
  [4, 64, 2],
  [2, 32, 1],
];
await tryShapes('forward', FORWARD_SHAPES, forwardCandidates, timeForward, forwardFlops(n));
gpu.destroy();

// Diagnostic (not the bench): times core's tensor-core flash backward (its dK/dV kernel with and
// without the role split, the role split over 16- and 32-query tiles, then each shape) and forward at b=1, hq=64, hkv=4, d=128, causal, f16,
// n=16384 with each shape (subgroups, tile, row fragments) that fits, printing per-kernel GPU
// times, so that one GPU call tells which kernel and shape to make the default. Everything comes
// from core's sources, so the settings it edits are the ones flash reads.
// `pnpm gpu:bundle` builds it into .gpu-kit/flash-shapes.mjs; on the GPU machine:
//   node .gpu-kit/flash-shapes.mjs

import {
  BACKWARD_SHAPES,
  DKDV_KERNEL,
  FORWARD_SHAPES,
  type MatrixShapeChoice,
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

// The dK/dV kernel with and without the role split, at the default shape.
for (const roles of [false, true]) {
  DKDV_KERNEL.roles = roles;
  const m = await timeBackward();
  const tflops = ((2.5 * forwardFlops(n)) / m.median / 1e9).toFixed(1);
  console.log(
    `backward, dK/dV roles ${roles}: ${m.median.toFixed(1)} ms (${tflops} TFLOPS) [${kernelTimes(m)}]`,
  );
}
DKDV_KERNEL.roles = true;
// The role-split kernel over query tiles of 16 and 32 rows (the dQ kernel keeps the shape's tile).
for (const rolesTile of [16, 32]) {
  DKDV_KERNEL.rolesTile = rolesTile;
  const m = await timeBackward();
  const tflops = ((2.5 * forwardFlops(n)) / m.median / 1e9).toFixed(1);
  console.log(
    `backward, dK/dV roles over ${rolesTile}-query tiles: ${m.median.toFixed(1)} ms (${tflops} TFLOPS) [${kernelTimes(m)}]`,
  );
}
DKDV_KERNEL.rolesTile = 32;

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

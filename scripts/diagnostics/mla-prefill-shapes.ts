// Diagnostic (not the bench): times the MLA prefill (one sequence of 8192 tokens at MiniCPM3's
// dims, tensor-core tier, as the bench's prefill table) with core's forward shape given first in
// FORWARD_SHAPES, then with the default shapes, outputs compared. At 288/256 the default forward is
// [2, 32, 1, 4] (four row groups of one fragment, 34,064 bytes: one workgroup of eight subgroups per
// H200 SM, each 32-key tile serving 64 rows); [2, 32, 1] (16 rows, 22,736 bytes, two workgroups of
// two subgroups) ran 21.7 ms against 9.9 (2026-12-01). Run one shape per process: later in a process
// some pipelines have run 2-3x slower.
// `pnpm gpu:bundle` builds it into .gpu-kit/mla-prefill-shapes.mjs; on the GPU machine:
//   node .gpu-kit/mla-prefill-shapes.mjs 2,32,1,3

import {
  FORWARD_SHAPES,
  type MatrixShapeChoice,
  matrixForwardConfig,
} from '../../packages/core/src/flash/flash.js';
import { createGpu } from '../../packages/core/src/index.js';
import { tensorsDifference } from './flash-problem.js';
import { kernelMicroseconds, MLA_DIMS, mlaPrefillProblem } from './mla-problem.js';

const n = 8192;
const shape = (process.argv[2] ?? '2,32,1,3').split(',').map(Number) as unknown as MatrixShapeChoice;
const gpu = await createGpu({ fast: true });
const prefill = await mlaPrefillProblem(gpu, n);
const d = MLA_DIMS.r + MLA_DIMS.dr;
const defaults = [...FORWARD_SHAPES];
const outputs: Float32Array[] = [];
for (const [name, shapes] of [
  [`shape [${shape.join(', ')}] first`, [shape, ...defaults]],
  ['the default shapes', defaults],
] as const) {
  FORWARD_SHAPES.splice(0, Infinity, ...shapes);
  const chosen = matrixForwardConfig(gpu.caps, d, MLA_DIMS.r);
  const m = await prefill.time();
  outputs.push(await prefill.output());
  const picked = chosen
    ? `[${chosen.subgroups}, ${chosen.tile}, ${chosen.rowFragments}, ${chosen.rowGroups ?? 1}]`
    : 'none';
  console.log(
    `mla prefill n=${n}, ${name} (picked ${picked}): ${m.median.toFixed(2)} ms [${kernelMicroseconds(m)}]`,
  );
}
const [first, second] = outputs as [Float32Array, Float32Array];
console.log(`outputs: ${tensorsDifference([first], [second], ['o']) ?? 'same bits'}`);
gpu.destroy();

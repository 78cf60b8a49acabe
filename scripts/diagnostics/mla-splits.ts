// Diagnostic (not the bench): times the tensor-core MLA decode (MiniCPM3 dims, paged cache, f16) at
// the bench's shapes with the planner's split count and with forced ones, printing per-kernel GPU
// times, so that one GPU call tells how many splits the planner should aim for. With `key-tiles
// 16`, instead: batch 32 x 4096 with the tensor-core kernel's key tiles limited to those given
// (MLA_MATRIX_KEY_TILES; 16-key tiles declare 20.1 KiB against 30.8), first in this process, then
// with the default tiles, outputs compared; with `splits S,S` after them, each at those split
// counts as well (16-key tiles leave room for two workgroups per SM, which 128 workgroups cannot
// fill). With `streamed` too, both with the queries read from storage in every tile rather than held
// in registers (MLA_HOLD_QUERY off): held, they take 217 registers per invocation and so one
// workgroup of eight subgroups per SM whatever the tile (pipeline-stats, 2026-12-02).
// `pnpm gpu:bundle` builds it into .gpu-kit/mla-splits.mjs; on the GPU machine:
//   node .gpu-kit/mla-splits.mjs [key-tiles T,T [streamed] [splits S,S]]

import { createGpu } from '../../packages/core/src/index.js';
import { MLA_HOLD_QUERY, MLA_MATRIX_KEY_TILES } from '../../packages/mla/src/attention/plan.js';
import { tensorsDifference } from './flash-problem.js';
import { kernelMicroseconds, mlaDecodeProblem } from './mla-problem.js';

const gpu = await createGpu({ fast: true, maxPooledBytes: 16 * 2 ** 30 });
const tilesAt = process.argv.indexOf('key-tiles');
if (tilesAt !== -1) {
  const tiles = (process.argv[tilesAt + 1] ?? '').split(',').map(Number);
  // With `splits S,S` after them, each tile order at those split counts too (the planner aims
  // for one workgroup per SM; 16-key tiles might hold two).
  const splitsAt = process.argv.indexOf('splits');
  const splitCounts = [
    undefined,
    ...(splitsAt === -1 ? [] : (process.argv[splitsAt + 1] ?? '').split(',').map(Number)),
  ];
  const defaults = [...MLA_MATRIX_KEY_TILES];
  if (process.argv.includes('streamed')) MLA_HOLD_QUERY.enabled = false;
  const problem = await mlaDecodeProblem(gpu, 32, 4096);
  const outputs: Float32Array[] = [];
  for (const [name, order] of [
    [`key tiles ${tiles.join(', ')}`, tiles],
    [`key tiles ${defaults.join(', ')} (the default)`, defaults],
  ] as const) {
    MLA_MATRIX_KEY_TILES.splice(0, Infinity, ...order);
    for (const splits of splitCounts) {
      const m = await problem.time(splits);
      if (splits === undefined) outputs.push(await problem.output());
      console.log(
        `batch 32 cache 4096 ${name}, splits ${splits ?? 'planned'}: ${(m.median * 1000).toFixed(0)} us, ${(problem.bytes / m.median / 1e6).toFixed(0)} GB/s [${kernelMicroseconds(m)}]`,
      );
    }
  }
  const [first, second] = outputs as [Float32Array, Float32Array];
  console.log(`outputs: ${tensorsDifference([first], [second], ['o']) ?? 'same bits'}`);
  problem.dispose();
  gpu.destroy();
  process.exit(0);
}
// Batch 1 first: a single sequence's decode has the fewest workgroups to spread.
const cases: [number, number][] = [
  [1, 1024],
  [1, 4096],
  [1, 16384],
  [8, 4096],
  [32, 4096],
  [64, 4096],
];
for (const [batch, n] of cases) {
  const problem = await mlaDecodeProblem(gpu, batch, n);
  for (const splits of [undefined, 4, 8, 16, 32, 64, 128]) {
    const m = await problem.time(splits);
    console.log(
      `batch ${batch} cache ${n} splits ${splits ?? 'planned'}: ${(m.median * 1000).toFixed(0)} us, ${(problem.bytes / m.median / 1e6).toFixed(0)} GB/s [${kernelMicroseconds(m)}]`,
    );
  }
  problem.dispose();
}

// Diagnostic (not the bench): times core's tensor-core flash backward at b=1, hq=64, hkv=4, d=128,
// causal, f16, with each backward and forward shape (subgroups, tile, row fragments) that fits,
// printing per-kernel GPU times, so that one GPU call tells which shape to make the default.
// Everything comes from core's sources, so the shape list it edits is the one flash reads.
// Bundle: npx esbuild scripts/diagnostics/flash-shapes.ts --bundle --platform=node --format=esm \
//   --external:webgpu --outfile=.gpu-kit/flash-shapes.mjs ; run: node .gpu-kit/flash-shapes.mjs

import {
  BACKWARD_SHAPES,
  FORWARD_SHAPES,
  type MatrixShapeChoice,
} from '../../packages/core/src/flash/flash.js';
import {
  createGpu,
  flashAttention,
  flashAttentionBackward,
  measure,
  randomNormal,
} from '../../packages/core/src/index.js';

const gpu = await createGpu({ fast: true, maxPooledBytes: 16 * 2 ** 30 });
const n = Number(process.env.N ?? 16384);
const shape = [1, n, 64, 128];
const kvShape = [1, n, 4, 128];
const q = await randomNormal(gpu, shape, 1, { dtype: 'f16' });
const k = await randomNormal(gpu, kvShape, 2, { dtype: 'f16' });
const v = await randomNormal(gpu, kvShape, 3, { dtype: 'f16' });
const dO = await randomNormal(gpu, shape, 4, { dtype: 'f16', scale: 0.1 });
const held = await flashAttention(gpu, q, k, v, { causal: true, tier: 'subgroup-matrix' });
const flops = ((2.5 * 2 * 2 * (n * n)) / 2) * 128 * 64;
const candidates: MatrixShapeChoice[] = [
  [2, 16, 1],
  [2, 32, 1],
  [1, 32, 1],
  [1, 16, 1],
  [4, 16, 1],
];
const original = [...BACKWARD_SHAPES];
for (const candidate of candidates) {
  BACKWARD_SHAPES.splice(0, BACKWARD_SHAPES.length, candidate);
  try {
    const m = await measure(
      gpu,
      async () => {
        const g = await flashAttentionBackward(held.ctx, dO);
        for (const t of [g.dq, g.dk, g.dv]) t.dispose();
      },
      { warmup: 1, iters: 3 },
    );
    const kernels = Object.entries(m.kernels?.[1] ?? {})
      .map(([label, ms]) => `${label} ${ms.toFixed(1)}`)
      .join('; ');
    console.log(
      `backward shape [${candidate.join(', ')}] n=${n}: ${m.median.toFixed(1)} ms (${(flops / m.median / 1e9).toFixed(1)} TFLOPS) [${kernels}]`,
    );
  } catch (error) {
    console.log(`backward shape [${candidate.join(', ')}]: ${String(error).split('\n')[0]}`);
  }
}
BACKWARD_SHAPES.splice(0, BACKWARD_SHAPES.length, ...original);

// The forward's shapes, the same way (its default measured before the backward's staging changed).
const forwardOriginal = [...FORWARD_SHAPES];
const forwardCandidates: MatrixShapeChoice[] = [
  [2, 32, 2],
  [2, 16, 2],
  [4, 32, 1],
  [2, 32, 1],
  [4, 16, 2],
];
for (const candidate of forwardCandidates) {
  FORWARD_SHAPES.splice(0, FORWARD_SHAPES.length, candidate);
  try {
    const m = await measure(
      gpu,
      async () => {
        const r = await flashAttention(gpu, q, k, v, { causal: true, tier: 'subgroup-matrix' });
        r.o.dispose();
        r.lse.dispose();
      },
      { warmup: 1, iters: 3 },
    );
    console.log(
      `forward shape [${candidate.join(', ')}] n=${n}: ${m.median.toFixed(1)} ms (${(flops / 2.5 / m.median / 1e9).toFixed(1)} TFLOPS)`,
    );
  } catch (error) {
    console.log(`forward shape [${candidate.join(', ')}]: ${String(error).split('\n')[0]}`);
  }
}
FORWARD_SHAPES.splice(0, FORWARD_SHAPES.length, ...forwardOriginal);
gpu.destroy();

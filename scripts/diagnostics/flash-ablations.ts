// Diagnostic (not the bench): times core's tensor-core flash backward at b=1, hq=64, hkv=4, d=128,
// causal, f16, n=16384, with one piece of the dK/dV and dQ kernels removed at a time (their WGSL
// rewritten on its way to the pipeline cache), so that one GPU call shows what their time is spent
// on. The ablated results are wrong by construction; only their times mean anything.
// Bundle: npx esbuild scripts/diagnostics/flash-ablations.ts --bundle --platform=node --format=esm \
//   --external:webgpu --outfile=.gpu-kit/flash-ablations.mjs ; run: node .gpu-kit/flash-ablations.mjs

import {
  createGpu,
  flashAttention,
  flashAttentionBackward,
  measure,
  randomNormal,
} from '../../packages/core/src/index.js';

const gpu = await createGpu({ fast: true, maxPooledBytes: 16 * 2 ** 30 });
const n = 16384;
const q = await randomNormal(gpu, [1, n, 64, 128], 1, { dtype: 'f16' });
const k = await randomNormal(gpu, [1, n, 4, 128], 2, { dtype: 'f16' });
const v = await randomNormal(gpu, [1, n, 4, 128], 3, { dtype: 'f16' });
const dO = await randomNormal(gpu, [1, n, 64, 128], 4, { dtype: 'f16', scale: 0.1 });
const held = await flashAttention(gpu, q, k, v, { causal: true, tier: 'subgroup-matrix' });

/**
 * Each ablation rewrites the backward kernels' WGSL; lines it cannot find leave the kernel as is.
 * A removed load stays in the code behind a condition that never holds: a binding no code reads
 * would drop out of the pipeline's layout and fail the bind group.
 */
const never = (statement: string) => `if (li > 100000u) { ${statement} }`;
const ablations: [string, (code: string) => string][] = [
  ['none', (c) => c],
  [
    'row statistics loads',
    (c) =>
      c.replace(
        /let st = rowStats\(sp, h, (ii|i)\);/g,
        (_, row) => `var st = vec2f(0.0, 0.0); ${never(`st = rowStats(sp, h, ${row});`)}`,
      ),
  ],
  [
    'elementwise exp',
    (c) =>
      c
        .replace(/prob = exp\([^;]*\);/g, 'prob = Ss[at];')
        .replace(/let prob = exp\([^;]*\);/g, 'let prob = Ss[at];'),
  ],
  ['visibility test', (c) => c.replace(/ && visible\(sp, (ii|i), j\)/g, '')],
  [
    'tile staging loads',
    (c) => c.replace(/(x\d+) = ((q|dout|k|v)\[[^\]]*\]);/g, (_, x, load) => `${never(`${x} = ${load};`)}`),
  ],
  ['score MMAs (S, dP)', (c) => c.replace(/^\s*(sf|pf)\d+ = subgroupMatrixMultiplyAccumulate\(.*$/gm, '')],
  [
    'update MMAs (dK, dV / dQ)',
    (c) => c.replace(/^\s*(kacc|vacc|gf)\d+ = subgroupMatrixMultiplyAccumulate\(.*$/gm, ''),
  ],
];

const get = gpu.pipelines.get.bind(gpu.pipelines);
let ablate: (code: string) => string = (c) => c;
gpu.pipelines.get = (code, label, entryPoint) =>
  get(label.startsWith('flash backward') ? ablate(code) : code, label, entryPoint);

const flops = ((2.5 * 2 * 2 * (n * n)) / 2) * 128 * 64;
for (const [name, rewrite] of ablations) {
  ablate = rewrite;
  const m = await measure(
    gpu,
    async () => {
      const g = await flashAttentionBackward(held.ctx, dO);
      for (const t of [g.dq, g.dk, g.dv]) t.dispose();
    },
    { warmup: 1, iters: 3 },
  );
  const kernels = Object.entries(m.kernels?.[1] ?? {})
    .map(([label, ms]) => `${label.replace(/ \[subgroup-matrix\].*/, '')} ${ms.toFixed(1)}`)
    .join('; ');
  console.log(
    `without ${name}: ${m.median.toFixed(1)} ms (${(flops / m.median / 1e9).toFixed(1)} TFLOPS) [${kernels}]`,
  );
}

// Diagnostic (not the bench): times the NSA forward's tensor-core block selection (the bench's
// reference config, b=1, hq=64, hkv=4, d=128, f16, 65536 tokens) with one piece of the selection
// kernel removed at a time (the WGSL rewritten on its way to the pipeline cache), so that one GPU
// call shows where its time goes: staging the compressed keys, the scores, the probability sums,
// the block overlaps, the top-n. The ablated selections are wrong; only the select time counts.
// `pnpm gpu:bundle` builds it into .gpu-kit/nsa-select-ablations.mjs; on the GPU machine:
//   node .gpu-kit/nsa-select-ablations.mjs

import { measure } from '../../packages/core/src/index.js';
import { disposeNsaForward, nsaForward } from '../../packages/nsa/src/index.js';
import { type Ablation, ablationsOf, never } from './ablate.js';
import { nsaProblem } from './nsa-problem.js';

const { n, gpu, c, q, k, v, g } = await nsaProblem();

const ablations: Ablation[] = [
  ['none', (s) => s],
  ['top-n', (s) => s.replace(/\/\/ Each token's slots[\s\S]*$/, `${never('selected[0] = 0;')}\n}\n`)],
  [
    'key staging loads',
    (s) => s.replace(/(ex\d+) = (cmpK\[[^;]*\]);/g, (_, x, load) => never(`${x} = ${load};`)),
  ],
  ['score MMAs', (s) => s.replace(/^\s*sf\d+ = subgroupMatrixMultiplyAccumulate\(.*$/gm, '')],
  ['probability sums', (s) => s.replace(/sum \+= exp2\(Ss\[[^;]*\);/g, '')],
  ['block overlaps', (s) => s.replace(/addOverlaps\(u \*[^;]*\);/g, '')],
];
for (const [name, time] of ablationsOf(gpu, 'nsa select', ablations, () =>
  measure(
    gpu,
    async () => {
      disposeNsaForward(await nsaForward(gpu, c, q, k, v, g, { tier: 'subgroup-matrix' }));
    },
    { warmup: 1, iters: 3 },
  ),
)) {
  const m = await time();
  const select = Object.entries(m.kernels?.[1] ?? {}).filter(([label]) => label.startsWith('nsa select'));
  console.log(
    `n=${n} without ${name}: forward ${m.median.toFixed(1)} ms, ${select.map(([l, ms]) => `${l.split(' [')[0]} ${ms.toFixed(1)} ms`).join('; ')}`,
  );
}
gpu.destroy();

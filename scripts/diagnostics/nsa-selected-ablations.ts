// Diagnostic (not the bench): times the NSA forward's tensor-core selected attention (the bench's
// reference config, b=1, hq=64, hkv=4, d=128, f16, 65536 tokens) with each key tile that fits and
// each split of the scores over parts of d (SELECTED_FORWARD_SPLIT), then, at the default shape, with one piece of the kernel removed at a time (the WGSL rewritten on
// its way to the pipeline cache): the K/V staging loads, the score multiply-accumulates, the
// softmax's exponentials, the P·V multiply-accumulates, the per-tile output update. The ablated
// outputs are wrong; only the kernel's time counts. Every ablation leaves the results live (a load
// behind a never-true condition, a value replaced by a cheap one) so the compiler drops nothing else.
// `pnpm gpu:bundle` builds it into .gpu-kit/nsa-selected-ablations.mjs; on the GPU machine:
//   node .gpu-kit/nsa-selected-ablations.mjs

import { SELECTED_FORWARD_SPLIT, SELECTED_MATRIX_TILES } from '../../packages/nsa/src/selected/selected.js';
import { type Ablation, ablationsOf, never } from './ablate.js';
import { nsaProblem } from './nsa-problem.js';

const { n, gpu, timeForward } = await nsaProblem();

const label = 'nsa selected attention';
async function timeSelected(name: string) {
  const m = await timeForward();
  const ms = Object.entries(m.kernels?.[1] ?? {}).find(([l]) => l.split(' [')[0] === label)?.[1];
  console.log(`n=${n} ${name}: forward ${m.median.toFixed(1)} ms, selected attention ${ms?.toFixed(1)} ms`);
}

const tiles = [...SELECTED_MATRIX_TILES];
const { scoreParts } = SELECTED_FORWARD_SPLIT;
for (const parts of [1, 2, 4]) {
  SELECTED_FORWARD_SPLIT.scoreParts = parts;
  for (const tile of tiles) {
    SELECTED_MATRIX_TILES.splice(0, Infinity, tile);
    await timeSelected(`tile ${tile}, scores over ${parts} part(s) of d`);
  }
}
SELECTED_MATRIX_TILES.splice(0, Infinity, ...tiles);
SELECTED_FORWARD_SPLIT.scoreParts = scoreParts;

const ablations: Ablation[] = [
  ['none', (s) => s],
  [
    'K/V staging loads',
    (s) => s.replace(/([ef]x\d+) = ([kv]\[[^;]*\]);/g, (_, x, load) => never(`${x} = ${load};`)),
  ],
  ['score MMAs', (s) => s.replace(/^\s*sf\d+ = subgroupMatrixMultiplyAccumulate\(.*$/gm, '')],
  ['exponentials', (s) => s.replace(/exp2\(x\[j\] - mNew\)/g, '(x[j] - mNew)')],
  ['P·V MMAs', (s) => s.replace(/^(\s*)of(\d+) = subgroupMatrixMultiplyAccumulate\(.*$/gm, '')],
  [
    'output update',
    (s) => s.replace(/acc\[j\] = acc\[j\] \* Alpha\[r\] \+ Fs\[[^;]*;/g, 'acc[j] += Alpha[r];'),
  ],
];
// The name goes through a variable: the loop's own binding is not yet initialised where the
// iterable's callback is created.
let ablated = '';
for (const [name, time] of ablationsOf(gpu, label, ablations, () => timeSelected(`without ${ablated}`))) {
  ablated = name;
  await time();
}
gpu.destroy();

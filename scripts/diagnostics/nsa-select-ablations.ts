// Diagnostic (not the bench): times the NSA forward's tensor-core block selection (the bench's
// reference config, b=1, hq=64, hkv=4, d=128, f16, 65536 tokens) in each shape (keys per staged
// tile, tokens per workgroup; each shape's picks are checked against the first's, which they must
// equal bit for bit: the sums keep their order), then with one piece of the selection kernel removed at a time (the WGSL rewritten on its way to the pipeline cache), so that one GPU
// call shows where its time goes: staging the compressed keys, the scores, the probability sums,
// the block overlaps, the top-n. The ablated selections are wrong; only the select time counts.
// `pnpm gpu:bundle` builds it into .gpu-kit/nsa-select-ablations.mjs; on the GPU machine:
//   node .gpu-kit/nsa-select-ablations.mjs [TOKENS] [shape TILE,TOKENS] [plain]
// `plain` turns off the top-n kept while walking (the score array in workgroup memory instead).

import { disposeNsaForward, nsaForward, readSelection } from '../../packages/nsa/src/index.js';
import {
  SELECT_MATRIX_SHAPES,
  SELECT_STREAMING_PICKS,
  SELECT_WIDE_LOADS,
} from '../../packages/nsa/src/select/select.js';
import { type Ablation, ablationsOf, never } from './ablate.js';
import { nsaProblem } from './nsa-problem.js';

const { n, gpu, c, q, k, v, g, timeForward: forward } = await nsaProblem();

/** The selection kernels' times of one measurement, by label. */
const selectTimes = (m: Awaited<ReturnType<typeof forward>>) =>
  Object.entries(m.kernels?.[1] ?? {})
    .filter(([label]) => label.startsWith('nsa select'))
    .map(([label, ms]) => `${label.split(' [')[0]} ${ms.toFixed(1)} ms`)
    .join('; ');

/** The selection with the settings in force, and how many slots differ from `first`'s. */
async function picksAgainst(first: Int32Array | undefined) {
  const result = await nsaForward(gpu, c, q, k, v, g, { tier: 'subgroup-matrix' });
  const picks = await readSelection(result.selection);
  disposeNsaForward(result);
  const differing = picks.reduce((count, block, i) => count + (block === (first ?? picks)[i] ? 0 : 1), 0);
  return { picks, differing };
}

// With `shape TILE,TOKENS`, that shape alone, timed first in its own process (later in a process
// some pipelines have run 2-3x slower), then exit.
if (process.argv.includes('plain')) SELECT_STREAMING_PICKS.enabled = false;
const keeping = () => (SELECT_STREAMING_PICKS.enabled ? 'top-n kept while walking' : 'score array');
const shapeAt = process.argv.indexOf('shape');
if (shapeAt !== -1) {
  const [tile, tokens] = (process.argv[shapeAt + 1] ?? '').split(',').map(Number);
  if (!tile || !tokens) throw new Error('nsa-select-ablations: shape TILE,TOKENS');
  SELECT_MATRIX_SHAPES.splice(0, Infinity, { tile, tokens }, { tile: 32, tokens: 1 });
  const m = await forward();
  console.log(
    `n=${n} tile ${tile}, ${tokens} tokens, ${keeping()}: forward ${m.median.toFixed(1)} ms, ${selectTimes(m)}`,
  );
  gpu.destroy();
  process.exit(0);
}

// Each shape alone (keys per staged tile, tokens per workgroup), those over 48 KiB left out by the
// planner, with the score array and with the top-n kept while walking (the same picks expected,
// bit for bit); then the pieces of the default shape's kernel.
const shapes = [...SELECT_MATRIX_SHAPES];
const { enabled: streaming } = SELECT_STREAMING_PICKS;
let firstPicks: Int32Array | undefined;
for (const [shape, kept] of [
  [{ tile: 32, tokens: 6 }, false],
  [{ tile: 32, tokens: 6 }, true],
  [{ tile: 32, tokens: 5 }, true],
  [{ tile: 32, tokens: 4 }, true],
  [{ tile: 48, tokens: 4 }, false],
] as const) {
  SELECT_MATRIX_SHAPES.splice(0, Infinity, shape, { tile: 32, tokens: 1 });
  SELECT_STREAMING_PICKS.enabled = kept;
  const { picks, differing } = await picksAgainst(firstPicks);
  firstPicks ??= picks;
  const m = await forward();
  console.log(
    `n=${n} tile ${shape.tile}, ${shape.tokens} tokens, ${keeping()}: forward ${m.median.toFixed(1)} ms, ${selectTimes(m)}; ${differing} of ${picks.length} slots differ from the first shape's`,
  );
}
SELECT_MATRIX_SHAPES.splice(0, Infinity, ...shapes);
SELECT_STREAMING_PICKS.enabled = streaming;
// The default shape with 8- and 16-byte compressed-key loads: the same picks expected.
const { enabled } = SELECT_WIDE_LOADS;
for (const wide of [false, true]) {
  SELECT_WIDE_LOADS.enabled = wide;
  const { picks, differing } = await picksAgainst(firstPicks);
  const m = await forward();
  console.log(
    `n=${n} ${wide ? 16 : 8}-byte key loads: forward ${m.median.toFixed(1)} ms, ${selectTimes(m)}; ${differing} of ${picks.length} slots differ from the first shape's`,
  );
}
SELECT_WIDE_LOADS.enabled = enabled;

const ablations: Ablation[] = [
  ['none', (s) => s],
  // The picks after the walk: the score array's kernel only (`plain`); the streaming top-n offers
  // its blocks during the walk, and without the offers the scores would go unused (and their sums
  // with them), so it has no ablation here.
  ['top-n', (s) => s.replace(/\/\/ Each token's slots[\s\S]*$/, `${never('selected[0] = 0;')}\n}\n`)],
  [
    'key staging loads',
    (s) => s.replace(/(ex\d+) = (cmpK\[[^;]*\]);/g, (_, x, load) => never(`${x} = ${load};`)),
  ],
  ['score MMAs', (s) => s.replace(/^\s*sf\d+ = subgroupMatrixMultiplyAccumulate\(.*$/gm, '')],
  ['probability sums', (s) => s.replace(/sum \+= exp2\([^;]*\);/g, '')],
  ['lse reads', (s) => s.replace(/let l4 = lse2\[[^;]*\];/g, 'let l4 = vec4<f32>(1.0);')],
  ['block overlaps', (s) => s.replace(/addOverlaps\(u \*[^;]*\);/g, '').replace(/total \+= [^;]*;/g, '')],
];
for (const [name, time] of ablationsOf(gpu, 'nsa select', ablations, forward)) {
  const m = await time();
  console.log(`n=${n} without ${name}: forward ${m.median.toFixed(1)} ms, ${selectTimes(m)}`);
}
gpu.destroy();

// Diagnostic (not the bench): times the NSA forward's tensor-core selected attention (the bench's
// reference config, b=1, hq=64, hkv=4, d=128, f16, 65536 tokens) in several shapes (key tile,
// parts of d its scores are split over, 8- or 16-byte K/V loads; SELECTED_FORWARD), each shape's
// output compared with the first's, then, at the default shape, with one piece of the kernel
// removed at a time (the WGSL rewritten on its way to the pipeline cache): the K/V staging loads,
// the score multiply-accumulates, the softmax's exponentials, the P·V multiply-accumulates, the
// per-tile output update. The ablated outputs are wrong; only the kernel's time counts. Every
// ablation leaves the results live (a load behind a never-true condition, a value replaced by a
// cheap one) so the compiler drops nothing else. With `order`, only the default shape with its
// workgroups walking the KV heads of one token first, then the tokens of one KV head first
// (SELECTED_ORDER), outputs compared. With `vectors`, the forward with the selected attention's
// and the selection's workgroup arrays of scalars, then of vectors (SELECTED_FORWARD.vectorArrays,
// SELECT_VECTOR_STAGING), then with the selection's scores head-major too (SELECT_HEAD_MAJOR),
// outputs compared. With `ahead`, the forward and then the backward with each selected block (or
// listing token) read when its turn comes, then one step ahead (SELECTED_INDEX_AHEAD), outputs
// and gradients compared.
// With `lazy`, the forward with the wide kernel and then the flash-shaped one
// (SELECTED_FORWARD.lazyTile, lazySubgroups) at 32- and 64-key tiles over one to four subgroups,
// outputs compared. With `lazy-prefetch`, the flash-shaped kernel with each tile's keys loaded in
// its tile, then during the tile before (SELECTED_FORWARD.lazyPrefetchKeys), outputs compared; with
// `lazy-ablations`, that kernel with one piece removed at a time.
// `pnpm gpu:bundle` builds it into .gpu-kit/nsa-selected-ablations.mjs; on the GPU machine:
//   node .gpu-kit/nsa-selected-ablations.mjs [order|vectors|ahead|lazy|lazy-shape T,S|lazy-prefetch|lazy-ablations] [n]

import {
  disposeNsaForward,
  disposeNsaGradients,
  nsaBackward,
  nsaForward,
} from '../../packages/nsa/src/index.js';
import { SELECT_HEAD_MAJOR, SELECT_VECTOR_STAGING } from '../../packages/nsa/src/select/select.js';
import {
  SELECTED_FORWARD,
  SELECTED_INDEX_AHEAD,
  SELECTED_MATRIX_TILES,
  SELECTED_ORDER,
} from '../../packages/nsa/src/selected/selected.js';
import { type Ablation, ablationsOf, never } from './ablate.js';
import { tensorsDifference } from './flash-problem.js';
import { nsaBackwardProblem, nsaProblem } from './nsa-problem.js';

const problem = await nsaProblem();
const { n, gpu, c, q, k, v, g, timeForward } = problem;

const label = 'nsa selected attention';
async function timeSelected(name: string) {
  const m = await timeForward();
  const kernel = (l: string) =>
    Object.entries(m.kernels?.[1] ?? {}).find(([label]) => label.split(' [')[0] === l)?.[1];
  console.log(
    `n=${n} ${name}: forward ${m.median.toFixed(1)} ms, selected attention ${kernel(label)?.toFixed(1)} ms, select ${kernel('nsa select')?.toFixed(1)} ms`,
  );
}

let reference: Float32Array[] | undefined;
/** The forward's output with the settings in force, compared with the first such output. */
async function outputComparedWithFirst() {
  const forward = await nsaForward(gpu, c, q, k, v, g, { tier: 'subgroup-matrix' });
  const o = [await forward.o.read()];
  disposeNsaForward(forward);
  reference ??= o;
  return tensorsDifference(reference, o, ['o']) ?? 'same bits';
}

/**
 * Times the forward with a switch off and on, twice over, then compares each setting's output with
 * the first; every variant is timed before any readback (a process has been seen to slow down
 * after one). `set` turns the switch and returns what it was.
 */
async function timeSwitch(names: [off: string, on: string], set: (on: boolean) => boolean) {
  const initial = set(false);
  for (const on of [false, true, false, true]) {
    set(on);
    await timeSelected(on ? names[1] : names[0]);
  }
  for (const on of [false, true]) {
    set(on);
    console.log(`${names[Number(on)]}: ${await outputComparedWithFirst()} as the first`);
  }
  set(initial);
}

if (process.argv.includes('order')) {
  await timeSwitch(['KV heads of one token first', 'tokens of one KV head first'], (on) => {
    const was = SELECTED_ORDER.kvHeadMajor;
    SELECTED_ORDER.kvHeadMajor = on;
    return was;
  });
  gpu.destroy();
  process.exit(0);
}

if (process.argv.includes('ahead')) {
  const defaultAhead = SELECTED_INDEX_AHEAD.enabled;
  const { dO, forward, timeBackward } = await nsaBackwardProblem(problem);
  const name = (ahead: boolean) => (ahead ? 'indices read a step ahead' : 'indices read in turn');
  // Every variant timed before any readback; the same loads from the same addresses, so the same
  // bits expected.
  for (const ahead of [false, true, false, true]) {
    SELECTED_INDEX_AHEAD.enabled = ahead;
    await timeSelected(name(ahead));
    const m = await timeBackward();
    const selected = Object.entries(m.kernels?.[1] ?? {})
      .filter(([label]) => label.startsWith('nsa selected attention d'))
      .map(([label, ms]) => `${label.split(' [')[0]} ${ms.toFixed(1)} ms`)
      .join('; ');
    console.log(`n=${n} ${name(ahead)}: backward ${m.median.toFixed(1)} ms [${selected}]`);
  }
  let first: Float32Array[] | undefined;
  for (const ahead of [false, true]) {
    SELECTED_INDEX_AHEAD.enabled = ahead;
    const o = await outputComparedWithFirst();
    const grads = await nsaBackward(forward, dO);
    const values = await Promise.all([grads.dq, grads.dk, grads.dv].map((t) => t.read()));
    disposeNsaGradients(grads);
    first ??= values;
    console.log(
      `${name(ahead)}: o ${o}, gradients ${tensorsDifference(first, values) ?? 'same bits'} as the first`,
    );
  }
  SELECTED_INDEX_AHEAD.enabled = defaultAhead;
  disposeNsaForward(forward);
  gpu.destroy();
  process.exit(0);
}

// With `lazy-shape TILE,SUBGROUPS`, the flash-shaped kernel in that one shape, timed first in its
// own process (later in a process some pipelines have run 2-3x slower), then exit.
const lazyShapeAt = process.argv.indexOf('lazy-shape');
if (lazyShapeAt !== -1) {
  const [tile, subgroups] = (process.argv[lazyShapeAt + 1] ?? '').split(',').map(Number);
  if (!tile || subgroups === undefined) throw new Error('nsa-selected-ablations: lazy-shape TILE,SUBGROUPS');
  const defaults = { ...SELECTED_FORWARD };
  Object.assign(SELECTED_FORWARD, { lazyTile: tile, lazySubgroups: subgroups });
  await timeSelected(`flash-shaped, ${tile}-key tiles over ${subgroups || tile / 16} subgroups`);
  // Then its output against the default shape's (after the timing, which stays first).
  await outputComparedWithFirst();
  Object.assign(SELECTED_FORWARD, defaults);
  console.log(`the default shape's output: ${await outputComparedWithFirst()} as this shape's`);
  gpu.destroy();
  process.exit(0);
}

if (process.argv.includes('lazy')) {
  // The flash-shaped kernel (accumulators in fragments, lazy max) in several shapes against the
  // wide kernel; every variant timed before any readback.
  const defaults = { ...SELECTED_FORWARD };
  // [tile, subgroups (0: one 16-key slice each)]; tile 0 is the wide kernel.
  const shapes = [
    [0, 0],
    [32, 0],
    [64, 0],
    [64, 2],
    [32, 1],
  ] as const;
  const set = ([tile, subgroups]: readonly [number, number]) =>
    Object.assign(SELECTED_FORWARD, { lazyTile: tile, lazySubgroups: subgroups });
  const name = ([tile, subgroups]: readonly [number, number]) =>
    tile
      ? `flash-shaped, ${tile}-key tiles over ${subgroups || tile / 16} subgroups`
      : 'wide workgroups, output through workgroup memory';
  for (const shape of [...shapes, ...shapes]) {
    set(shape);
    await timeSelected(name(shape));
  }
  for (const shape of shapes) {
    set(shape);
    console.log(`${name(shape)}: ${await outputComparedWithFirst()} as the first`);
  }
  Object.assign(SELECTED_FORWARD, defaults);
  gpu.destroy();
  process.exit(0);
}

if (process.argv.includes('lazy-prefetch')) {
  // The same loads from the same addresses, issued a tile earlier: the same bits expected.
  await timeSwitch(['keys loaded in their tile', 'keys loaded a tile ahead'], (on) => {
    const was = SELECTED_FORWARD.lazyPrefetchKeys;
    SELECTED_FORWARD.lazyPrefetchKeys = on;
    return was;
  });
}

if (process.argv.includes('lazy-ablations')) {
  // The flash-shaped kernel at its default shape with one piece removed at a time.
  const lazyAblations: Ablation[] = [
    ['none', (s) => s],
    [
      'K staging loads',
      (s) => s.replace(/(ex\d+) = (k\[[^;]*\]);/g, (_, x, load) => never(`${x} = ${load};`)),
    ],
    [
      'V staging loads',
      (s) => s.replace(/(evx\d+) = (v\[[^;]*\]);/g, (_, x, load) => never(`${x} = ${load};`)),
    ],
    ['score MMAs', (s) => s.replace(/^\s*sf[\d_]+ = subgroupMatrixMultiplyAccumulate\(.*$/gm, '')],
    ['exponentials', (s) => s.replace(/exp2\((x\d+) - m\)/g, '($1 - m)')],
    ['P·V MMAs', (s) => s.replace(/^\s*of[\d_]+ = subgroupMatrixMultiplyAccumulate\(.*$/gm, '')],
  ];
  let lazyAblated = '';
  for (const [name, time] of ablationsOf(gpu, label, lazyAblations, () =>
    timeSelected(`without ${lazyAblated}`),
  )) {
    lazyAblated = name;
    await time();
  }
}

if (process.argv.includes('lazy-prefetch') || process.argv.includes('lazy-ablations')) {
  gpu.destroy();
  process.exit(0);
}

if (process.argv.includes('vectors')) {
  const settings: [string, boolean, boolean][] = [
    ['arrays of scalars', false, false],
    ['arrays of vectors', true, false],
    ['arrays of vectors, head-major selection scores', true, true],
  ];
  const set = ([, vectors, headMajor]: [string, boolean, boolean]) => {
    SELECTED_FORWARD.vectorArrays = vectors;
    SELECT_VECTOR_STAGING.enabled = vectors;
    SELECT_HEAD_MAJOR.enabled = headMajor;
  };
  for (const setting of [...settings, ...settings]) {
    set(setting);
    await timeSelected(setting[0]);
  }
  for (const setting of settings) {
    set(setting);
    console.log(`${setting[0]}: ${await outputComparedWithFirst()} as the first`);
  }
  gpu.destroy();
  process.exit(0);
}

// The shapes and ablations below are the wide kernel's (the flash-shaped one has its own mode).
SELECTED_FORWARD.lazyTile = 0;
// [tile, parts of d, 16-byte loads]: a tile whose parts do not fit runs whole.
const tiles = [...SELECTED_MATRIX_TILES];
const defaults = { ...SELECTED_FORWARD };
for (const [tile, parts, wide] of [
  [64, 2, false],
  [64, 2, true],
  [64, 1, false],
  [64, 1, true],
  [32, 4, false],
  [32, 4, true],
] as const) {
  SELECTED_MATRIX_TILES.splice(0, Infinity, tile);
  Object.assign(SELECTED_FORWARD, { scoreParts: parts, wideLoads: wide });
  const compared = await outputComparedWithFirst();
  await timeSelected(
    `tile ${tile}, scores over ${parts} part(s) of d, ${wide ? 16 : 8}-byte loads (${compared} as the first)`,
  );
}
SELECTED_MATRIX_TILES.splice(0, Infinity, ...tiles);
Object.assign(SELECTED_FORWARD, defaults);

const ablations: Ablation[] = [
  ['none', (s) => s],
  [
    'K/V staging loads',
    (s) => s.replace(/([ef]x\d+) = ([kv]\[[^;]*\]);/g, (_, x, load) => never(`${x} = ${load};`)),
  ],
  ['score MMAs', (s) => s.replace(/^\s*sf\d+ = subgroupMatrixMultiplyAccumulate\(.*$/gm, '')],
  ['exponentials', (s) => s.replace(/exp2\((x\[[^\]]*\]) - mNew\)/g, '($1 - mNew)')],
  ['P·V MMAs', (s) => s.replace(/^(\s*)of(\d+) = subgroupMatrixMultiplyAccumulate\(.*$/gm, '')],
  [
    'output update',
    (s) => s.replace(/acc\[j\] = acc\[j\] \* Alpha\[r\] \+ Fs\[[^;]*;/g, 'acc[j] += Alpha[r];'),
  ],
  [
    // The products' store to Fs kept behind a uniform condition that never holds: the P·V
    // products stay live, the round trip of their result goes.
    'output round trip',
    (s) =>
      s
        .replace(
          /(subgroupMatrixStore<row_major>\(&Fs, [^;]*of\d+[^;]*\);)/g,
          'if (p.tokens > 0x7fffffffu) { $1 }',
        )
        .replace(/acc\[j\] = acc\[j\] \* Alpha\[r\] \+ Fs\[[^;]*;/g, 'acc[j] += Alpha[r];'),
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

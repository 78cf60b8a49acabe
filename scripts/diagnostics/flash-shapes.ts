// Diagnostic (not the bench): times core's tensor-core flash backward (each pass with and
// without its role-split kernel, the split kernels over 16- and 32-row tiles, then each shape) and forward at b=1, hq=64, hkv=4, d=128, causal, f16,
// n=16384 with each shape (subgroups, tile, row fragments) that fits, printing per-kernel GPU
// times, so that one GPU call tells which kernel and shape to make the default. Everything comes
// from core's sources, so the settings it edits are the ones flash reads.
// `pnpm gpu:bundle` builds it into .gpu-kit/flash-shapes.mjs; on the GPU machine:
//   node .gpu-kit/flash-shapes.mjs [roles|loads|forward [S,T,R[,G]]|prefetch|vectors|backward-vectors|backward-prefetch|dkdv-steps|dkdv JSON...|dq-groups] [d=N]
//   (d=N: the problem at head dim N, flash-problem.ts)
//   (roles: the role-split choices only; loads: the forward and backward with 8- and 16-byte loads
//   only, FLASH_WIDE_LOADS; forward: the forward's shapes only, or the one shape given (a fourth
//   number: its row groups), its outputs then compared with the default shape's; prefetch: the
//   forward with its value loads issued before or after the softmax, FLASH_PREFETCH_VALUES; vectors: the forward,
//   then the backward, with their workgroup arrays of scalars or of vectors, FLASH_VECTORS;
//   backward-vectors: the backward's part of that only; outputs and gradients compared bit for bit
//   in the last three; backward-prefetch: the backward with each role-split kernel loading its
//   tiles during the tile before or not, RoleSplitChoice.prefetchTiles, gradients compared bit for
//   bit; dkdv-steps: the dK/dV kernel over 16-key tiles with its parts splitting d-steps (the
//   default), then over 32-key tiles split by columns, gradients compared; dkdv: the dK/dV
//   kernel as it is, then with each JSON object of RoleSplitChoice fields given merged over it; dq-groups: the dQ kernel
//   with two row groups (the default), then one, gradients compared)

import {
  BACKWARD_SHAPES,
  DKDV_KERNEL,
  DQ_KERNEL,
  FLASH_PREFETCH_VALUES,
  FLASH_VECTORS,
  FLASH_WIDE_LOADS,
  FORWARD_SHAPES,
  type MatrixShapeChoice,
  type RoleSplitChoice,
} from '../../packages/core/src/flash/flash.js';
import type { Measurement } from '../../packages/core/src/index.js';
import {
  flashProblem,
  forwardFlops,
  kernelTimes,
  replaceChoice,
  tensorsDifference,
} from './flash-problem.js';

const n = 16384;
const { gpu, timeForward, timeBackward, backwardGradients, forwardOutputs } = await flashProblem(n);
// Column splits by the tile's columns (not d-steps, the dK/dV kernel's default), so that every
// choice below computes each element in the same order; one row group each.
const plain: RoleSplitChoice = {
  roles: false,
  rolesTile: 16,
  columnSplits: 1,
  splitSteps: false,
  rowGroups: 1,
};
const split = (rolesTile: number, columnSplits: number): RoleSplitChoice => ({
  roles: true,
  rolesTile,
  columnSplits,
  splitSteps: false,
  rowGroups: 1,
});

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

/** A setting to time: its name, and what it sets. */
type Setting = [name: string, apply: () => void];

/** How each pass is timed, read back for comparison, and reported. */
const passes = {
  forward: {
    time: timeForward,
    results: forwardOutputs,
    names: ['o', 'lse'],
    flops: forwardFlops(n),
    digits: 2,
    what: 'outputs',
  },
  backward: {
    time: timeBackward,
    results: backwardGradients,
    names: undefined,
    flops: 2.5 * forwardFlops(n),
    digits: 1,
    what: 'gradients',
  },
} as const;

/** Times a pass under each setting, twice over, comparing its results with the first setting's. */
async function timeSettings(pass: keyof typeof passes, settings: Setting[]) {
  const { time, results, names, flops, digits, what } = passes[pass];
  let first: Float32Array[] | undefined;
  for (const [name, apply] of [...settings, ...settings]) {
    apply();
    const m = await time();
    const values = await results();
    first ??= values;
    const same = tensorsDifference(first, values, names ? [...names] : undefined) ?? 'same bits';
    console.log(
      `${name} n=${n}: ${pass} ${m.median.toFixed(digits)} ms (${(flops / m.median / 1e9).toFixed(1)} TFLOPS) [${kernelTimes(m)}] ${what}: ${same} as the first`,
    );
  }
}

function exit(): never {
  gpu.destroy();
  process.exit(0);
}

if (process.argv[2] === 'prefetch') {
  // The same loads and stores, only issued earlier: the same bits expected.
  await timeSettings('forward', [
    ['values staged after the softmax', () => Object.assign(FLASH_PREFETCH_VALUES, { forward: false })],
    ['values loaded before the softmax', () => Object.assign(FLASH_PREFETCH_VALUES, { forward: true })],
  ]);
  exit();
}
if (process.argv[2] === 'backward-prefetch') {
  // The same loads and stores, issued a tile earlier: the same bits expected.
  const prefetch = (dkDv: boolean, dq: boolean) => () => {
    DKDV_KERNEL.prefetchTiles = dkDv;
    DQ_KERNEL.prefetchTiles = dq;
  };
  await timeSettings('backward', [
    ['tiles staged in their turn', prefetch(false, false)],
    ['dK/dV query tiles prefetched', prefetch(true, false)],
    ['dQ key tiles prefetched', prefetch(false, true)],
    ['both prefetched', prefetch(true, true)],
  ]);
  exit();
}
if (process.argv[2] === 'vectors') {
  // Staging as vectors moves the same values (same bits); vector scores add a lane's
  // probabilities in another order of keys.
  await timeSettings('forward', [
    ['scalar arrays', () => Object.assign(FLASH_VECTORS, { staging: false, scores: false })],
    ['staged as vec4<f16>', () => Object.assign(FLASH_VECTORS, { staging: true, scores: false })],
    [
      'staged, scores and probabilities as vectors',
      () => Object.assign(FLASH_VECTORS, { staging: true, scores: true }),
    ],
  ]);
}
if (process.argv[2] === 'dkdv-steps') {
  // The dK/dV kernel over 16-key tiles with its two parts splitting d-steps (RolesConfig.splitSteps,
  // 22.1 KiB at d = 128; the default), timed first in this process, then the kernel it replaced
  // (32-key tiles, two column parts, 31.3 KiB). The parts' partial scores are added in another
  // grouping: close, not the same bits.
  const defaults = { ...DKDV_KERNEL };
  await timeSettings('backward', [
    ['dK/dV 16-key tiles, parts by d-steps (the default)', () => Object.assign(DKDV_KERNEL, defaults)],
    [
      'dK/dV 32-key tiles, parts by columns',
      () => Object.assign(DKDV_KERNEL, { rolesTile: 32, columnSplits: 2, splitSteps: false }),
    ],
  ]);
  exit();
}
if (process.argv[2] === 'dkdv') {
  // The dK/dV kernel as it is (DKDV_KERNEL), timed first in this process, then with each JSON
  // object given merged over it: e.g. '{"columnSplits":1,"splitSteps":false,"rowGroups":2}' (two
  // row groups of one part).
  const defaults = { ...DKDV_KERNEL };
  const others = process.argv.slice(3).filter((a) => a.startsWith('{'));
  // Each setting replaces the whole choice, so that no field one adds outlives it.
  const choose = (json: string) => () => replaceChoice(DKDV_KERNEL, { ...defaults, ...JSON.parse(json) });
  await timeSettings('backward', [
    ['dK/dV as it is', choose('{}')],
    ...others.map((json): Setting => [`dK/dV ${json}`, choose(json)]),
  ]);
  exit();
}
if (process.argv[2] === 'dq-groups') {
  // The dQ kernel with two row groups sharing each key tile (RolesConfig.rowGroups, 21.5 KiB at
  // d = 128: two workgroups of eight subgroups per SM; the default), timed first in this process,
  // then with one (15.0 KiB: three of four). Rows past a group's causal range add masked zeros:
  // the same bits.
  const defaults = { ...DQ_KERNEL };
  await timeSettings('backward', [
    ['dQ two row groups (the default)', () => Object.assign(DQ_KERNEL, defaults)],
    ['dQ one row group', () => Object.assign(DQ_KERNEL, { rowGroups: 1 })],
  ]);
  exit();
}
if (process.argv[2] === 'vectors' || process.argv[2] === 'backward-vectors') {
  // The backward's elementwise step sums nothing: each P and dS is the same arithmetic on the same
  // values whether a lane reads one column or four, so the same bits are expected throughout.
  await timeSettings('backward', [
    [
      'backward scalar arrays',
      () => Object.assign(FLASH_VECTORS, { backwardStaging: false, backwardScores: false }),
    ],
    [
      'backward staged as vec4<f16>',
      () => Object.assign(FLASH_VECTORS, { backwardStaging: true, backwardScores: false }),
    ],
    [
      'backward staged, S, dP, P and dS as vectors',
      () => Object.assign(FLASH_VECTORS, { backwardStaging: true, backwardScores: true }),
    ],
  ]);
  exit();
}

if (process.argv[2] === 'loads') {
  // The same kernels reading q, k, v and dO 8 and 16 bytes per load: the same bits expected.
  const defaults = { ...FLASH_WIDE_LOADS };
  let first: Float32Array[] | undefined;
  for (const wide of [false, true]) {
    Object.assign(FLASH_WIDE_LOADS, { forward: wide, backward: wide });
    const forward = await timeForward();
    const backward = await timeBackward();
    const gradients = await backwardGradients();
    first ??= gradients;
    const same = tensorsDifference(first, gradients) ?? 'same bits';
    const tflops = (flops: number, m: Measurement) => (flops / m.median / 1e9).toFixed(1);
    console.log(
      `${wide ? 16 : 8}-byte loads n=${n}: forward ${forward.median.toFixed(2)} ms (${tflops(forwardFlops(n), forward)} TFLOPS), backward ${backward.median.toFixed(1)} ms (${tflops(2.5 * forwardFlops(n), backward)} TFLOPS) [${kernelTimes(backward)}] gradients: ${same} as the first`,
    );
  }
  Object.assign(FLASH_WIDE_LOADS, defaults);
  gpu.destroy();
  process.exit(0);
}

const forwardCandidates: MatrixShapeChoice[] = [
  [2, 32, 2],
  [4, 32, 2],
  [2, 64, 2],
  [4, 64, 2],
  [2, 32, 1],
  [4, 64, 1],
];
if (process.argv[2] === 'forward') {
  // With a shape after it (`forward 4,64,2`) that shape alone, first in its own process: later in
  // a process some pipelines have run 2-3x slower (2026-11-30, twelfth session).
  // A fourth number asks for row groups (`forward 2,32,2,2`). The one shape's outputs are then
  // compared with the default shape's, after its timing.
  const only = process.argv[3]?.split(',').map(Number) as MatrixShapeChoice | undefined;
  await tryShapes('forward', FORWARD_SHAPES, only ? [only] : forwardCandidates, timeForward, forwardFlops(n));
  if (only) {
    const original = [...FORWARD_SHAPES];
    FORWARD_SHAPES.splice(0, FORWARD_SHAPES.length, only);
    const shaped = await forwardOutputs();
    FORWARD_SHAPES.splice(0, FORWARD_SHAPES.length, ...original);
    const same = tensorsDifference(shaped, await forwardOutputs(), ['o', 'lse']) ?? 'same bits';
    console.log(`forward shape [${only.join(', ')}] outputs against the default shape's: ${same}`);
  }
  gpu.destroy();
  process.exit(0);
}

// The backward passes with their role-split kernels and without, over several tiles and column
// splits; each choice's gradients are compared with the plain kernels' (each element is the same
// multiply-accumulates in the same order, whichever subgroup computes it: expected bit for bit).
const choices: [string, RoleSplitChoice, RoleSplitChoice][] = [
  ['plain dK/dV, plain dQ', plain, plain],
  ['split dK/dV 32x1, split dQ 16x1', split(32, 1), split(16, 1)],
  ['split dK/dV 32x2, split dQ 16x1', split(32, 2), split(16, 1)],
  ['split dK/dV 32x1, split dQ 32x2', split(32, 1), split(32, 2)],
  ['split dK/dV 32x2, split dQ 32x2', split(32, 2), split(32, 2)],
];
const defaults = [{ ...DKDV_KERNEL }, { ...DQ_KERNEL }] as const;
let reference: Float32Array[] | undefined;
for (const [name, dkDv, dq] of choices) {
  Object.assign(DKDV_KERNEL, dkDv);
  Object.assign(DQ_KERNEL, dq);
  const m = await timeBackward();
  const gradients = await backwardGradients();
  reference ??= gradients;
  const same = tensorsDifference(reference, gradients);
  const tflops = ((2.5 * forwardFlops(n)) / m.median / 1e9).toFixed(1);
  console.log(
    `backward, ${name}: ${m.median.toFixed(1)} ms (${tflops} TFLOPS) [${kernelTimes(m)}] ${same ? `differs from plain: ${same}` : 'same bits as plain'}`,
  );
}
Object.assign(DKDV_KERNEL, defaults[0]);
Object.assign(DQ_KERNEL, defaults[1]);
if (process.argv[2] === 'roles') {
  gpu.destroy();
  process.exit(0);
}

// [2, 32, 1] and [4, 16, 1] do not fit 48 KiB at d = 128 (the row kernels run: 4.2 s, 2026-11-30).
const backwardCandidates: MatrixShapeChoice[] = [
  [2, 16, 1],
  [1, 32, 1],
  [1, 16, 1],
];
await tryShapes('backward', BACKWARD_SHAPES, backwardCandidates, timeBackward, 2.5 * forwardFlops(n));
await tryShapes('forward', FORWARD_SHAPES, forwardCandidates, timeForward, forwardFlops(n));
gpu.destroy();

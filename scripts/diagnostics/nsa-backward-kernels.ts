// Diagnostic (not the bench): the NSA backward's time per kernel (the bench's reference config,
// b=1, hq=64, hkv=4, d=128, f16, 65536 tokens, tensor-core tier), where the bench's stage table
// only gives branches: which of the selected branch's dQ, dK, dV and chunk sums, and of the
// compressed branch's flash backward and compression backward, takes the time. Kernels that run
// more than once (the flash backward of two branches) are summed under their label. Timed with
// the selected branch's role-split dQ and fused dK/dV kernels reading q, k, v and dO 8 bytes per
// load, then 16, then as the defaults say (SELECTED_ROLE_SPLIT.wideLoads), or with `order`, with the dQ kernel's
// workgroups walking the KV heads of one token first, then the tokens of one KV head first
// (SELECTED_ORDER). With `tiles 32,16`, once, with the selected kernels' key tiles limited to
// those (SELECTED_MATRIX_TILES; first in its own process: the tile sets the kernels' workgroup
// memory, and with it a step of the H200's occupancy: core's workgroup-memory-steps.ts).
// With `dkdv-tiles 16:2,32:1`, with the selected kernels' key tile and the fused dK/dV kernel's column
// splits (SELECTED_ROLE_SPLIT.dkdvColumnSplits) set to each pair in turn, all timed first, then the
// gradients compared. With `dkdv JSON`, with core's dK/dV kernel as it is (DKDV_KERNEL), then with the JSON object's
// RoleSplitChoice fields merged over it: e.g. '{"columnSplits":1,"splitSteps":false,"rowGroups":2}'.
// With `prefetch`, with the selected dQ kernel's key tiles loaded in their turn, then a tile ahead
// (SELECTED_ROLE_SPLIT.prefetchDqTiles), timed first, then the gradients compared.
// `pnpm gpu:bundle` builds it into .gpu-kit/nsa-backward-kernels.mjs; on the GPU machine:
//   node .gpu-kit/nsa-backward-kernels.mjs [order | tiles T,T | dkdv-tiles T:C,T:C | dkdv JSON | prefetch] [n]

import { DKDV_KERNEL, type RoleSplitChoice } from '../../packages/core/src/flash/flash.js';
import { disposeNsaForward, disposeNsaGradients, nsaBackward } from '../../packages/nsa/src/index.js';
import {
  SELECTED_MATRIX_TILES,
  SELECTED_ORDER,
  SELECTED_ROLE_SPLIT,
} from '../../packages/nsa/src/selected/selected.js';
import { replaceChoice, tensorsDifference } from './flash-problem.js';
import { nsaBackwardProblem, nsaProblem } from './nsa-problem.js';

const problem = await nsaProblem();
const { n, gpu } = problem;
const { dO, forward, timeBackward } = await nsaBackwardProblem(problem);
// Each setting's dq, dk and dv against the first's: neither the loads' width nor the order of the
// workgroups moves a value, so they should equal bit for bit.
const byOrder = process.argv.includes('order');
const dkDvAt = process.argv.indexOf('dkdv');
const dkDvDefault = { ...DKDV_KERNEL };
const dkDvJson = dkDvAt === -1 ? '{}' : (process.argv[dkDvAt + 1] ?? '{}');
const dkDvOther: RoleSplitChoice = { ...dkDvDefault, ...JSON.parse(dkDvJson) };
const tilesAt = process.argv.indexOf('tiles');
const dkDvTilesAt = process.argv.indexOf('dkdv-tiles');
const prefetchAt = process.argv.indexOf('prefetch');

/**
 * Times the selected kernels under each setting (`use` applies it and names it), all before any
 * gradient is read back (a readback has slowed later kernels of a process on this machine:
 * docs/perf-notes.md), then compares each setting's gradients against the first's; exits.
 */
async function timeSelectedSettings<T>(settings: T[], use: (setting: T) => string, restore: () => void) {
  for (const setting of settings) {
    const name = use(setting);
    const m = await timeBackward();
    const kernels = Object.entries(m.kernels?.[1] ?? {}).filter(([label]) =>
      label.startsWith('nsa selected'),
    );
    console.log(
      `n=${n} backward ${m.median.toFixed(1)} ms, ${name}: ${kernels.map(([l, ms]) => `${l} ${ms.toFixed(2)}`).join('; ')}`,
    );
  }
  let first: Float32Array[] | undefined;
  for (const setting of settings) {
    const name = use(setting);
    const grads = await nsaBackward(forward, dO);
    const values = await Promise.all([grads.dq, grads.dk, grads.dv].map((t) => t.read()));
    disposeNsaGradients(grads);
    first ??= values;
    console.log(`${name}: ${tensorsDifference(first, values) ?? 'same bits'} as the first`);
  }
  restore();
  disposeNsaForward(forward);
  gpu.destroy();
  process.exit(0);
}

if (dkDvTilesAt !== -1) {
  const tiles = [...SELECTED_MATRIX_TILES];
  const columnSplits = SELECTED_ROLE_SPLIT.dkdvColumnSplits;
  const shapes = (process.argv[dkDvTilesAt + 1] ?? '16:2').split(',').map((s) => s.split(':').map(Number));
  await timeSelectedSettings(
    shapes,
    ([tile, splits]) => {
      SELECTED_MATRIX_TILES.splice(0, Infinity, tile ?? 16);
      SELECTED_ROLE_SPLIT.dkdvColumnSplits = splits ?? columnSplits;
      return `selected key tiles of ${tile}, dK/dV over ${splits} column splits`;
    },
    () => {
      SELECTED_MATRIX_TILES.splice(0, Infinity, ...tiles);
      SELECTED_ROLE_SPLIT.dkdvColumnSplits = columnSplits;
    },
  );
}
if (prefetchAt !== -1) {
  const prefetch = SELECTED_ROLE_SPLIT.prefetchDqTiles;
  await timeSelectedSettings(
    [false, true],
    (setting) => {
      SELECTED_ROLE_SPLIT.prefetchDqTiles = setting;
      return `selected dQ key tiles loaded ${setting ? 'a tile ahead' : 'in turn'}`;
    },
    () => {
      SELECTED_ROLE_SPLIT.prefetchDqTiles = prefetch;
    },
  );
}
if (tilesAt !== -1) {
  const tiles = (process.argv[tilesAt + 1] ?? '').split(',').map(Number);
  SELECTED_MATRIX_TILES.splice(0, Infinity, ...tiles);
}
type Wide = typeof SELECTED_ROLE_SPLIT.wideLoads;
const defaults = { wide: { ...SELECTED_ROLE_SPLIT.wideLoads }, kvHeadMajor: SELECTED_ORDER.kvHeadMajor };
const settings: { wide: Wide; kvHeadMajor: boolean; dkDv?: RoleSplitChoice }[] =
  dkDvAt !== -1
    ? [dkDvDefault, dkDvOther].map((dkDv) => ({
        wide: defaults.wide,
        kvHeadMajor: SELECTED_ORDER.kvHeadMajor,
        dkDv,
      }))
    : byOrder
      ? [false, true].map((kvHeadMajor) => ({ wide: defaults.wide, kvHeadMajor }))
      : tilesAt !== -1
        ? [{ wide: defaults.wide, kvHeadMajor: SELECTED_ORDER.kvHeadMajor }]
        : [{ dq: false, dkdv: false }, { dq: true, dkdv: true }, defaults.wide].map((wide) => ({
            wide,
            kvHeadMajor: SELECTED_ORDER.kvHeadMajor,
          }));
let reference: Float32Array[] | undefined;
const bytes = (wide: boolean) => (wide ? 16 : 8);
for (const { wide, kvHeadMajor, dkDv = dkDvDefault } of settings) {
  SELECTED_ROLE_SPLIT.wideLoads = { ...wide };
  SELECTED_ORDER.kvHeadMajor = kvHeadMajor;
  replaceChoice(DKDV_KERNEL, dkDv);
  const grads = await nsaBackward(forward, dO);
  const values = await Promise.all([grads.dq, grads.dk, grads.dv].map((t) => t.read()));
  disposeNsaGradients(grads);
  reference ??= values;
  const compared = tensorsDifference(reference, values) ?? 'same bits';
  const m = await timeBackward();
  const setting =
    dkDvAt !== -1
      ? `core's dK/dV ${dkDv === dkDvDefault ? 'as it is' : dkDvJson}`
      : byOrder
        ? `selected dQ walking ${kvHeadMajor ? 'the tokens of one KV head' : 'the KV heads of one token'} first`
        : tilesAt !== -1
          ? `selected kernels' key tiles ${SELECTED_MATRIX_TILES.join(', ')}`
          : `selected dQ with ${bytes(wide.dq)}-byte loads, dK/dV with ${bytes(wide.dkdv)}-byte loads`;
  console.log(
    `n=${n} backward ${m.median.toFixed(1)} ms, ${setting} (${compared} as the first), by kernel (one timed iteration):`,
  );
  const kernels = Object.entries(m.kernels?.[1] ?? {}).sort(([, a], [, b]) => b - a);
  for (const [label, ms] of kernels) console.log(`  ${ms.toFixed(2).padStart(8)} ms  ${label}`);
}
SELECTED_ROLE_SPLIT.wideLoads = { ...defaults.wide };
SELECTED_ORDER.kvHeadMajor = defaults.kvHeadMajor;
replaceChoice(DKDV_KERNEL, dkDvDefault);
disposeNsaForward(forward);
gpu.destroy();

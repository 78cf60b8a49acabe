// Diagnostic (not the bench): times the tensor-core MLA decode (MiniCPM3 dims, paged cache, f16,
// batch 32 x 4096 cached tokens, the planner's splits), with its queries read in every tile and
// held in registers (MLA_HOLD_QUERY; the outputs compared bit for bit: the same products in the
// same order), with each subgroup count the planner may
// take, with 8- and 16-byte cache loads (MLA_WIDE_LOADS), and with one piece of its attention
// kernel removed at a time (the WGSL rewritten on its way
// to the pipeline cache), so that one GPU call shows where its time goes. The ablated results are
// wrong by construction; only times count. With `vectors`, only the planned kernel staging into
// an f16 array, then into a vec4<f16> one (MLA_VECTOR_STAGING), outputs compared bit for bit.
// `pnpm gpu:bundle` builds it into .gpu-kit/mla-ablations.mjs; on the GPU machine:
//   node .gpu-kit/mla-ablations.mjs [vectors]

import { createGpu } from '../../packages/core/src/index.js';
import { MLA_HOLD_QUERY, MLA_VECTOR_STAGING, MLA_WIDE_LOADS } from '../../packages/mla/src/attention/plan.js';
import { MLA_MATRIX_SUBGROUPS } from '../../packages/mla/src/index.js';
import { type Ablation, ablationsOf, never } from './ablate.js';
import { kernelMicroseconds, mlaDecodeProblem } from './mla-problem.js';

/** Loads per cached token, MiniCPM3's latent (256) and rope key (32): four or eight f16 each. */
const keyVectors = () => (256 + 32) / (MLA_WIDE_LOADS.enabled ? 8 : 4);
const gpu = await createGpu({ fast: true, maxPooledBytes: 16 * 2 ** 30 });
const problem = await mlaDecodeProblem(gpu, 32, 4096);

if (process.argv.includes('vectors')) {
  // Every variant timed before any readback (see below).
  for (const vectors of [false, true, false, true]) {
    MLA_VECTOR_STAGING.enabled = vectors;
    const m = await problem.time();
    console.log(
      `staged as ${vectors ? 'vec4<f16>' : 'f16'}: ${(m.median * 1000).toFixed(0)} us [${kernelMicroseconds(m)}]`,
    );
  }
  let first: Float32Array | undefined;
  for (const vectors of [false, true]) {
    MLA_VECTOR_STAGING.enabled = vectors;
    const output = await problem.output();
    first ??= output;
    const differing = output.reduce((count, x, i) => count + (Object.is(x, first?.[i]) ? 0 : 1), 0);
    console.log(
      `staged as ${vectors ? 'vec4<f16>' : 'f16'}: ${differing} of ${output.length} outputs differ from the first`,
    );
  }
  gpu.destroy();
  process.exit(0);
}

const ablations: Ablation[] = [
  ['none', (c) => c],
  [
    'key staging loads',
    (c) => c.replace(/(v\d+) = (loadKey4\([^;]*\));/g, (_, x, load) => never(`${x} = ${load};`)),
  ],
  // The paged cache's key loads each wait on a page-table read first: with the table read behind
  // a never-true condition (pages in order, clamped to the cache) the table's latency shows apart
  // (measured: 472 -> 468 us, four subgroups; the key loads themselves are the wait).
  [
    'page-table reads',
    (c) =>
      c.replace(
        /let page = (table\[[^;]*\]);/,
        (_, read) =>
          `var page = min(b * p.maxPages + j / p.slots, arrayLength(&cache) / (p.slots * ${keyVectors()}u) - 1u);\n  if (p.batch == 0xffffffffu) { page = ${read}; }`,
      ),
  ],
  // The score products in either form: queries read per tile (qf, kfr) or held (qf0 .. qf17).
  ['score MMAs', (c) => c.replace(/s = subgroupMatrixMultiplyAccumulate\(qf\w*, [^;]*, s\);/g, '')],
  [
    'softmax statistics',
    (c) => c.replace(/\/\/ Softmax statistics[\s\S]*?\n {4}\}\n(?= {4}\/\/ A full barrier)/, ''),
  ],
  ['update MMAs', (c) => c.replace(/^\s*acc\d+_\d+ = subgroupMatrixMultiplyAccumulate\(.*$/gm, '')],
];
/** The decode's time with `subgroups` per workgroup and the planner's (or a forced) split count. */
function timeDecode(subgroups: number, splits?: number) {
  MLA_MATRIX_SUBGROUPS.splice(0, MLA_MATRIX_SUBGROUPS.length, subgroups);
  return problem.time(splits);
}

const planned = [...MLA_MATRIX_SUBGROUPS];
// The planned kernel with its queries read from storage in every tile, then held in registers.
// (Issuing the next key tile's loads before computing the current one, with the queries held, was
// measured too: 136 -> 134 us, not kept.)
const hold = MLA_HOLD_QUERY.enabled;
// Every variant is timed before any output is read back: after a readback, this machine has run
// every later kernel of the process about three times slower (docs/perf-notes.md).
const variants = [false, true, false, true];
const setVariant = (held: boolean) => {
  MLA_HOLD_QUERY.enabled = held;
  return `queries ${held ? 'held' : 'read per tile'}`;
};
for (const variant of variants) {
  const name = setVariant(variant);
  const m = await problem.time();
  console.log(`${name}: ${(m.median * 1000).toFixed(0)} us [${kernelMicroseconds(m)}]`);
}
let firstOutput: Float32Array | undefined;
for (const variant of variants.slice(0, 2)) {
  const name = setVariant(variant);
  const output = await problem.output();
  firstOutput ??= output;
  const differing = output.reduce((count, x, i) => count + (Object.is(x, firstOutput?.[i]) ? 0 : 1), 0);
  console.log(`${name}: ${differing} of ${output.length} outputs differ from the first`);
}
MLA_HOLD_QUERY.enabled = hold;
// The planned kernel with 8- and 16-byte cache loads.
const { enabled } = MLA_WIDE_LOADS;
for (const wide of [false, true]) {
  MLA_WIDE_LOADS.enabled = wide;
  const m = await problem.time();
  console.log(`${wide ? 16 : 8}-byte loads: ${(m.median * 1000).toFixed(0)} us [${kernelMicroseconds(m)}]`);
}
MLA_WIDE_LOADS.enabled = enabled;
for (const subgroups of [4, 8, 16]) {
  for (const [name, time] of ablationsOf(gpu, 'mla attention matrix', ablations, () =>
    timeDecode(subgroups),
  )) {
    const m = await time();
    console.log(
      `${subgroups} subgroups, without ${name}: ${(m.median * 1000).toFixed(0)} us [${kernelMicroseconds(m)}]`,
    );
  }
}
for (const subgroups of [8, 16]) {
  for (const splits of [4, 6, 12, 16]) {
    const m = await timeDecode(subgroups, splits);
    console.log(
      `${subgroups} subgroups, ${splits} splits: ${(m.median * 1000).toFixed(0)} us [${kernelMicroseconds(m)}]`,
    );
  }
}
MLA_MATRIX_SUBGROUPS.splice(0, MLA_MATRIX_SUBGROUPS.length, ...planned);
gpu.destroy();

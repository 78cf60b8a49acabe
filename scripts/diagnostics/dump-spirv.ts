// Diagnostic (not the bench): Dawn's SPIR-V of every tensor-core kernel of the bench's problems
// (bench-kernels.ts), for scripts/diagnostics/pipeline-stats.py, which asks the Vulkan driver
// about each (registers, workgroup memory). The device is the bench's (fast: no robustness, every feature and
// limit createGpu asks for) on an instance that also has Dawn's `dump_shaders` toggle, which prints
// each module's WGSL and SPIR-V disassembly to stdout. Writes `kernels.json` (label and WGSL of
// every pipeline, in order) to the folder given; stdout goes to `raw.txt` beside it. With
// `mla-variants`, also the MLA decode with its queries read in every tile (MLA_HOLD_QUERY off) over
// 32- and 16-key tiles, labelled so.
// `pnpm gpu:bundle` builds it into .gpu-kit/dump-spirv.mjs; on the GPU machine:
//   node .gpu-kit/dump-spirv.mjs DIR [mla-variants] > DIR/raw.txt
//   python3 scripts/diagnostics/pipeline-stats.py DIR

import { writeFileSync } from 'node:fs';
import { createGpu, requestWebattnDevice } from '../../packages/core/src/index.js';
import { dawnInstanceFlags } from '../../packages/core/src/node-instance.js';
import { MLA_HOLD_QUERY, MLA_MATRIX_KEY_TILES } from '../../packages/mla/src/attention/plan.js';
import { runBenchKernels } from './bench-kernels.js';
import { mlaDecodeProblem } from './mla-problem.js';

const folder = process.argv[2];
if (!folder) throw new Error('usage: dump-spirv DIR > DIR/raw.txt');
// A computed specifier, as core's node-instance.ts has it.
const specifier = 'webgpu';
const dawn = (await import(/* @vite-ignore */ specifier)) as {
  create(flags: string[]): GPU;
  globals: Record<string, unknown>;
};
Object.assign(globalThis, dawn.globals);
const instance = dawn.create(dawnInstanceFlags('default', true, ['dump_shaders', 'disable_symbol_renaming']));
const adapter = await instance.requestAdapter();
if (!adapter) throw new Error('dump-spirv: no adapter');
const device = await requestWebattnDevice(adapter);
const gpu = await createGpu({ device, adapterInfo: adapter.info });

const kernels: { label: string; code: string }[] = [];
// What a variant run adds to its kernels' labels.
let variant = '';
const get = gpu.pipelines.get.bind(gpu.pipelines);
gpu.pipelines.get = (code, label, entryPoint) => {
  if (!kernels.some((k) => k.code === code)) kernels.push({ label: `${label}${variant}`, code });
  return get(code, label, entryPoint);
};

await runBenchKernels(gpu);
if (process.argv.includes('mla-variants')) {
  MLA_HOLD_QUERY.enabled = false;
  for (const tile of [32, 16]) {
    MLA_MATRIX_KEY_TILES.splice(0, Infinity, tile);
    variant = ` (queries read per tile, ${tile}-key tiles)`;
    await (await mlaDecodeProblem(gpu, 32, 4096)).time();
  }
}
await gpu.device.queue.onSubmittedWorkDone();
writeFileSync(`${folder}/kernels.json`, JSON.stringify(kernels));
console.error(`dump-spirv: ${kernels.length} kernels`);
process.exit(0);

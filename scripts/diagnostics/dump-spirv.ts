// Diagnostic (not the bench): Dawn's SPIR-V of every tensor-core kernel of the bench's problems,
// for scripts/diagnostics/pipeline-stats.py, which asks the Vulkan driver about each (registers,
// workgroup memory). The problems are kernel-memory's: core's flash forward and backward and the
// NSA forward and backward (b=1, hq=64, hkv=4, d=128, 4096 tokens), the MLA decode (batch 32 x
// 4096) and prefill (1024 tokens). The device is the bench's (fast: no robustness, every feature and
// limit createGpu asks for) on an instance that also has Dawn's `dump_shaders` toggle, which prints
// each module's WGSL and SPIR-V disassembly to stdout. Writes `kernels.json` (label and WGSL of
// every pipeline, in order) to the folder given; stdout goes to `raw.txt` beside it. With
// `mla-variants`, also the MLA decode with its queries read in every tile (MLA_HOLD_QUERY off) over
// 32- and 16-key tiles, labelled so.
// `pnpm gpu:bundle` builds it into .gpu-kit/dump-spirv.mjs; on the GPU machine:
//   node .gpu-kit/dump-spirv.mjs DIR [mla-variants] > DIR/raw.txt
//   python3 scripts/diagnostics/pipeline-stats.py DIR

import { writeFileSync } from 'node:fs';
import { WANTED_FEATURES, WANTED_LIMITS } from '../../packages/core/src/capabilities.js';
import {
  createGpu,
  flashAttention,
  flashAttentionBackward,
  randomNormal,
} from '../../packages/core/src/index.js';
import { MLA_HOLD_QUERY, MLA_MATRIX_KEY_TILES } from '../../packages/mla/src/attention/plan.js';
import { nsaBackward, nsaForward, resolveNsaConfig } from '../../packages/nsa/src/index.js';
import { mlaDecodeProblem, mlaPrefillProblem } from './mla-problem.js';

const folder = process.argv[2];
if (!folder) throw new Error('usage: dump-spirv DIR > DIR/raw.txt');
// A computed specifier, as core's node-instance.ts has it.
const specifier = 'webgpu';
const dawn = (await import(/* @vite-ignore */ specifier)) as {
  create(flags: string[]): GPU;
  globals: Record<string, unknown>;
};
Object.assign(globalThis, dawn.globals);
const toggles = [
  'allow_unsafe_apis',
  'vulkan_enable_f16_on_nvidia',
  'disable_robustness',
  'disable_workgroup_init',
  'skip_validation',
  'dump_shaders',
  'disable_symbol_renaming',
];
const instance = dawn.create([
  `enable-dawn-features=${toggles.join(',')}`,
  'disable-dawn-features=timestamp_quantization',
]);
const adapter = await instance.requestAdapter();
if (!adapter) throw new Error('dump-spirv: no adapter');
const requiredFeatures = WANTED_FEATURES.filter((f) => adapter.features.has(f)) as GPUFeatureName[];
const requiredLimits: Record<string, number> = {};
for (const name of WANTED_LIMITS) {
  const value = (adapter.limits as unknown as Record<string, number | undefined>)[name];
  if (value !== undefined) requiredLimits[name] = value;
}
const device = await adapter.requestDevice({ requiredFeatures, requiredLimits, label: 'webattn' });
const gpu = await createGpu({ device, adapterInfo: adapter.info });

const kernels: { label: string; code: string }[] = [];
// What a variant run adds to its kernels' labels.
let variant = '';
const get = gpu.pipelines.get.bind(gpu.pipelines);
gpu.pipelines.get = (code, label, entryPoint) => {
  if (!kernels.some((k) => k.code === code)) kernels.push({ label: `${label}${variant}`, code });
  return get(code, label, entryPoint);
};

const n = 4096;
const f16 = (shape: number[], seed: number) => randomNormal(gpu, shape, seed, { dtype: 'f16' });
const q = await f16([1, n, 64, 128], 1);
const k = await f16([1, n, 4, 128], 2);
const v = await f16([1, n, 4, 128], 3);
const dO = await f16([1, n, 64, 128], 4);
const g = await f16([1, n, 64, 3], 5);
const tier = 'subgroup-matrix' as const;
const flash = await flashAttention(gpu, q, k, v, { causal: true, tier });
await flashAttentionBackward(flash.ctx, dO);
const config = resolveNsaConfig({ heads: 64, kvHeads: 4, headDim: 128 });
await nsaBackward(await nsaForward(gpu, config, q, k, v, g, { tier }), dO);
await (await mlaDecodeProblem(gpu, 32, 4096)).time();
await (await mlaPrefillProblem(gpu, 1024)).run();
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

// Diagnostic (not the bench): the workgroup memory each tensor-core kernel of the bench's problems
// declares, as the pipeline cache receives it: core's flash forward and backward and the NSA
// forward and backward (b=1, hq=64, hkv=4, d=128, 4096 tokens), the MLA decode (batch 32 x 4096)
// and prefill (1024 tokens), with the workgroups an SM holds with 48 KiB of workgroup memory. On the
// H200 the declared size alone sets a kernel's speed in steps: core's forward (15.9 KiB) ran 1.3x
// slower with 4-8 KiB more declared and 2.4x slower with 16-32 KiB more (flash-ablations shared,
// 2026-12-01), so every kernel's size is worth knowing.
// `pnpm gpu:bundle` builds it into .gpu-kit/kernel-memory.mjs; on the GPU machine:
//   node .gpu-kit/kernel-memory.mjs

import { createGpu, workgroupsPerSm } from '../../packages/core/src/index.js';
import { declaredWorkgroupBytes } from '../../packages/core/src/testing.js';
import { runBenchKernels } from './bench-kernels.js';

const gpu = await createGpu({ fast: true });
const declared = new Map<string, number>();
const get = gpu.pipelines.get.bind(gpu.pipelines);
gpu.pipelines.get = (code, name, entryPoint) => {
  if (!declared.has(name)) declared.set(name, declaredWorkgroupBytes(code));
  return get(code, name, entryPoint);
};

await runBenchKernels(gpu);

// Workgroups per SM as the H200's 48 KiB of workgroup memory per SM allows (core's
// workgroupsPerSm); registers may allow fewer.
const perSm = (bytes: number) => (bytes === 0 ? '-' : String(workgroupsPerSm(bytes)));
for (const [name, bytes] of declared) {
  console.log(
    `${String(bytes).padStart(6)} B ${(bytes / 1024).toFixed(1).padStart(5)} KiB ${perSm(bytes).padStart(3)} per SM  ${name}`,
  );
}
gpu.destroy();

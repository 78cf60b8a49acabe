/**
 * Devices for tests, shared by every package's test suite. `testGpu()` is real WebGPU: on a machine
 * without a GPU it is SwiftShader's Vulkan CPU driver (from Debian's chromium package), found and
 * selected automatically. There is no silent skip: without an adapter it throws.
 */
import { existsSync } from 'node:fs';
import type { Capabilities } from './capabilities.js';
import { createGpu, type Gpu } from './gpu.js';
import { SWIFTSHADER_ICD } from './node-instance.js';
import { workgroupVariables } from './workgroup-alignment.js';

export { SWIFTSHADER_ICD };

/**
 * A real WebGPU device for tests. Uses SwiftShader unless `WEBATTN_TEST_ADAPTER=system` asks for the
 * machine's own GPU.
 */
export async function testGpu(): Promise<Gpu> {
  if (process.env.WEBATTN_TEST_ADAPTER !== 'system' && !process.env.VK_ICD_FILENAMES) {
    if (!existsSync(SWIFTSHADER_ICD)) {
      throw new Error(
        `no WebGPU adapter for tests: install SwiftShader (apt-get install -y chromium libvulkan1, which provides ${SWIFTSHADER_ICD}) or set WEBATTN_TEST_ADAPTER=system on a machine with a GPU`,
      );
    }
    process.env.VK_ICD_FILENAMES = SWIFTSHADER_ICD;
  }
  return createGpu();
}

/**
 * dawn.node's null backend: every feature, the WGSL compiler and all validation, no execution. For
 * compiling every kernel variant (tensor-core ones included) on any machine.
 */
export function nullGpu(): Promise<Gpu> {
  return createGpu({ backend: 'null' });
}

/**
 * The null backend presented as a tensor-core adapter: it lists no subgroup-matrix shapes, so this
 * adds the 16x16x16 f16 -> f32 shape and the tier (with 32-wide subgroups, as on NVIDIA). Nothing
 * runs, but every host path of the tensor-core tier is taken: uniform parameters, bindings,
 * dispatch sizes and pipeline creation are checked here rather than first on a GPU.
 */
export async function nullMatrixGpu(): Promise<Gpu> {
  const gpu = await nullGpu();
  const shape = { componentType: 'f16', resultComponentType: 'f32', M: 16, N: 16, K: 16 };
  const caps: Capabilities = {
    ...gpu.caps,
    tiers: [...gpu.caps.tiers.filter((t) => t !== 'subgroup-matrix'), 'subgroup-matrix'],
    subgroupMinSize: 32,
    subgroupMaxSize: 32,
    subgroupMatrixConfigs: [shape],
    allSubgroupMatrixConfigs: [shape],
  };
  (gpu as { caps: Capabilities }).caps = caps;
  return gpu;
}

/**
 * Bytes of the workgroup variables a kernel's WGSL declares (workgroupVariables, array lengths
 * literal or named by a module constant), so that tests can hold a kernel's shared-bytes function
 * (what the host checks against the device's limit) to what the kernel really declares.
 */
export function declaredWorkgroupBytes(code: string): number {
  let total = 0;
  for (const { name, type, bytes } of workgroupVariables(code)) {
    if (bytes === undefined) throw new Error(`declaredWorkgroupBytes: cannot size ${name}: ${type}`);
    total += bytes;
  }
  return total;
}

/**
 * The errors the WGSL compiler reports for `code`, compiled as a shader module only (no pipeline:
 * the null backend's limits would refuse kernels built for a GPU's): empty when it compiles.
 */
export async function moduleErrors(gpu: Gpu, code: string): Promise<string[]> {
  const info = await gpu.device.createShaderModule({ code }).getCompilationInfo();
  return info.messages.filter((m) => m.type === 'error').map((m) => m.message);
}

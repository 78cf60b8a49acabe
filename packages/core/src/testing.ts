/**
 * Devices for tests, shared by every package's test suite. `testGpu()` is real WebGPU: on a machine
 * without a GPU it is SwiftShader's Vulkan CPU driver (from Debian's chromium package), found and
 * selected automatically. There is no silent skip: without an adapter it throws.
 */
import { existsSync } from 'node:fs';
import type { Capabilities } from './capabilities.js';
import { createGpu, type Gpu } from './gpu.js';
import { SWIFTSHADER_ICD } from './node-instance.js';

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

/** Bytes of each element type a workgroup array may hold. */
const ELEMENT_BYTES: Record<string, number> = {
  f16: 2,
  f32: 4,
  i32: 4,
  u32: 4,
  'vec2<f16>': 4,
  'vec4<f16>': 8,
  'vec4<f32>': 16,
  'vec4<u32>': 16,
};

/**
 * Bytes of the workgroup arrays a kernel's WGSL declares, their lengths literal or named by a
 * module constant (`const NAME = 64u;`), so that tests can hold a kernel's shared-bytes function
 * (what the host checks against the device's limit) to what the kernel really declares.
 */
export function declaredWorkgroupBytes(code: string): number {
  const constants = new Map<string, number>();
  for (const [, name, value] of code.matchAll(/^const (\w+) = (\d+)u?;/gm)) {
    constants.set(name as string, Number(value));
  }
  let total = 0;
  for (const [, name, type, count] of code.matchAll(/var<workgroup> (\w+): array<([\w<>]+), (\w+)>;/g)) {
    const bytes = ELEMENT_BYTES[type as string];
    const length = /^\d+$/.test(count as string) ? Number(count) : constants.get(count as string);
    if (bytes === undefined || length === undefined) {
      throw new Error(`declaredWorkgroupBytes: cannot size ${name}: array<${type}, ${count}>`);
    }
    total += bytes * length;
  }
  return total;
}

/**
 * Getting a `GPU` object in Node through the `webgpu` package (dawn.node). Instances are kept for
 * the life of the process, one per set of flags: dawn.node cannot be torn down and re-created
 * reliably, and the process should exit with `process.exit()` when done.
 */
import { WebAttnError } from './errors.js';

/** Dawn backends dawn.node can be asked for. `null` compiles and validates without executing. */
export type NodeBackend = 'default' | 'vulkan' | 'null' | 'opengles' | 'metal' | 'd3d12';

/**
 * Instance toggles: `allow_unsafe_apis` exposes the experimental subgroup-matrix feature,
 * `vulkan_enable_f16_on_nvidia` is what makes NVIDIA offer `shader-f16` (and the f16 matrix shapes)
 * through Vulkan, and timestamp quantization would round kernel times to about 0.1 ms. A diagnostic
 * may add toggles of its own (`extraToggles`, e.g. Dawn's dump_shaders).
 */
export function dawnInstanceFlags(
  backend: NodeBackend,
  fast: boolean,
  extraToggles: string[] = [],
): string[] {
  const enable = ['allow_unsafe_apis', 'vulkan_enable_f16_on_nvidia', ...extraToggles];
  // Bounds clamping and zeroing workgroup memory cost time; kernels here check their own bounds
  // and never read workgroup memory they did not write.
  if (fast) enable.push('disable_robustness', 'disable_workgroup_init', 'skip_validation');
  const flags = [`enable-dawn-features=${enable.join(',')}`, 'disable-dawn-features=timestamp_quantization'];
  if (backend !== 'default') flags.push(`backend=${backend}`);
  return flags;
}

const instances = new Map<string, GPU>();

/** Where Debian's chromium package puts SwiftShader's Vulkan driver manifest. */
export const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';

/**
 * On a machine with no GPU driver, points the Vulkan loader at SwiftShader when it is installed, so
 * that the CLI and tests find a (CPU) adapter with no setup. Returns false when that is not possible.
 */
export async function useSwiftShaderIfPresent(): Promise<boolean> {
  if (process.env.VK_ICD_FILENAMES || process.env.VK_DRIVER_FILES) return false;
  const { existsSync } = await import('node:fs');
  if (!existsSync(SWIFTSHADER_ICD)) return false;
  process.env.VK_ICD_FILENAMES = SWIFTSHADER_ICD;
  return true;
}

/** The dawn.node `GPU` for a backend, created on first use and kept for the process. */
export async function nodeGpu(backend: NodeBackend, fast: boolean): Promise<GPU> {
  const flags = dawnInstanceFlags(backend, fast);
  // The Vulkan loader reads its driver list when an instance is made: a new list needs a new instance.
  const key = `${flags.join(' ')} ${process.env.VK_ICD_FILENAMES ?? ''}`;
  const existing = instances.get(key);
  if (existing) return existing;
  // A computed specifier keeps browser bundlers from trying to resolve the Node-only package.
  const specifier = 'webgpu';
  let mod: { create(flags: string[]): GPU; globals: Record<string, unknown> };
  try {
    mod = await import(/* @vite-ignore */ specifier);
  } catch (cause) {
    throw new WebAttnError(
      'no-adapter',
      `createGpu: no navigator.gpu and the 'webgpu' package could not be loaded in Node (${String(cause)})`,
    );
  }
  Object.assign(globalThis, mod.globals);
  const gpu = mod.create(flags);
  instances.set(key, gpu);
  return gpu;
}

/** Opening the device for a CLI command, and telling the user what it is. */
import { type Capabilities, createGpu, type Gpu, type NodeBackend } from '@webattn/core';

/** Options every device-using command accepts. */
export interface DeviceOptions {
  backend?: NodeBackend;
}

/** The backends `--backend` accepts. */
export const BACKENDS: readonly NodeBackend[] = ['default', 'vulkan', 'null', 'opengles', 'metal', 'd3d12'];

/** True for software adapters (SwiftShader, llvmpipe): their timings say nothing about GPU speed. */
export function isCpuAdapter(caps: Capabilities): boolean {
  const a = caps.adapter;
  const text = `${a.vendor} ${a.architecture} ${a.device} ${a.description}`;
  return a.isFallbackAdapter || /swiftshader|llvmpipe|lavapipe|softpipe|\bcpu\b/i.test(text);
}

/** One line naming the adapter, for banners and reports. */
export function adapterLine(caps: Capabilities): string {
  const a = caps.adapter;
  const name = [a.vendor, a.architecture, a.device].filter(Boolean).join(' / ');
  return `${name}${a.description ? ` (${a.description})` : ''}`;
}

/** Creates the device; `fast` turns off robustness for benchmarking (kernels check their own bounds). */
export function openGpu(options: DeviceOptions, fast = false): Promise<Gpu> {
  return createGpu({ backend: options.backend ?? 'default', fast });
}

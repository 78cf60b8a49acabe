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

/**
 * Free bytes the bench's buffer pool keeps between runs. A timed run allocates what the op allocates
 * (2 GiB of chunk states for lightning attention at 65,536 tokens and 32 heads); with the library's
 * default of 1 GiB those buffers were destroyed after every run and created again in the next, and
 * the tables measured the driver's allocations rather than the kernels, as a training loop with a
 * pool sized to its step would not.
 */
export const BENCH_POOLED_BYTES = 16 * 2 ** 30;

/**
 * Creates the device; `fast` (benchmarking) turns off robustness (kernels check their own bounds)
 * and lets the buffer pool keep `BENCH_POOLED_BYTES`.
 */
export function openGpu(options: DeviceOptions, fast = false): Promise<Gpu> {
  return createGpu({
    backend: options.backend ?? 'default',
    fast,
    ...(fast && { maxPooledBytes: BENCH_POOLED_BYTES }),
  });
}

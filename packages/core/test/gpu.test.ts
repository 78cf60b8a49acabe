import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Gpu, WebAttnError } from '../src/index.js';
import { nullGpu, testGpu } from '../src/testing.js';

describe('createGpu on SwiftShader', () => {
  let gpu: Gpu;
  beforeAll(async () => {
    gpu = await testGpu();
  });
  afterAll(() => gpu.destroy());

  it('reports the adapter and the tiers it can run', () => {
    expect(gpu.caps.adapter.vendor.length).toBeGreaterThan(0);
    expect(gpu.caps.tiers[0]).toBe('portable');
    if (gpu.caps.features.has('subgroups')) {
      expect(gpu.caps.tiers).toContain('subgroups');
      expect(gpu.caps.subgroupMinSize).toBeGreaterThan(0);
      expect(gpu.caps.subgroupMaxSize).toBeGreaterThanOrEqual(gpu.caps.subgroupMinSize);
    }
    expect(gpu.caps.tiers.includes('f16')).toBe(gpu.caps.features.has('shader-f16'));
  });

  it('requests the adapter limits rather than the WebGPU defaults', () => {
    // The defaults are 16 KiB of workgroup storage and 128 MiB bindings; SwiftShader offers more.
    expect(gpu.caps.limits.maxComputeWorkgroupStorageSize).toBeGreaterThan(16384);
    expect(gpu.caps.limits.maxStorageBufferBindingSize).toBeGreaterThan(134217728);
    expect(gpu.device.limits.maxComputeWorkgroupStorageSize).toBe(
      gpu.caps.limits.maxComputeWorkgroupStorageSize,
    );
  });

  it('surfaces device errors instead of failing silently', async () => {
    // A copy past the end of a buffer is a validation error raised asynchronously by the device.
    const a = gpu.device.createBuffer({ size: 16, usage: GPUBufferUsage.COPY_SRC });
    const b = gpu.device.createBuffer({ size: 16, usage: GPUBufferUsage.COPY_DST });
    gpu.encoder().copyBufferToBuffer(a, 0, b, 0, 64);
    await expect(gpu.sync()).rejects.toThrow(WebAttnError);
    a.destroy();
    b.destroy();
  });
});

describe('createGpu on the null backend', () => {
  it('offers every feature for compiling kernels, and wraps an existing device without owning it', async () => {
    const gpu = await nullGpu();
    expect(gpu.caps.features.has('shader-f16')).toBe(true);
    expect(gpu.caps.features.has('chromium-experimental-subgroup-matrix')).toBe(true);
    expect(gpu.caps.tiers).toContain('f16');
    const { createGpu } = await import('../src/index.js');
    const wrapped = await createGpu({ device: gpu.device, adapterInfo: gpu.device.adapterInfo });
    wrapped.destroy();
    // The wrapped Gpu left the device alive: it can still create buffers without error.
    gpu.device.pushErrorScope('validation');
    gpu.device.createBuffer({ size: 4, usage: GPUBufferUsage.STORAGE }).destroy();
    expect(await gpu.device.popErrorScope()).toBeNull();
    gpu.destroy();
    expect(gpu.isDestroyed).toBe(true);
    expect(() => gpu.encoder()).toThrow(/destroyed/);
  });
});

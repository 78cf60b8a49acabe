/**
 * The runtime object every op takes first: a device with its real limits and optional features, what
 * it can do, and the shared pipeline cache, buffer pool and command encoder.
 */
import { BindGroupCache } from './bind-group-cache.js';
import { BufferPool, type PoolStats } from './buffer-pool.js';
import { type Capabilities, readCapabilities, WANTED_FEATURES, WANTED_LIMITS } from './capabilities.js';
import { WebAttnError } from './errors.js';
import { type NodeBackend, nodeGpu, useSwiftShaderIfPresent } from './node-instance.js';
import { PipelineCache } from './pipeline-cache.js';
import { StagingBelt, type StagingStats } from './staging-belt.js';

/** How to get a device. */
export interface CreateGpuOptions {
  /** Wrap a device the caller already has instead of creating one; `destroy()` then leaves it alive. */
  device?: GPUDevice;
  /** Adapter info to go with `device`, when `device.adapterInfo` is not available. */
  adapterInfo?: GPUAdapterInfo;
  /** Node only: which Dawn backend to use. `null` compiles and validates kernels without running them. */
  backend?: NodeBackend;
  /** Passed to `requestAdapter`. */
  powerPreference?: GPUPowerPreference;
  /**
   * Node only: turn off Dawn's bounds clamping, workgroup-memory zeroing and validation for speed.
   * Kernels check their own bounds; leave this off while developing a kernel.
   */
  fast?: boolean;
  /** Free bytes the buffer pool keeps for reuse (default 1 GiB). */
  maxPooledBytes?: number;
}

/** A device ready for webattn's kernels. Create with {@link createGpu}; release with `destroy()`. */
export class Gpu {
  /** Compiled pipelines, keyed by generated WGSL. */
  readonly pipelines: PipelineCache;
  /** Bind groups by pipeline and bound buffers (bind-group-cache.ts). */
  readonly bindGroups: BindGroupCache;
  /** Reused storage and staging buffers. */
  readonly pool: BufferPool;
  private pending: GPUCommandEncoder | null = null;
  /** Where uploads that follow queued work are staged. */
  private readonly staging: StagingBelt;
  private readonly errors: string[] = [];
  private destroyed = false;
  /** Set while a {@link TimestampRecorder} measures; dispatches ask it for timestamp writes. */
  recorder: TimestampRecorder | null = null;

  constructor(
    readonly device: GPUDevice,
    /** What the adapter can do: tiers, subgroup sizes, matrix shapes, limits. */
    readonly caps: Capabilities,
    private readonly ownsDevice: boolean,
    maxPooledBytes?: number,
  ) {
    this.pipelines = new PipelineCache(device);
    this.bindGroups = new BindGroupCache(device);
    this.staging = new StagingBelt(device);
    this.pool = new BufferPool(device, () => this.submit(), maxPooledBytes);
    device.addEventListener('uncapturederror', (event) => {
      this.errors.push((event as GPUUncapturedErrorEvent).error.message);
    });
  }

  /** The command encoder that queued work goes into until the next {@link submit}. */
  encoder(): GPUCommandEncoder {
    this.assertAlive();
    this.pending ??= this.device.createCommandEncoder({ label: 'webattn' });
    return this.pending;
  }

  /** Sends queued work to the GPU. Reads call this first, so ordering is kept. */
  submit(): void {
    if (!this.pending) return;
    const staged = this.staging.beforeSubmit();
    this.device.queue.submit([this.pending.finish()]);
    this.pending = null;
    this.staging.submitted(staged);
  }

  /**
   * Writes host data into a buffer after everything queued before it. With work queued, the data
   * goes through a reused staging chunk (staging-belt.ts) copied in the same encoder, after that
   * work: submitting the work first instead (for the queue's own write) would hand the GPU a few
   * kernels and leave it idle while the rest is recorded, a gap that kernels a few microseconds
   * long could not cover. Work
   * therefore reaches the GPU at the next read, sync or explicit {@link submit}: a caller running
   * many steps without reading anything back can submit after each step.
   */
  write(buffer: GPUBuffer, data: ArrayBufferView, offset = 0): void {
    if (!this.pending) {
      this.device.queue.writeBuffer(buffer, offset, data.buffer, data.byteOffset, data.byteLength);
      return;
    }
    this.staging.upload(
      this.pending,
      buffer,
      offset,
      new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
    );
  }

  /** The staging chunks' counters (chunks are reused once the GPU is done with them). */
  stagingStats(): StagingStats {
    return this.staging.stats();
  }

  /** Waits until the GPU has finished all submitted work; throws if any of it raised an error. */
  async sync(): Promise<void> {
    this.submit();
    await this.device.queue.onSubmittedWorkDone();
    this.throwErrors();
  }

  /** Throws a {@link WebAttnError} for validation or out-of-memory errors the device reported. */
  throwErrors(): void {
    if (this.errors.length === 0) return;
    const messages = this.errors.splice(0);
    throw new WebAttnError(
      'unsupported',
      `the GPU reported ${messages.length} error(s):\n${messages.join('\n')}`,
    );
  }

  /** Live and pooled buffer counts, to check that nothing leaks. */
  memory(): PoolStats {
    return this.pool.stats();
  }

  /** True once {@link destroy} has run. */
  get isDestroyed(): boolean {
    return this.destroyed;
  }

  /** Frees every buffer and, unless the device was wrapped, the device itself. */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.pending = null;
    this.staging.destroy();
    this.bindGroups.clear();
    this.pool.destroy();
    if (this.ownsDevice) this.device.destroy();
  }

  /** Lets `using gpu = await createGpu()` release the device at the end of the scope. */
  [Symbol.dispose](): void {
    this.destroy();
  }

  private assertAlive(): void {
    if (this.destroyed) throw new WebAttnError('disposed', 'gpu: this Gpu has been destroyed');
  }
}

/** Hands out timestamp-query slots to the passes dispatched while it is installed on a {@link Gpu}. */
export interface TimestampRecorder {
  /** Timestamp writes for the next compute pass (its kernel's label), or undefined when no slot is left. */
  passWrites(label: string): GPUComputePassTimestampWrites | undefined;
}

/**
 * Creates a {@link Gpu}: in a browser through `navigator.gpu`, in Node through the `webgpu` package,
 * or around a `GPUDevice` the caller already has. Requests the adapter's maximum limits and every
 * optional feature webattn can use.
 */
export async function createGpu(options: CreateGpuOptions = {}): Promise<Gpu> {
  if (options.device) {
    const device = options.device;
    const info = options.adapterInfo ?? (device as GPUDevice & { adapterInfo?: GPUAdapterInfo }).adapterInfo;
    if (!info) {
      throw new WebAttnError(
        'invalid-argument',
        'createGpu: options.adapterInfo is required when the device has none',
      );
    }
    return new Gpu(device, readCapabilities(info, device), false, options.maxPooledBytes);
  }
  let adapter = await (await findGpu(options)).requestAdapter({ powerPreference: options.powerPreference });
  const vulkan =
    options.backend === undefined || options.backend === 'default' || options.backend === 'vulkan';
  if (!adapter && isNode() && vulkan && (await useSwiftShaderIfPresent())) {
    adapter = await (await findGpu(options)).requestAdapter({ powerPreference: options.powerPreference });
  }
  if (!adapter) {
    throw new WebAttnError(
      'no-adapter',
      `createGpu: no WebGPU adapter${options.backend ? ` for backend '${options.backend}'` : ''}; on a machine without a GPU install a Vulkan CPU driver (Debian: apt-get install chromium libvulkan1, then VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json)`,
    );
  }
  const device = await requestWebattnDevice(adapter);
  return new Gpu(device, readCapabilities(adapter.info, device), true, options.maxPooledBytes);
}

/**
 * A device of `adapter` as createGpu makes it: every optional feature webattn can use that the
 * adapter has, and the adapter's own maximum of every limit webattn raises.
 */
export function requestWebattnDevice(adapter: GPUAdapter): Promise<GPUDevice> {
  const requiredFeatures = WANTED_FEATURES.filter((f) => adapter.features.has(f)) as GPUFeatureName[];
  const requiredLimits: Record<string, number> = {};
  for (const name of WANTED_LIMITS) {
    const value = (adapter.limits as unknown as Record<string, number | undefined>)[name];
    if (value !== undefined) requiredLimits[name] = value;
  }
  return adapter.requestDevice({ requiredFeatures, requiredLimits, label: 'webattn' });
}

function isNode(): boolean {
  return typeof process !== 'undefined' && process.versions?.node !== undefined;
}

async function findGpu(options: CreateGpuOptions): Promise<GPU> {
  const browserGpu = (globalThis as { navigator?: { gpu?: GPU } }).navigator?.gpu;
  if (isNode()) return nodeGpu(options.backend ?? 'default', options.fast ?? false);
  if (browserGpu) return browserGpu;
  throw new WebAttnError(
    'no-adapter',
    'createGpu: this environment has no navigator.gpu (WebGPU is unavailable)',
  );
}

/**
 * Compiled pipelines keyed by their WGSL. Kernels are specialised at generation time, so the source
 * text is the whole identity of a pipeline; compiling the same source twice is never needed.
 */
import { WebAttnError } from './errors.js';
import { misalignedWorkgroupVariables } from './workgroup-alignment.js';

/** Creates and caches compute pipelines, turning compile errors into readable exceptions. */
export class PipelineCache {
  /**
   * By entry point, then by source. The source is the key as it is, not joined with the entry
   * point: a string the engine has hashed once (a generator's memoized result, see `memoizeWgsl`)
   * is found again without reading its tens of kilobytes, where a joined key is a new string to
   * hash on every launch.
   */
  private readonly pipelines = new Map<string, Map<string, Promise<GPUComputePipeline>>>();

  constructor(private readonly device: GPUDevice) {}

  /** The pipeline for `code`'s `entryPoint`, compiled on first request. */
  get(code: string, label: string, entryPoint = 'main'): Promise<GPUComputePipeline> {
    let bySource = this.pipelines.get(entryPoint);
    if (!bySource) {
      bySource = new Map();
      this.pipelines.set(entryPoint, bySource);
    }
    let pipeline = bySource.get(code);
    if (!pipeline) {
      pipeline = this.compile(code, label, entryPoint);
      // A failed compile is not cached: the caller sees the error, and a retry compiles again.
      const cached = bySource;
      pipeline.catch(() => cached.delete(code));
      bySource.set(code, pipeline);
    }
    return pipeline;
  }

  /** Number of distinct pipelines compiled so far. */
  get size(): number {
    let count = 0;
    for (const bySource of this.pipelines.values()) count += bySource.size;
    return count;
  }

  private async compile(code: string, label: string, entryPoint: string): Promise<GPUComputePipeline> {
    if (code.includes('subgroupMatrix')) {
      const misaligned = misalignedWorkgroupVariables(code);
      if (misaligned.length) {
        throw new WebAttnError(
          'unsupported',
          `kernel '${label}': workgroup variables of a subgroup-matrix kernel must be whole 16-byte units (see workgroup-alignment.ts): ${misaligned.join('; ')}`,
        );
      }
    }
    this.device.pushErrorScope('validation');
    const module = this.device.createShaderModule({ code, label });
    let pipeline: GPUComputePipeline | undefined;
    let failure: unknown;
    try {
      pipeline = await this.device.createComputePipelineAsync({
        layout: 'auto',
        label,
        compute: { module, entryPoint },
      });
    } catch (error) {
      failure = error;
    }
    const scopeError = await this.device.popErrorScope();
    if (pipeline && !scopeError) return pipeline;
    const info = await module.getCompilationInfo();
    const messages = info.messages
      .filter((m) => m.type === 'error')
      .map((m) => `  line ${m.lineNum}:${m.linePos}: ${m.message}`)
      .join('\n');
    const reason = messages || scopeError?.message || String(failure);
    throw new WebAttnError('unsupported', `kernel '${label}' failed to compile:\n${reason}`);
  }
}

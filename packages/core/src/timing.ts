/**
 * Measuring how long GPU work takes: timestamp queries around every compute pass where the adapter
 * has them (first pass start to last pass end, so gaps between kernels count), wall clock otherwise.
 */
import type { Gpu, TimestampRecorder } from './gpu.js';

/** Where a time came from. */
export type TimeSource = 'timestamp' | 'wall';

/** Summary of repeated runs, in milliseconds. */
export interface Measurement {
  source: TimeSource;
  /** Every timed iteration. */
  samples: number[];
  median: number;
  min: number;
  max: number;
  /**
   * With timestamps: for every timed iteration, the GPU time of each kernel label (summed over its
   * passes), so a run's time can be split by stage.
   */
  kernels?: Record<string, number>[];
  /**
   * Median host time of the timed iterations in ms: how long `run` took to return, i.e. to record
   * its GPU work (JavaScript and the WebGPU implementation's encoding), not counting the submit or
   * the GPU. A decode step whose host time exceeds its GPU time is bound by the host.
   */
  hostMedian: number;
}

/** Options for {@link measure}. */
export interface MeasureOptions {
  /** Untimed runs first, to compile pipelines and warm caches (default 2). */
  warmup?: number;
  /** Timed runs (default 10). */
  iters?: number;
  /** Force wall-clock timing even where timestamps exist. */
  wallClock?: boolean;
  /**
   * Time budget in ms: when one run takes a large share of it, fewer warm-up and timed runs are made
   * (at least one of each), so that slow cells of a table do not take minutes each.
   */
  budgetMs?: number;
}

// WebGPU caps a query set at 4096 queries: two per pass.
const MAX_PASSES = 2048;

/** One compute pass of a timed run: its label, start and end in ms from the first pass's start. */
export interface PassTime {
  label: string;
  start: number;
  end: number;
}

/**
 * Timestamp slots for one timed run; reports first-begin to last-end in ms, and each pass (for the
 * diagnostics that lay a call's passes out on the GPU's clock).
 */
export class PassTimestamps implements TimestampRecorder {
  private readonly querySet: GPUQuerySet;
  private passes = 0;
  private readonly labels: string[] = [];
  overflowed = false;

  constructor(private readonly gpu: Gpu) {
    this.querySet = gpu.device.createQuerySet({ type: 'timestamp', count: MAX_PASSES * 2, label: 'timing' });
  }

  passWrites(label: string): GPUComputePassTimestampWrites | undefined {
    if (this.passes >= MAX_PASSES) {
      this.overflowed = true;
      return undefined;
    }
    const i = this.passes++;
    this.labels.push(label);
    return { querySet: this.querySet, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 };
  }

  /**
   * Resolves the queries: the span from the first pass's start to the last one's end, each label's
   * summed pass time and each pass in order, in ms; undefined when nothing was recorded.
   */
  async span(): Promise<{ ms: number; kernels: Record<string, number>; passes: PassTime[] } | undefined> {
    const gpu = this.gpu;
    const count = this.passes * 2;
    if (count === 0 || this.overflowed) return undefined;
    const bytes = count * 8;
    const resolved = gpu.device.createBuffer({
      size: bytes,
      usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
    });
    const staging = gpu.device.createBuffer({
      size: bytes,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    try {
      const encoder = gpu.encoder();
      encoder.resolveQuerySet(this.querySet, 0, count, resolved, 0);
      encoder.copyBufferToBuffer(resolved, 0, staging, 0, bytes);
      gpu.submit();
      await staging.mapAsync(GPUMapMode.READ);
      const stamps = new BigUint64Array(staging.getMappedRange().slice(0));
      staging.unmap();
      let first = stamps[0]!;
      let last = stamps[1]!;
      const kernels: Record<string, number> = {};
      for (let i = 0; i < count; i += 2) {
        if (stamps[i]! < first) first = stamps[i]!;
        if (stamps[i + 1]! > last) last = stamps[i + 1]!;
        const label = this.labels[i / 2]!;
        kernels[label] = (kernels[label] ?? 0) + Number(stamps[i + 1]! - stamps[i]!) / 1e6;
      }
      const since = (stamp: bigint) => Number(stamp - first) / 1e6;
      const passes = this.labels.map((label, i) => ({
        label,
        start: since(stamps[2 * i]!),
        end: since(stamps[2 * i + 1]!),
      }));
      return { ms: Number(last - first) / 1e6, kernels, passes };
    } finally {
      resolved.destroy();
      staging.destroy();
      this.querySet.destroy();
    }
  }
}

/** Runs `run` (which queues GPU work) once and returns its GPU time in ms and where that came from. */
export async function timeOnce(
  gpu: Gpu,
  run: () => Promise<void> | void,
  wallClock = false,
): Promise<{ ms: number; source: TimeSource; kernels?: Record<string, number>; hostMs: number }> {
  await gpu.sync();
  if (gpu.caps.timestamps && !wallClock) {
    const recorder = new PassTimestamps(gpu);
    gpu.recorder = recorder;
    const start = performance.now();
    try {
      await run();
    } finally {
      gpu.recorder = null;
    }
    const hostMs = performance.now() - start;
    gpu.submit();
    const span = await recorder.span();
    await gpu.sync();
    if (span !== undefined) return { ms: span.ms, source: 'timestamp', kernels: span.kernels, hostMs };
    // No pass recorded or too many: fall through to a wall-clock run of the same work.
  }
  const start = performance.now();
  await run();
  const hostMs = performance.now() - start;
  await gpu.sync();
  return { ms: performance.now() - start, source: 'wall', hostMs };
}

/** Times `run` over several iterations after a warm-up; median, min and max in ms. */
export async function measure(
  gpu: Gpu,
  run: () => Promise<void> | void,
  options: MeasureOptions = {},
): Promise<Measurement> {
  const { warmup = 2, iters = 10, wallClock = false, budgetMs = Number.POSITIVE_INFINITY } = options;
  let runMs = 0;
  let warmupMs = 0;
  for (let i = 0; i < warmup; i++) {
    const start = performance.now();
    await run();
    await gpu.sync();
    runMs = performance.now() - start;
    warmupMs += runMs;
    // Stop warming up before warm-up alone would spend half the budget.
    if (warmupMs + runMs > budgetMs / 2) break;
  }
  const affordable = runMs > 0 ? Math.floor(budgetMs / runMs) : iters;
  const timed = Math.max(1, Math.min(iters, affordable));
  const samples: number[] = [];
  const hostSamples: number[] = [];
  const kernels: Record<string, number>[] = [];
  let source: TimeSource = 'timestamp';
  for (let i = 0; i < timed; i++) {
    const t = await timeOnce(gpu, run, wallClock);
    samples.push(t.ms);
    hostSamples.push(t.hostMs);
    if (t.kernels) kernels.push(t.kernels);
    if (t.source === 'wall') source = 'wall';
  }
  const sorted = [...samples].sort((a, b) => a - b);
  return {
    source,
    samples,
    median: medianOfSorted(sorted),
    min: sorted[0]!,
    max: sorted[sorted.length - 1]!,
    ...(kernels.length === samples.length && { kernels }),
    hostMedian: medianOfSorted([...hostSamples].sort((a, b) => a - b)),
  };
}

/** The median of numbers sorted in increasing order (the mean of the middle two for an even count). */
export function medianOfSorted(sorted: readonly number[]): number {
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

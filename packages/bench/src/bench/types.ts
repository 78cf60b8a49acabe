/** The shapes of bench specifications and results, shared by the runner, the renderers and the suites. */
import type { Gpu, Measurement, Tier } from '@webattn/core';

/** A prepared run of one implementation at one size. */
export interface PreparedRun {
  /** Queues one execution. */
  run(): Promise<void>;
  /** Frees what `prepare` allocated. */
  dispose(): void;
}

/** One column of a bench table. */
export interface Implementation {
  name: string;
  tier?: Tier;
  /** Allocates inputs for `size`; undefined when this size does not fit (e.g. scores over memory). */
  prepare(gpu: Gpu, size: number): Promise<PreparedRun | undefined>;
  /**
   * Times only the kernels whose labels this accepts (one stage of a larger run), from per-pass
   * timestamps; adapters without timestamps leave the cell empty.
   */
  kernels?: (label: string) => boolean;
}

/** What a suite asks the runner to measure for one table. */
export interface TableSpec {
  id: string;
  title: string;
  sizeLabel: string;
  sizes: number[];
  implementations: Implementation[];
  /** Floating-point operations at a size, for TFLOPS. */
  flops?: (size: number) => number;
  /** Bytes a run must move at a size, for effective GB/s against the streaming probe. */
  bytes?: (size: number) => number;
  /** What {@link TableSpec.bytes} counts, for the GB/s table's title (e.g. `latent-cache bytes read`). */
  bytesLabel?: string;
  /** The columns are stages of one run, not alternatives: no ratios between them. */
  stages?: boolean;
  /**
   * The id of the table whose external columns (scripts/torch_baseline.py) measure this table's
   * problem when they are not under its own id: NSA's tables take PyTorch's dense attention at the
   * same shape from `flash-fwd` / `flash-bwd`.
   */
  externalFrom?: string;
  /** Markdown lines printed under the table, built once it has run (e.g. memory measured while preparing). */
  notes?: () => string[];
  /**
   * Print each cell's host time per call under the table: for decode steps, whose GPU time can be
   * shorter than the time the host takes to record them.
   */
  hostTimes?: boolean;
}

/** One measured (or merged) cell. */
export interface Cell {
  ms: number;
  min?: number;
  max?: number;
  /** Timed runs behind the median (fewer than asked for where a run is slow). */
  runs?: number;
  source: 'timestamp' | 'wall' | 'external';
  /** Median host time per call in ms: recording its GPU work (see core's `Measurement.hostMedian`). */
  hostMs?: number;
}

/** A measured table: rows are sizes, columns implementations. */
export interface BenchTable {
  id: string;
  title: string;
  sizeLabel: string;
  /** Column names in order; the first is the baseline the ratios are taken against. */
  columns: string[];
  rows: { size: number; cells: Record<string, Cell | undefined> }[];
  /** FLOPs per size, where TFLOPS mean something. */
  flops?: Record<number, number>;
  /** Bytes moved per size, where effective GB/s mean something. */
  bytes?: Record<number, number>;
  /** What the bytes count. */
  bytesLabel?: string;
  /** The columns are stages of one run: no ratios between them. */
  stages?: boolean;
  /** Where its external columns come from when not under its own id (see {@link TableSpec.externalFrom}). */
  externalFrom?: string;
  /** Markdown lines printed under the table. */
  notes?: string[];
  /** Its cells' host times are printed (see {@link TableSpec.hostTimes}). */
  hostTimes?: boolean;
}

/** Everything one `webattn bench` run produced. */
export interface BenchReport {
  tool: 'webattn';
  date: string;
  adapter: string;
  cpuAdapter: boolean;
  iterations: number;
  ceilings: { tensorCoreTflops?: number; streamingGBps?: number };
  tables: BenchTable[];
  /** Where merged external columns came from (e.g. PyTorch's version and device). */
  external?: string;
}

/** Result of measuring one prepared run. */
export type Timing = Pick<Measurement, 'median' | 'min' | 'max' | 'source'>;

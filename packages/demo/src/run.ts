/** Runs one demo op: a first run (with its pipeline compiles), timed runs, the check, a leak check. */
import type { Gpu, Tier } from '@webattn/core';
import type { DemoOp, OutputCheck } from './ops/op.js';

/** Timed runs after the first; the median is reported. */
const TIMED_RUNS = 3;

/** What the page shows for one op. */
export interface OpResult {
  id: string;
  label: string;
  shape: string;
  tier: Tier;
  /** Each output against the reference; empty when the op threw. */
  outputs: OutputCheck[];
  /** Milliseconds of the first run, pipeline compilation included. */
  firstMs: number;
  /** Median milliseconds of the timed runs (dispatch to the GPU's completion). */
  ms: number;
  /** Live GPU buffers left after the op's tensors were freed (0 unless something leaked). */
  leakedBuffers: number;
  /** The exception's message when the op threw. */
  error?: string;
  /** Every output within tolerance, nothing leaked, nothing thrown. */
  ok: boolean;
}

async function timed(body: () => Promise<void>): Promise<number> {
  const start = performance.now();
  await body();
  return performance.now() - start;
}

/** Runs `op` on `tier`; never throws (an exception becomes a failed result). */
export async function runOp(gpu: Gpu, op: DemoOp, tier: Tier): Promise<OpResult> {
  const result: OpResult = {
    id: op.id,
    label: op.label,
    shape: op.shape,
    tier,
    outputs: [],
    firstMs: Number.NaN,
    ms: Number.NaN,
    leakedBuffers: 0,
    ok: false,
  };
  const liveBefore = gpu.memory().liveBuffers;
  try {
    const opCase = op.setup(gpu, tier);
    try {
      result.firstMs = await timed(() => opCase.launch());
      const times: number[] = [];
      for (let i = 0; i < TIMED_RUNS; i++) times.push(await timed(() => opCase.launch()));
      times.sort((a, b) => a - b);
      result.ms = times[Math.floor(times.length / 2)]!;
      result.outputs = await opCase.check();
    } finally {
      opCase.dispose();
    }
    await gpu.sync();
    result.leakedBuffers = gpu.memory().liveBuffers - liveBefore;
    result.ok =
      result.outputs.length > 0 && result.outputs.every((o) => o.comparison.ok) && result.leakedBuffers === 0;
  } catch (error) {
    result.error = error instanceof Error ? error.message : String(error);
  }
  return result;
}

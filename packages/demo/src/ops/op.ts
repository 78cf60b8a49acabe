/** What every op of the demo provides: a setup on a device and tier, then timed runs and a check. */
import type { Gpu, Tensor, Tier } from '@webattn/core';
import type { Comparison } from '@webattn/reference';

/** One output of an op compared with the reference. */
export interface OutputCheck {
  /** Which output: `o`, `finalState`, ... */
  output: string;
  /** The errors, the bounds they were held to and the verdict (from `compare` of @webattn/reference). */
  comparison: Comparison;
}

/** An op set up on one device and tier, its inputs uploaded; free it with `dispose`. */
export interface OpCase {
  /** Runs the op, waits until the GPU has finished it, and frees its outputs: what the demo times. */
  launch(): Promise<void>;
  /** Runs the op once more, reads the outputs and compares them with the reference on the same inputs. */
  check(): Promise<OutputCheck[]>;
  /** Frees the inputs. */
  dispose(): void;
}

/** One family's forward as the demo runs it. */
export interface DemoOp {
  /** Stable id, used in the page's `data-op` attributes. */
  id: string;
  /** The package and function. */
  label: string;
  /** The problem size, for the table. */
  shape: string;
  /** Uploads random inputs in the tier's dtype. */
  setup(gpu: Gpu, tier: Tier): OpCase;
}

/** Product of a shape's extents. */
export function sizeOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Reads every tensor back (the reference runs on what the GPU holds, so f16 inputs arrive rounded). */
export function readAll(tensors: readonly Tensor[]): Promise<Float32Array[]> {
  return Promise.all(tensors.map((t) => t.read()));
}

/** Frees tensors, skipping absent ones. */
export function disposeAll(tensors: readonly (Tensor | undefined)[]): void {
  for (const t of tensors) t?.dispose();
}

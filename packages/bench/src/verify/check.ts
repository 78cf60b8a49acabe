/** What `webattn verify` runs: named checks of GPU kernels against @webattn/reference. */
import type { Gpu, Tier } from '@webattn/core';
import type { Comparison } from '@webattn/reference';

/** The suites `webattn verify` and `webattn bench` know, `all` aside. */
export const SUITES = ['core', 'flash', 'nsa', 'mla', 'linear'] as const;
/** One suite name. */
export type Suite = (typeof SUITES)[number];

/** One kernel variant on one shape, compared output by output with the reference. */
export interface Check {
  suite: Suite;
  /** Kernel variant and shape, e.g. `matmul tiled [portable] 65x33x130`. */
  name: string;
  tier: Tier;
  /** Runs the kernel and the reference; one comparison per output. */
  run(gpu: Gpu): Promise<{ output: string; comparison: Comparison }[]>;
}

/** The outcome of one output of one check. */
export interface CheckLine {
  check: Check;
  output: string;
  comparison?: Comparison;
  /** Set when the kernel threw instead of producing output. */
  error?: string;
  ok: boolean;
}

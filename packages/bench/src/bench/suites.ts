/** The tables each `webattn bench <suite>` measures. Families add their suites here as they land. */
import type { Dtype, Gpu, Tier } from '@webattn/core';
import type { Suite } from '../verify/check.js';
import { flashTables } from './flash-suite.js';
import { lightningTables } from './linear-suite.js';
import { maskedLinearTables } from './masked-linear-suite.js';
import { matmulTable } from './matmul-suite.js';
import { mlaTables } from './mla-suite.js';
import { nsaTables } from './nsa-suite.js';
import type { TableSpec } from './types.js';

/** What the user asked for. */
export interface SuiteOptions {
  /** Sizes from `--sizes`; otherwise the suite's defaults for this adapter. */
  sizes?: number[];
  dtype?: Dtype;
  tier?: Tier;
  /** A CPU adapter: default sizes are scaled down. */
  cpu: boolean;
}

/** The tables of a suite, or an explanation of why it has none on this build. */
export function suiteTables(gpu: Gpu, suite: Suite, options: SuiteOptions): TableSpec[] {
  switch (suite) {
    case 'core':
      return [matmulTable(gpu, options)];
    case 'flash':
      return flashTables(gpu, options);
    case 'nsa':
      return nsaTables(gpu, options);
    case 'mla':
      return mlaTables(gpu, options);
    case 'linear':
      return [...maskedLinearTables(gpu, options), ...lightningTables(gpu, options)];
    default:
      throw new Error(
        `bench ${suite}: the ${suite} kernels are not implemented yet in this version; available suites: ${BENCHED_SUITES.join(', ')}`,
      );
  }
}

/** Suites that have tables in this build, for `bench all`. */
export const BENCHED_SUITES: readonly Suite[] = ['core', 'flash', 'nsa', 'mla', 'linear'];

/** Which kernel tiers a bench table measures: those the adapter runs and `--tier`/`--dtype` allow. */
import { type Gpu, type Tier, tierDtype } from '@webattn/core';
import type { SuiteOptions } from './suites.js';

/** Whether the adapter runs `tier` and the user's `--tier` and `--dtype` allow it. */
export function tierWanted(gpu: Gpu, options: Pick<SuiteOptions, 'tier' | 'dtype'>, tier: Tier): boolean {
  return (
    gpu.caps.tiers.includes(tier) &&
    (!options.tier || options.tier === tier) &&
    (!options.dtype || tierDtype(tier) === options.dtype)
  );
}

/**
 * The wanted tiers with kernels of their own, slowest first: the subgroups tier runs the portable
 * kernels, so it gets no column of its own.
 */
export function ownKernelTiers(gpu: Gpu, options: Pick<SuiteOptions, 'tier' | 'dtype'>): Tier[] {
  return (['portable', 'f16', 'subgroup-matrix'] as const).filter((t) => tierWanted(gpu, options, t));
}

/** The fastest wanted f32 tier and the fastest wanted f16 tier, where there are such. */
export function fastestTiers(gpu: Gpu, options: Pick<SuiteOptions, 'tier' | 'dtype'>): Tier[] {
  const wanted = (t: Tier) => tierWanted(gpu, options, t);
  const f32 = (['subgroups', 'portable'] as const).find(wanted);
  const f16 = (['subgroup-matrix', 'f16'] as const).find(wanted);
  return [f32, f16].filter((t): t is Tier => t !== undefined);
}

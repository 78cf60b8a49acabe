/** `webattn verify [suite]`: every kernel variant the adapter can run, against the reference. */
import type { Gpu, Tier } from '@webattn/core';
import { adapterLine, isCpuAdapter } from '../adapter.js';
import { type Check, SUITES, type Suite } from '../verify/check.js';
import { coreChecks } from '../verify/core-checks.js';
import { flashChecks } from '../verify/flash-checks.js';
import { lightningChecks } from '../verify/linear-checks.js';
import { maskedLinearChecks } from '../verify/masked-linear-checks.js';
import { mlaChecks } from '../verify/mla-checks.js';
import { nsaChecks } from '../verify/nsa-checks.js';
import { runChecks } from '../verify/verify.js';

/** The checks of a suite on this device; undefined for a suite with no kernels in this version. */
export function suiteChecks(gpu: Gpu, suite: Suite): Check[] | undefined {
  switch (suite) {
    case 'core':
      return coreChecks(gpu);
    case 'flash':
      return flashChecks(gpu);
    case 'nsa':
      return nsaChecks(gpu);
    case 'mla':
      return mlaChecks(gpu);
    case 'linear':
      return [...maskedLinearChecks(gpu), ...lightningChecks(gpu)];
    default:
      return undefined;
  }
}

/** Runs `verify` and returns the exit status: 0 when every check passed, 1 otherwise. */
export async function verifyCommand(
  gpu: Gpu,
  target: Suite | 'all',
  tier: Tier | undefined,
  print: (line: string) => void,
): Promise<number> {
  print(
    `webattn verify ${target} on ${adapterLine(gpu.caps)}${isCpuAdapter(gpu.caps) ? ' [CPU adapter]' : ''}`,
  );
  print(`tiers available: ${gpu.caps.tiers.join(', ')}`);
  if (tier && !gpu.caps.tiers.includes(tier)) {
    print(`--tier ${tier}: this adapter cannot run it (it offers ${gpu.caps.tiers.join(', ')})`);
    return 1;
  }
  const suites = target === 'all' ? [...SUITES] : [target];
  const checks: Check[] = [];
  const missing: Suite[] = [];
  for (const suite of suites) {
    const found = suiteChecks(gpu, suite);
    if (found) checks.push(...found.filter((c) => !tier || c.tier === tier));
    else missing.push(suite);
  }
  if (missing.length) print(`not implemented yet in this version: ${missing.join(', ')}`);
  if (checks.length === 0) {
    print('nothing to verify');
    return 1;
  }
  const lines = await runChecks(gpu, checks, print);
  const failed = lines.filter((l) => !l.ok).length;
  print(`${lines.length - failed} passed, ${failed} failed`);
  return failed === 0 ? 0 : 1;
}

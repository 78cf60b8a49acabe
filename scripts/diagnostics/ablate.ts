// What the ablation diagnostics share: rewriting one kernel's WGSL on its way to the pipeline
// cache, one rewrite at a time.

import type { Gpu } from '../../packages/core/src/index.js';

/** A name and a rewrite of the kernel's WGSL; lines it cannot find leave the kernel as is. */
export type Ablation = [name: string, rewrite: (code: string) => string];

/**
 * A statement kept behind a condition that never holds: a binding no code reads would drop out of
 * the pipeline's layout and fail the bind group.
 */
export const never = (statement: string) => `if (li > 100000u) { ${statement} }`;

/**
 * Routes the pipelines whose label starts with `label` through each ablation in turn: yields the
 * ablation's name and `time`, to be called while that ablation is in force.
 */
export function* ablationsOf<T>(
  gpu: Gpu,
  label: string,
  ablations: readonly Ablation[],
  time: () => Promise<T>,
): Generator<[string, () => Promise<T>]> {
  const get = gpu.pipelines.get.bind(gpu.pipelines);
  let rewrite: (code: string) => string = (c) => c;
  gpu.pipelines.get = (code, name, entryPoint) =>
    get(name.startsWith(label) ? rewrite(code) : code, name, entryPoint);
  try {
    for (const [name, ablation] of ablations) {
      rewrite = ablation;
      yield [name, time];
    }
  } finally {
    gpu.pipelines.get = get;
  }
}

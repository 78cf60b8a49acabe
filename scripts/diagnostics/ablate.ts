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
 * Routes the pipelines whose label starts with `label` (or, where it ends in `$`, equals the rest)
 * through each ablation in turn: yields the ablation's name and `time`, to be called while that
 * ablation is in force.
 */
export function* ablationsOf<T>(
  gpu: Gpu,
  label: string,
  ablations: readonly Ablation[],
  time: () => Promise<T>,
): Generator<[string, () => Promise<T>]> {
  const get = gpu.pipelines.get.bind(gpu.pipelines);
  let rewrite: (code: string) => string = (c) => c;
  const matches = label.endsWith('$')
    ? (name: string) => name === label.slice(0, -1)
    : (name: string) => name.startsWith(label);
  gpu.pipelines.get = (code, name, entryPoint) => get(matches(name) ? rewrite(code) : code, name, entryPoint);
  try {
    for (const [name, ablation] of ablations) {
      rewrite = ablation;
      yield [name, time];
    }
  } finally {
    gpu.pipelines.get = get;
  }
}

/**
 * A kernel with `bytes` more workgroup memory declared and nothing else changed: an array it keeps
 * live through a store behind a condition no invocation meets (local index past 100000), so that
 * only the declared size moves. On the H200 the declared size alone sets a kernel's speed in steps
 * (core's forward, flash-ablations shared, 2026-12-01).
 */
export const workgroupPadding = (bytes: number): Ablation => [
  `${bytes} more bytes of workgroup memory declared`,
  (code) => {
    if (bytes === 0) return code;
    const index = /@builtin\(local_invocation_index\)\s+(\w+)/.exec(code)?.[1];
    const id = /@builtin\(local_invocation_id\)\s+(\w+)/.exec(code)?.[1];
    const invocation = index ?? (id && `${id}.x`);
    if (!invocation) throw new Error('workgroupPadding: the entry point names no local invocation');
    const lastDeclaration = [...code.matchAll(/var<workgroup>[^\n]*\n/g)].at(-1);
    if (!lastDeclaration) throw new Error('workgroupPadding: the kernel declares no workgroup memory');
    const at = lastDeclaration.index + lastDeclaration[0].length;
    const declared = `${code.slice(0, at)}var<workgroup> WorkgroupPadding: array<vec4<f32>, ${bytes / 16}>;\n${code.slice(at)}`;
    return declared.replace(
      /(@compute[^{]*\{)/,
      `$1\n  if (${invocation} > 100000u) { WorkgroupPadding[${invocation} % ${bytes / 16}u] = vec4<f32>(0.0); }`,
    );
  },
];

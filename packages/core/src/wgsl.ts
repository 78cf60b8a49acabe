/** Small pieces of WGSL that many kernel generators share. */
import type { Dtype } from './dtype.js';

/** The WGSL scalar type that stores a dtype. */
export function wgslType(dtype: Dtype): 'f32' | 'f16' {
  return dtype;
}

/** `enable` directives a kernel needs: f16 for f16 storage, subgroups, subgroup matrices. */
export function enables(needs: { f16?: boolean; subgroups?: boolean; subgroupMatrix?: boolean }): string {
  const lines: string[] = [];
  if (needs.f16 || needs.subgroupMatrix) lines.push('enable f16;');
  if (needs.subgroups || needs.subgroupMatrix) lines.push('enable subgroups;');
  if (needs.subgroupMatrix) lines.push('enable chromium_experimental_subgroup_matrix;');
  return lines.join('\n');
}

/**
 * A cooperative staging step, unrolled: `count` elements over `threads` invocations, invocation
 * `li` taking elements `e${k} = li + k · threads`. Every `load(k, inRange)` comes before the first
 * `store(k)`: a loop of load-then-store waits out the global-memory latency once per element, this
 * once per tile (it doubled the flash kernels' speed on the H100). `load` declares its values with
 * the suffix k and must put `inRange` (empty, or `e${k} < count && `) in front of its condition;
 * each `store` runs in a block of its own, under that bound where the last step overhangs `count`.
 * The whole is one block, so that several stagings can share a scope.
 */
export function unrolledStagingWgsl(
  count: number,
  threads: number,
  load: (k: number, inRange: string) => string,
  store: (k: number) => string,
): string {
  const steps = Array.from({ length: Math.ceil(count / threads) }, (_, k) => k);
  const overhangs = (k: number) => (k + 1) * threads > count;
  return `{
${steps.map((k) => `    let e${k} = li + ${k * threads}u;\n${load(k, overhangs(k) ? `e${k} < ${count}u && ` : '')}`).join('\n')}
${steps.map((k) => `    ${overhangs(k) ? `if (e${k} < ${count}u) ` : ''}{\n${store(k)}\n    }`).join('\n')}
  }`;
}

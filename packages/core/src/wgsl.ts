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

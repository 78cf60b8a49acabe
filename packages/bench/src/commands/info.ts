/** `webattn info`: what the adapter is and which kernels it can run. */
import type { Gpu } from '@webattn/core';
import { adapterLine, isCpuAdapter } from '../adapter.js';

const FEATURES_OF_INTEREST = [
  'shader-f16',
  'subgroups',
  'subgroup-size-control',
  'chromium-experimental-subgroup-matrix',
  'timestamp-query',
];

/** The report `webattn info` prints. */
export function infoReport(gpu: Gpu): string {
  const c = gpu.caps;
  const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(0)} MiB`;
  const lines = [
    `adapter      ${adapterLine(c)}${isCpuAdapter(c) ? '  [CPU adapter]' : ''}`,
    `tiers        ${c.tiers.join(', ')}`,
    `features     ${FEATURES_OF_INTEREST.map((f) => `${f} ${c.features.has(f) ? 'yes' : 'no'}`).join(', ')}`,
    `subgroups    ${c.subgroupMinSize ? `size ${c.subgroupMinSize}..${c.subgroupMaxSize}` : 'none'}`,
    `matrices     ${
      c.allSubgroupMatrixConfigs.length
        ? c.allSubgroupMatrixConfigs
            .map((m) => `${m.componentType}->${m.resultComponentType} ${m.M}x${m.N}x${m.K}`)
            .join(', ')
        : 'none'
    }`,
    'limits',
    `  maxStorageBufferBindingSize      ${mib(c.limits.maxStorageBufferBindingSize)}`,
    `  maxBufferSize                    ${mib(c.limits.maxBufferSize)}`,
    `  maxComputeWorkgroupStorageSize   ${c.limits.maxComputeWorkgroupStorageSize} bytes`,
    `  maxComputeInvocationsPerWorkgroup ${c.limits.maxComputeInvocationsPerWorkgroup}`,
    `  maxComputeWorkgroupsPerDimension ${c.limits.maxComputeWorkgroupsPerDimension}`,
    `  maxStorageBuffersPerShaderStage  ${c.limits.maxStorageBuffersPerShaderStage}`,
  ];
  return lines.join('\n');
}

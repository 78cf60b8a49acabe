/**
 * What an adapter can do, read once when the device is created, in the terms kernels are chosen by:
 * tiers, subgroup sizes, subgroup-matrix shapes and the limits that size tiles.
 */

/** A kernel variant family, from the most to the least portable. */
export type Tier = 'portable' | 'subgroups' | 'f16' | 'subgroup-matrix';

/** Every tier, in order of preference from the most portable. */
export const TIERS: readonly Tier[] = ['portable', 'subgroups', 'f16', 'subgroup-matrix'];

/** One cooperative-matrix shape the adapter supports: left is MxK, right KxN, result MxN. */
export interface SubgroupMatrixConfig {
  componentType: string;
  resultComponentType: string;
  M: number;
  N: number;
  K: number;
}

/** The limits kernels are sized by. */
export interface KernelLimits {
  maxStorageBufferBindingSize: number;
  maxBufferSize: number;
  maxComputeWorkgroupStorageSize: number;
  maxComputeInvocationsPerWorkgroup: number;
  maxComputeWorkgroupSizeX: number;
  maxComputeWorkgroupsPerDimension: number;
  maxStorageBuffersPerShaderStage: number;
}

/** Everything about the adapter that decides which kernels run and how they are tiled. */
export interface Capabilities {
  adapter: {
    vendor: string;
    architecture: string;
    device: string;
    description: string;
    isFallbackAdapter: boolean;
  };
  /** Features enabled on the device. */
  features: ReadonlySet<string>;
  /** Tiers whose kernels this device can run, most portable first. */
  tiers: readonly Tier[];
  subgroupMinSize: number;
  subgroupMaxSize: number;
  /** Subgroup-matrix shapes with f16 operands and f32 results: the ones the tensor-core kernels use. */
  subgroupMatrixConfigs: readonly SubgroupMatrixConfig[];
  /** Every shape the adapter listed, whatever the component types. */
  allSubgroupMatrixConfigs: readonly SubgroupMatrixConfig[];
  timestamps: boolean;
  limits: KernelLimits;
}

/** The optional features webattn asks for when the adapter has them. */
export const WANTED_FEATURES = [
  'shader-f16',
  'subgroups',
  'subgroup-size-control',
  'chromium-experimental-subgroup-matrix',
  'timestamp-query',
] as const;

/** The limits webattn raises to the adapter's maxima (the defaults are far lower). */
export const WANTED_LIMITS = [
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupSizeY',
  'maxComputeWorkgroupSizeZ',
  'maxComputeWorkgroupsPerDimension',
  'maxStorageBuffersPerShaderStage',
] as const;

interface AdapterInfoWithSubgroups extends GPUAdapterInfo {
  subgroupMinSize?: number;
  subgroupMaxSize?: number;
  subgroupMatrixConfigs?: SubgroupMatrixConfig[];
}

/** Reads the capabilities of a created device (features are the device's, not the adapter's). */
export function readCapabilities(info: GPUAdapterInfo, device: GPUDevice): Capabilities {
  const extended = info as AdapterInfoWithSubgroups;
  const features = new Set<string>(device.features as unknown as Iterable<string>);
  const allConfigs = (extended.subgroupMatrixConfigs ?? []).map((c) => ({
    componentType: c.componentType,
    resultComponentType: c.resultComponentType,
    M: c.M,
    N: c.N,
    K: c.K,
  }));
  const configs = allConfigs.filter((c) => c.componentType === 'f16' && c.resultComponentType === 'f32');
  const tiers: Tier[] = ['portable'];
  if (features.has('subgroups')) tiers.push('subgroups');
  if (features.has('shader-f16')) tiers.push('f16');
  if (
    features.has('shader-f16') &&
    features.has('subgroups') &&
    features.has('chromium-experimental-subgroup-matrix') &&
    configs.length > 0
  ) {
    tiers.push('subgroup-matrix');
  }
  const l = device.limits;
  return {
    adapter: {
      vendor: info.vendor,
      architecture: info.architecture,
      device: info.device,
      description: info.description,
      isFallbackAdapter: (extended as { isFallbackAdapter?: boolean }).isFallbackAdapter ?? false,
    },
    features,
    tiers,
    subgroupMinSize: extended.subgroupMinSize ?? 0,
    subgroupMaxSize: extended.subgroupMaxSize ?? 0,
    subgroupMatrixConfigs: configs,
    allSubgroupMatrixConfigs: allConfigs,
    timestamps: features.has('timestamp-query'),
    limits: {
      maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
      maxBufferSize: l.maxBufferSize,
      maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
      maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
      maxComputeWorkgroupSizeX: l.maxComputeWorkgroupSizeX,
      maxComputeWorkgroupsPerDimension: l.maxComputeWorkgroupsPerDimension,
      maxStorageBuffersPerShaderStage: l.maxStorageBuffersPerShaderStage,
    },
  };
}

/** The fastest masked forward of a tier: tensor cores on `subgroup-matrix`, the blocked kernel elsewhere. */
import {
  type Capabilities,
  dispatch,
  type Gpu,
  matrixSubgroupSize,
  preferredMatrixConfig,
  Tensor,
  type Tier,
} from '@webattn/core';
import { blockedForward } from './blocked.js';
import { type FusedMatrixConfig, fusedMatrixConfig, fusedMatrixRows, fusedMatrixWgsl } from './fused-matrix.wgsl.js';
import type { MaskedShape } from './masked-call.js';
import type { MaskedInputs } from './naive.js';
import { MASKED_PARAMS, maskedParams } from './params.js';

/** The tensor-core configuration for these head dims on this device, or undefined when none fits. */
export function maskedMatrixConfig(caps: Capabilities, dk: number, dv: number): FusedMatrixConfig | undefined {
  const matrix = preferredMatrixConfig(caps);
  if (!matrix) return undefined;
  const { subgroupSize, pinSubgroupSize } = matrixSubgroupSize(caps);
  return fusedMatrixConfig(
    dk,
    dv,
    matrix,
    subgroupSize,
    pinSubgroupSize,
    caps.limits.maxComputeWorkgroupStorageSize,
    Math.max(caps.subgroupMaxSize, subgroupSize),
  );
}

/** Which kernel the fused forward runs for a tier and head dims: `matrix` (tensor cores) or `blocked`. */
export function fusedForwardKernel(caps: Capabilities, tier: Tier, dk: number, dv: number): 'matrix' | 'blocked' {
  return tier === 'subgroup-matrix' && maskedMatrixConfig(caps, dk, dv) ? 'matrix' : 'blocked';
}

/** Runs the fused forward for `tier`. */
export async function fusedForward(
  gpu: Gpu,
  s: MaskedShape,
  scale: number,
  tier: Tier,
  x: MaskedInputs,
): Promise<Tensor> {
  const config = tier === 'subgroup-matrix' ? maskedMatrixConfig(gpu.caps, s.dk, s.dv) : undefined;
  if (!config) return blockedForward(gpu, s, scale, x);
  const o = Tensor.empty(gpu, [s.batch, s.n, s.hq, s.dv], s.dtype);
  try {
    const tiles = Math.ceil(s.n / fusedMatrixRows(config));
    const count = s.batch * s.hq * tiles;
    await dispatch(gpu, {
      label: 'masked fused forward (subgroup matrix)',
      code: fusedMatrixWgsl(config),
      buffers: [x.q, x.k, x.v, x.mask, o],
      params: { layout: MASKED_PARAMS, values: maskedParams(s, scale, { count, tiles }) },
      workgroups: count,
    });
  } catch (error) {
    o.dispose();
    throw error;
  }
  return o;
}

/**
 * The fastest masked kernels of a tier: tensor cores on `subgroup-matrix` (forward, dq, dk, dv and
 * dm), the blocked kernels elsewhere and for head dims the tensor-core shapes do not take.
 */
import {
  type Capabilities,
  dispatch,
  type Gpu,
  matrixSubgroupSize,
  memoizeWgsl,
  preferredMatrixConfig,
  Tensor,
  type Tier,
} from '@webattn/core';
import { allocateGradients } from './allocate.js';
import { blockedBackward, blockedDm, blockedForward } from './blocked.js';
import { fusedDmConfig, fusedDmRows, fusedDmWgsl } from './fused-dm.wgsl.js';
import {
  type FusedMatrixConfig,
  fusedMatrixConfig,
  fusedMatrixRows,
  fusedMatrixWgsl,
} from './fused-matrix.wgsl.js';
import type { MaskedShape } from './masked-call.js';
import type { MaskedInputs } from './naive.js';
import { MASKED_PARAMS, maskedParams } from './params.js';

// Each kernel's WGSL is written once per configuration (see memoizeWgsl).
const fusedDmCode = memoizeWgsl(fusedDmWgsl);
const fusedMatrixCode = memoizeWgsl(fusedMatrixWgsl);

/**
 * The tensor-core configuration for products with dot products of `dx` and outputs of `dz` columns
 * on this device, or undefined when none fits.
 */
export function maskedMatrixConfig(
  caps: Capabilities,
  dx: number,
  dz: number,
): FusedMatrixConfig | undefined {
  const matrix = preferredMatrixConfig(caps);
  if (!matrix) return undefined;
  const { subgroupSize, pinSubgroupSize } = matrixSubgroupSize(caps);
  return fusedMatrixConfig(
    dx,
    dz,
    matrix,
    subgroupSize,
    pinSubgroupSize,
    caps.limits.maxComputeWorkgroupStorageSize,
    Math.max(caps.subgroupMaxSize, subgroupSize),
  );
}

/** The tensor-core dM configuration for dk, dv on this device, or undefined when none fits. */
export function maskedDmMatrixConfig(
  caps: Capabilities,
  dk: number,
  dv: number,
): FusedMatrixConfig | undefined {
  const matrix = preferredMatrixConfig(caps);
  if (!matrix) return undefined;
  const { subgroupSize, pinSubgroupSize } = matrixSubgroupSize(caps);
  return fusedDmConfig(
    dk,
    dv,
    matrix,
    subgroupSize,
    pinSubgroupSize,
    caps.limits.maxComputeWorkgroupStorageSize,
    Math.max(caps.subgroupMaxSize, subgroupSize),
  );
}

/** Queues the tensor-core dM. */
async function matrixDm(
  gpu: Gpu,
  s: MaskedShape,
  scale: number,
  config: FusedMatrixConfig,
  x: MaskedInputs,
  dO: Tensor,
  dm: Tensor,
) {
  const tiles = Math.ceil(s.n / fusedDmRows(config));
  const count = s.maskBatch * s.maskHeads * tiles * Math.ceil(s.n / config.tile);
  await dispatch(gpu, {
    label: 'masked fused dm (subgroup matrix)',
    code: fusedDmCode(config),
    buffers: [x.q, x.k, x.v, dO, dm],
    params: { layout: MASKED_PARAMS, values: maskedParams(s, scale, { count, tiles }) },
    workgroups: count,
  });
}

/** Which kernel the fused forward runs for a tier and head dims: `matrix` (tensor cores) or `blocked`. */
export function fusedForwardKernel(
  caps: Capabilities,
  tier: Tier,
  dk: number,
  dv: number,
): 'matrix' | 'blocked' {
  return tier === 'subgroup-matrix' && maskedMatrixConfig(caps, dk, dv) ? 'matrix' : 'blocked';
}

/** Queues one tensor-core product (bindings x, y, z, mask, out). */
async function matrixProduct(
  gpu: Gpu,
  s: MaskedShape,
  scale: number,
  label: string,
  config: FusedMatrixConfig,
  buffers: [Tensor, Tensor, Tensor, Tensor, Tensor],
): Promise<void> {
  const tiles = Math.ceil(s.n / fusedMatrixRows(config));
  const count = s.batch * (config.kvOutput ? s.hkv : s.hq) * tiles;
  await dispatch(gpu, {
    label,
    code: fusedMatrixCode(config),
    buffers,
    params: { layout: MASKED_PARAMS, values: maskedParams(s, scale, { count, tiles }) },
    workgroups: count,
  });
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
    await matrixProduct(gpu, s, scale, 'masked fused forward (subgroup matrix)', config, [
      x.q,
      x.k,
      x.v,
      x.mask,
      o,
    ]);
  } catch (error) {
    o.dispose();
    throw error;
  }
  return o;
}

/** Runs the fused backward for `tier`: every gradient on tensor cores where the shapes fit. */
export async function fusedBackward(
  gpu: Gpu,
  s: MaskedShape,
  scale: number,
  tier: Tier,
  x: MaskedInputs,
  dO: Tensor,
): Promise<{ dq: Tensor; dk: Tensor; dv: Tensor; dm: Tensor }> {
  const matrix = tier === 'subgroup-matrix';
  // dq and dk: dot products over dv, outputs of dk columns; dv: over dk, outputs of dv columns.
  const toDk = matrix ? maskedMatrixConfig(gpu.caps, s.dv, s.dk) : undefined;
  const toDv = matrix ? maskedMatrixConfig(gpu.caps, s.dk, s.dv) : undefined;
  if (!toDk || !toDv) return blockedBackward(gpu, s, scale, x, dO);
  const t = s.dtype;
  const out = allocateGradients(gpu, x, t);
  try {
    const label = (g: string) => `masked fused ${g} (subgroup matrix)`;
    await matrixProduct(gpu, s, scale, label('dq'), toDk, [dO, x.v, x.k, x.mask, out.dq]);
    await matrixProduct(gpu, s, scale, label('dk'), { ...toDk, kvOutput: true }, [
      x.v,
      dO,
      x.q,
      x.mask,
      out.dk,
    ]);
    await matrixProduct(gpu, s, scale, label('dv'), { ...toDv, kvOutput: true }, [
      x.k,
      x.q,
      dO,
      x.mask,
      out.dv,
    ]);
    const dmConfig = maskedDmMatrixConfig(gpu.caps, s.dk, s.dv);
    if (dmConfig) await matrixDm(gpu, s, scale, dmConfig, x, dO, out.dm);
    else await blockedDm(gpu, s, scale, x, dO, out.dm);
  } catch (error) {
    for (const d of Object.values(out)) d.dispose();
    throw error;
  }
  return out;
}

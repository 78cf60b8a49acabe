/** Host side of the blocked masked linear attention: tiles only, nothing n x n but dm itself. */
import { dispatch, type Gpu, memoizeWgsl, Tensor } from '@webattn/core';
import { allocateGradients } from './allocate.js';
import {
  type BlockedProductConfig,
  blockedDmWgsl,
  blockedLayout,
  blockedProductWgsl,
  DM_TILE,
} from './blocked.wgsl.js';
import type { MaskedShape } from './masked-call.js';
import type { MaskedInputs } from './naive.js';
import { MASKED_PARAMS, maskedParams } from './params.js';

// Each kernel's WGSL is written once per configuration (see memoizeWgsl).
const blockedDmCode = memoizeWgsl(blockedDmWgsl);
const blockedProductCode = memoizeWgsl(blockedProductWgsl);

/** Queues one blocked product: `out_i = Σ scale (x_i · y_j) M'_ij z_j` (see blocked.wgsl.ts). */
async function product(
  gpu: Gpu,
  s: MaskedShape,
  scale: number,
  label: string,
  config: BlockedProductConfig,
  buffers: [Tensor, Tensor, Tensor, Tensor, Tensor],
): Promise<void> {
  const { rows } = blockedLayout(config.dz);
  const tiles = Math.ceil(s.n / rows);
  const count = s.batch * (config.kvOutput ? s.hkv : s.hq) * tiles;
  await dispatch(gpu, {
    label,
    code: blockedProductCode(config),
    buffers,
    params: { layout: MASKED_PARAMS, values: maskedParams(s, scale, { count, tiles }) },
    workgroups: count,
  });
}

/** The blocked forward: a workgroup per query tile walks the key tiles. */
export async function blockedForward(
  gpu: Gpu,
  s: MaskedShape,
  scale: number,
  x: MaskedInputs,
): Promise<Tensor> {
  const o = Tensor.empty(gpu, [s.batch, s.n, s.hq, s.dv], s.dtype);
  try {
    await product(
      gpu,
      s,
      scale,
      'masked blocked forward',
      { dtype: s.dtype, dx: s.dk, dz: s.dv, kvOutput: false },
      [x.q, x.k, x.v, x.mask, o],
    );
  } catch (error) {
    o.dispose();
    throw error;
  }
  return o;
}

/** The blocked dM: a workgroup per tile of dm, each invocation owning its entries' sums over the broadcast dims. */
export async function blockedDm(
  gpu: Gpu,
  s: MaskedShape,
  scale: number,
  x: MaskedInputs,
  dO: Tensor,
  dm: Tensor,
) {
  const tiles = Math.ceil(s.n / DM_TILE);
  const count = s.maskBatch * s.maskHeads * tiles * tiles;
  await dispatch(gpu, {
    label: 'masked blocked dm',
    code: blockedDmCode({ dtype: s.dtype, dk: s.dk, dv: s.dv }),
    buffers: [x.q, x.k, x.v, dO, dm],
    params: { layout: MASKED_PARAMS, values: maskedParams(s, scale, { count, tiles }) },
    workgroups: count,
  });
}

/** The blocked backward: dq over key tiles, dk and dv over query tiles (and the group's heads), dm by element. */
export async function blockedBackward(
  gpu: Gpu,
  s: MaskedShape,
  scale: number,
  x: MaskedInputs,
  dO: Tensor,
): Promise<{ dq: Tensor; dk: Tensor; dv: Tensor; dm: Tensor }> {
  const t = s.dtype;
  const out = allocateGradients(gpu, x, t);
  try {
    await product(gpu, s, scale, 'masked blocked dq', { dtype: t, dx: s.dv, dz: s.dk, kvOutput: false }, [
      dO,
      x.v,
      x.k,
      x.mask,
      out.dq,
    ]);
    await product(gpu, s, scale, 'masked blocked dk', { dtype: t, dx: s.dv, dz: s.dk, kvOutput: true }, [
      x.v,
      dO,
      x.q,
      x.mask,
      out.dk,
    ]);
    await product(gpu, s, scale, 'masked blocked dv', { dtype: t, dx: s.dk, dz: s.dv, kvOutput: true }, [
      x.k,
      x.q,
      dO,
      x.mask,
      out.dv,
    ]);
    await blockedDm(gpu, s, scale, x, dO, out.dm);
  } catch (error) {
    for (const d of Object.values(out)) d.dispose();
    throw error;
  }
  return out;
}

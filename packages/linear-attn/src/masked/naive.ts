/** Host side of the naive masked linear attention: materialised `[b, hq, n, n]` f32 scores. */
import { dispatch, type Gpu, memoizeWgsl, type Tensor } from '@webattn/core';
import { allocate, allocateGradients } from './allocate.js';
import type { MaskedShape } from './masked-call.js';
import {
  NAIVE_WORKGROUP,
  naiveDmWgsl,
  naiveDqWgsl,
  naiveKvGradWgsl,
  naiveOutputWgsl,
  naiveScoresWgsl,
} from './naive.wgsl.js';
import { MASKED_PARAMS, maskedParams } from './params.js';

// Each kernel's WGSL is written once per configuration (see memoizeWgsl).
const naiveDmCode = memoizeWgsl(naiveDmWgsl);
const naiveDqCode = memoizeWgsl(naiveDqWgsl);
const naiveKvGradCode = memoizeWgsl(naiveKvGradWgsl);
const naiveOutputCode = memoizeWgsl(naiveOutputWgsl);
const naiveScoresCode = memoizeWgsl(naiveScoresWgsl);

/** Inputs of a masked call, checked. */
export interface MaskedInputs {
  q: Tensor;
  k: Tensor;
  v: Tensor;
  mask: Tensor;
}

/** Queues one one-thread-per-element naive kernel over `count` elements. */
async function launch(
  gpu: Gpu,
  s: MaskedShape,
  scale: number,
  label: string,
  code: string,
  buffers: Tensor[],
  count: number,
): Promise<void> {
  await dispatch(gpu, {
    label,
    code,
    buffers,
    params: { layout: MASKED_PARAMS, values: maskedParams(s, scale, { count }) },
    workgroups: Math.ceil(count / NAIVE_WORKGROUP),
  });
}

/** `o = (scale (Q Kᵀ) ⊙ M) V` through an `[b, hq, n, n]` f32 buffer of scores. */
export async function naiveForward(
  gpu: Gpu,
  s: MaskedShape,
  scale: number,
  x: MaskedInputs,
): Promise<Tensor> {
  const c = { dtype: s.dtype, dk: s.dk, dv: s.dv };
  const squares = s.batch * s.hq * s.n * s.n;
  const { scores, o } = allocate(gpu, {
    scores: [[s.batch, s.hq, s.n, s.n], 'f32'],
    o: [[s.batch, s.n, s.hq, s.dv], s.dtype],
  });
  try {
    await launch(
      gpu,
      s,
      scale,
      'masked naive scores',
      naiveScoresCode(c, false),
      [x.q, x.k, x.mask, scores],
      squares,
    );
    await launch(gpu, s, scale, 'masked naive output', naiveOutputCode(c), [scores, x.v, o], o.size);
  } catch (error) {
    o.dispose();
    throw error;
  } finally {
    scores.dispose();
  }
  return o;
}

/** dq, dk, dv, dm through `A = scale Q Kᵀ` and `G = dO Vᵀ`, both materialised. */
export async function naiveBackward(
  gpu: Gpu,
  s: MaskedShape,
  scale: number,
  x: MaskedInputs,
  dO: Tensor,
): Promise<{ dq: Tensor; dk: Tensor; dv: Tensor; dm: Tensor }> {
  const c = { dtype: s.dtype, dk: s.dk, dv: s.dv };
  const square = [s.batch, s.hq, s.n, s.n];
  const { a, g } = allocate(gpu, { a: [square, 'f32'], g: [square, 'f32'] });
  let out: ReturnType<typeof allocateGradients>;
  try {
    out = allocateGradients(gpu, x, s.dtype);
  } catch (error) {
    a.dispose();
    g.dispose();
    throw error;
  }
  try {
    await launch(
      gpu,
      s,
      scale,
      'masked naive backward scores',
      naiveScoresCode(c, true),
      [x.q, x.k, x.v, dO, a, g],
      a.size,
    );
    await launch(gpu, s, scale, 'masked naive dm', naiveDmCode(c), [a, g, out.dm], out.dm.size);
    await launch(gpu, s, scale, 'masked naive dq', naiveDqCode(c), [g, x.mask, x.k, out.dq], out.dq.size);
    await launch(
      gpu,
      s,
      scale,
      'masked naive dk',
      naiveKvGradCode(c, 'dk'),
      [g, x.mask, x.q, out.dk],
      out.dk.size,
    );
    await launch(
      gpu,
      s,
      scale,
      'masked naive dv',
      naiveKvGradCode(c, 'dv'),
      [a, x.mask, dO, out.dv],
      out.dv.size,
    );
  } catch (error) {
    for (const t of Object.values(out)) t.dispose();
    throw error;
  } finally {
    a.dispose();
    g.dispose();
  }
  return out;
}

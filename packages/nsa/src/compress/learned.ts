/** Host side of the learned compressors: `cmp = f(weight · u)` over each block's flattened rows. */
import { dispatch, type Gpu, matmul, memoizeWgsl, Tensor } from '@webattn/core';
import type { NsaConfig } from '../config.js';
import type { NsaLayout } from '../layout.js';
import {
  blockRowsBackwardWgsl,
  blockRowsWgsl,
  LEARNED_PARAMS,
  LEARNED_WORKGROUP,
  type LearnedMethod,
  learnedActivationBackwardWgsl,
  learnedActivationWgsl,
  transposeWgsl,
} from './learned.wgsl.js';

// Each kernel's WGSL is written once per configuration (see memoizeWgsl).
const blockRowsBackwardCode = memoizeWgsl(blockRowsBackwardWgsl);
const blockRowsCode = memoizeWgsl(blockRowsWgsl);
const learnedActivationBackwardCode = memoizeWgsl(learnedActivationBackwardWgsl);
const learnedActivationCode = memoizeWgsl(learnedActivationWgsl);
const transposeCode = memoizeWgsl(transposeWgsl);

/**
 * A learned compressor (the Scalable repo's): `z = weight · u` on each block flattened to
 * `u = [kernelSize · dim]` (position-major), then `cmp = z` (`linear`, weight `[dim, l · dim]`),
 * `silu(z[:dim]) ∘ z[dim:]` (`swiglu`) or `sigmoid(z[:dim]) ∘ z[dim:]` (`sigmoid-mul`), weight
 * `[2 · dim, l · dim]`; the same weight for every head, as a PyTorch `Linear(l · dim, out)` stores it.
 */
export interface LearnedCompression {
  method: LearnedMethod;
  /** `[outFeatures, kernelSize · dim]`, the inputs' dtype. */
  weight: Tensor;
}

/** Output features of a method: the value half, and the gate half when gated. */
export function learnedFeatures(method: LearnedMethod, dim: number): number {
  return method === 'linear' ? dim : 2 * dim;
}

interface Shape {
  gpu: Gpu;
  layout: NsaLayout;
  config: NsaConfig;
  heads: number;
  dim: number;
}

function launch(
  s: Shape,
  label: string,
  code: string,
  buffers: Tensor[],
  invocations: number,
  dim = s.dim,
  tokenTable = 0,
) {
  return dispatch(s.gpu, {
    label: `nsa compress learned ${label}`,
    code,
    buffers,
    params: {
      layout: LEARNED_PARAMS,
      values: {
        blocks: s.layout.cmpBlocks,
        tokens: s.layout.tokens,
        heads: s.heads,
        dim,
        kernelSize: s.config.kernelSize,
        stride: s.config.stride,
        tokenTable,
      },
    },
    workgroups: Math.ceil(invocations / LEARNED_WORKGROUP),
  });
}

/** The blocks' rows `u [blocks · heads, l · dim]` and `z = u · weightᵀ`. */
async function rowsAndProduct(s: Shape, x: Tensor, starts: Tensor, params: LearnedCompression) {
  const rows = s.layout.cmpBlocks * s.heads;
  const width = s.config.kernelSize * s.dim;
  const u = Tensor.empty(s.gpu, [rows, width], x.dtype);
  try {
    await launch(s, 'rows', blockRowsCode(x.dtype), [x, starts, u], rows * width);
    const z = await matmul(s.gpu, u, params.weight, { transposeB: true });
    return { u, z };
  } catch (error) {
    u.dispose();
    throw error;
  }
}

/** Compresses `x` into `[...cmpDims, heads, dim]` with a learned compressor (the caller checked there are blocks). */
export async function compressLearned(
  gpu: Gpu,
  x: Tensor,
  layout: NsaLayout,
  config: NsaConfig,
  starts: Tensor,
  params: LearnedCompression,
): Promise<Tensor> {
  const [heads, dim] = x.shape.slice(-2) as [number, number];
  const s = { gpu, layout, config, heads, dim };
  const { u, z } = await rowsAndProduct(s, x, starts, params);
  using _u = u;
  using _z = z;
  const cmp = Tensor.empty(gpu, [...layout.cmpDims, heads, dim], x.dtype);
  await launch(
    s,
    params.method,
    learnedActivationCode(x.dtype, params.method),
    [z, cmp],
    layout.cmpBlocks * heads * dim,
  );
  return cmp;
}

/**
 * Backward of {@link compressLearned}: the tokens' gradient and the weight's, from the blocks'
 * gradient `dcmp`. Recomputes u and z rather than keeping them from the forward.
 */
export async function compressLearnedBackward(
  gpu: Gpu,
  x: Tensor,
  dcmp: Tensor,
  layout: NsaLayout,
  config: NsaConfig,
  tables: { tensor: Tensor; tokenTable: number; starts: Tensor },
  params: LearnedCompression,
): Promise<{ dx: Tensor; dWeight: Tensor }> {
  const [heads, dim] = x.shape.slice(-2) as [number, number];
  const s = { gpu, layout, config, heads, dim };
  const features = learnedFeatures(params.method, dim);
  const rows = layout.cmpBlocks * heads;
  const { u, z } = await rowsAndProduct(s, x, tables.starts, params);
  using _u = u;
  using _z = z;
  using dz = Tensor.empty(gpu, [rows, features], x.dtype);
  await launch(
    s,
    `${params.method} backward`,
    learnedActivationBackwardCode(x.dtype, params.method),
    params.method === 'linear' ? [dcmp, dz] : [z, dcmp, dz],
    rows * features,
  );
  // dU = dZ · weight; dWeight = dZᵀ · U (dZ transposed first: matmul transposes only its B).
  using du = await matmul(gpu, dz, params.weight);
  using dzT = Tensor.empty(gpu, [features, rows], x.dtype);
  await launch(s, 'transpose', transposeCode(x.dtype), [dz, dzT], rows * features, features);
  const dWeight = await matmul(gpu, dzT, u);
  try {
    const dx = Tensor.empty(gpu, [...layout.tokenDims, heads, dim], x.dtype);
    await launch(
      s,
      'rows backward',
      blockRowsBackwardCode(x.dtype),
      [du, tables.tensor, dx],
      layout.tokens * heads * dim,
      dim,
      tables.tokenTable,
    );
    return { dx, dWeight };
  } catch (error) {
    dWeight.dispose();
    throw error;
  }
}

/** Host side of the gated combine. */
import { dispatch, type Gpu, memoizeWgsl, Tensor, vec4uElements } from '@webattn/core';
import { COMBINE_PARAMS, COMBINE_WORKGROUP, combineWgsl } from './combine.wgsl.js';
import {
  COMBINE_BACKWARD_PARAMS,
  COMBINE_BACKWARD_ROWS,
  combineBackwardWgsl,
} from './combine-backward.wgsl.js';

// Each kernel's WGSL is written once per configuration (see memoizeWgsl).
const combineBackwardCode = memoizeWgsl(combineBackwardWgsl);
const combineCode = memoizeWgsl(combineWgsl);

/** Whether rows of `dv` elements split into whole 16-byte vectors, which the combines then move. */
function combineVectorized(dtype: Tensor['dtype'], dv: number): boolean {
  return dv % vec4uElements(dtype) === 0;
}

/** The three branch outputs, each `[...tokens, heads, dv]`; `compressed` is absent when no block exists. */
export interface NsaBranchOutputs {
  compressed?: Tensor;
  selected: Tensor;
  window: Tensor;
}

/** `σ(g0)·compressed + σ(g1)·selected + σ(g2)·window`, shaped like the branches. */
export async function combineBranches(gpu: Gpu, gate: Tensor, branches: NsaBranchOutputs): Promise<Tensor> {
  const o = Tensor.empty(gpu, branches.selected.shape, branches.selected.dtype);
  const dv = branches.selected.shape.at(-1)!;
  const rows = branches.selected.size / dv;
  const vectorized = combineVectorized(o.dtype, dv);
  await dispatch(gpu, {
    label: 'nsa combine',
    code: combineCode(o.dtype, branches.compressed !== undefined, vectorized),
    buffers: [
      gate,
      branches.selected,
      branches.window,
      o,
      ...(branches.compressed ? [branches.compressed] : []),
    ],
    params: { layout: COMBINE_PARAMS, values: { rows, dv } },
    workgroups: Math.ceil((rows * dv) / (vectorized ? vec4uElements(o.dtype) : 1) / COMBINE_WORKGROUP),
  });
  return o;
}

/** The gate index of each branch, as the gate logits order them. */
export const BRANCH_INDEX = { compressed: 0, selected: 1, window: 2 } as const;

/**
 * Where {@link combineBranchBackward} writes a branch's `delta = <dBranch, branch>` per (token,
 * head) row: an f32 tensor, row (t, h) at `((t / stride) · heads + h) · stride + t % stride`
 * (stride 1: token-major; the flash lse layout's head stride: that layout).
 */
export interface BranchDelta {
  tensor: Tensor;
  stride: number;
}

/**
 * One branch's part of the backward of {@link combineBranches} given dO: writes the branch's column
 * of `dgate`, the branch's delta (for its attention backward), and returns the branch's upstream
 * gradient `σ(g_i) · dO` (or, with no branch output, zeroes the column and returns undefined). One
 * branch at a time, so a caller can free each gradient, as large as q, before it asks for the next.
 */
export async function combineBranchBackward(
  gpu: Gpu,
  gate: Tensor,
  dO: Tensor,
  branch: keyof typeof BRANCH_INDEX,
  output: { o: Tensor; delta: BranchDelta } | undefined,
  dgate: Tensor,
): Promise<Tensor | undefined> {
  const dv = dO.shape.at(-1)!;
  const heads = dO.shape.at(-2)!;
  const rows = dO.size / dv;
  const grad = output && Tensor.empty(gpu, dO.shape, dO.dtype);
  try {
    await dispatch(gpu, {
      label: `nsa combine backward ${BRANCH_INDEX[branch]}`,
      code: combineBackwardCode(dO.dtype, output !== undefined, combineVectorized(dO.dtype, dv)),
      buffers: output && grad ? [gate, dO, output.o, grad, dgate, output.delta.tensor] : [gate, dgate],
      params: {
        layout: COMBINE_BACKWARD_PARAMS,
        values: { rows, dv, branch: BRANCH_INDEX[branch], heads, deltaStride: output?.delta.stride ?? 1 },
      },
      workgroups: Math.ceil(rows / COMBINE_BACKWARD_ROWS),
    });
  } catch (error) {
    grad?.dispose();
    throw error;
  }
  return grad;
}

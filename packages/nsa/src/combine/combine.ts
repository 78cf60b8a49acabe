/** Host side of the gated combine. */
import { dispatch, type Gpu, Tensor } from '@webattn/core';
import { COMBINE_PARAMS, COMBINE_WORKGROUP, combineWgsl } from './combine.wgsl.js';
import {
  COMBINE_BACKWARD_PARAMS,
  COMBINE_BACKWARD_ROWS,
  combineBackwardWgsl,
} from './combine-backward.wgsl.js';

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
  await dispatch(gpu, {
    label: 'nsa combine',
    code: combineWgsl(o.dtype, branches.compressed !== undefined),
    buffers: [
      gate,
      branches.selected,
      branches.window,
      o,
      ...(branches.compressed ? [branches.compressed] : []),
    ],
    params: { layout: COMBINE_PARAMS, values: { rows, dv } },
    workgroups: Math.ceil((rows * dv) / COMBINE_WORKGROUP),
  });
  return o;
}

/** Gradients of the combine: each branch's upstream gradient and the gate logits'. */
export interface CombineGradients {
  compressed?: Tensor;
  selected: Tensor;
  window: Tensor;
  /** Like the gate logits. */
  gate: Tensor;
}

/** Backward of {@link combineBranches} given dO. */
export async function combineBackward(
  gpu: Gpu,
  gate: Tensor,
  branches: NsaBranchOutputs,
  dO: Tensor,
): Promise<CombineGradients> {
  const dv = dO.shape.at(-1)!;
  const rows = dO.size / dv;
  const dgate = Tensor.empty(gpu, gate.shape, gate.dtype);
  const launch = async (index: number, output: Tensor | undefined): Promise<Tensor | undefined> => {
    const grad = output && Tensor.empty(gpu, dO.shape, dO.dtype);
    await dispatch(gpu, {
      label: `nsa combine backward ${index}`,
      code: combineBackwardWgsl(dO.dtype, output !== undefined),
      buffers: output && grad ? [gate, dO, output, grad, dgate] : [gate, dgate],
      params: { layout: COMBINE_BACKWARD_PARAMS, values: { rows, dv, branch: index } },
      workgroups: Math.ceil(rows / COMBINE_BACKWARD_ROWS),
    });
    return grad;
  };
  const compressed = await launch(0, branches.compressed);
  const selected = (await launch(1, branches.selected)) as Tensor;
  const window = (await launch(2, branches.window)) as Tensor;
  return { ...(compressed && { compressed }), selected, window, gate: dgate };
}

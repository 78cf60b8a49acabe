/** Host side of the compression kernels. */
import { dispatch, type Gpu, Tensor } from '@webattn/core';
import type { NsaConfig } from '../config.js';
import type { NsaLayout } from '../layout.js';
import { COMPRESS_PARAMS, COMPRESS_WORKGROUP, compressMeanWgsl } from './compress.wgsl.js';
import {
  COMPRESS_BACKWARD_PARAMS,
  COMPRESS_BACKWARD_WORKGROUP,
  compressMeanBackwardWgsl,
} from './compress-backward.wgsl.js';

/**
 * Mean-compresses `x` (`[...tokenDims, heads, dim]`) into `[...cmpDims, heads, dim]`, or returns
 * undefined when no sequence is long enough to fill a block. `starts` holds each block's first token.
 */
export async function compressMean(
  gpu: Gpu,
  x: Tensor,
  layout: NsaLayout,
  config: NsaConfig,
  starts: Tensor,
): Promise<Tensor | undefined> {
  if (layout.cmpBlocks === 0) return undefined;
  const [heads, dim] = x.shape.slice(-2) as [number, number];
  const out = Tensor.empty(gpu, [...layout.cmpDims, heads, dim], x.dtype);
  await dispatch(gpu, {
    label: 'nsa compress mean',
    code: compressMeanWgsl(x.dtype),
    buffers: [x, starts, out],
    params: {
      layout: COMPRESS_PARAMS,
      values: { blocks: layout.cmpBlocks, heads, dim, kernelSize: config.kernelSize },
    },
    workgroups: Math.ceil((layout.cmpBlocks * heads * dim) / COMPRESS_WORKGROUP),
  });
  return out;
}

/** Backward of {@link compressMean}: the tokens' gradient `[...tokenDims, heads, dim]` from the blocks'. */
export async function compressMeanBackward(
  gpu: Gpu,
  dcmp: Tensor,
  layout: NsaLayout,
  config: NsaConfig,
  tables: { tensor: Tensor; tokenTable: number },
): Promise<Tensor> {
  const [heads, dim] = dcmp.shape.slice(-2) as [number, number];
  const dx = Tensor.empty(gpu, [...layout.tokenDims, heads, dim], dcmp.dtype);
  await dispatch(gpu, {
    label: 'nsa compress mean backward',
    code: compressMeanBackwardWgsl(dcmp.dtype),
    buffers: [dcmp, tables.tensor, dx],
    params: {
      layout: COMPRESS_BACKWARD_PARAMS,
      values: {
        tokens: layout.tokens,
        heads,
        dim,
        kernelSize: config.kernelSize,
        stride: config.stride,
        tokenTable: tables.tokenTable,
      },
    },
    workgroups: Math.ceil((layout.tokens * heads * dim) / COMPRESS_BACKWARD_WORKGROUP),
  });
  return dx;
}

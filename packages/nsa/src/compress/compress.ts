/**
 * Host side of compression: mean pooling, the Qwen variant's weighted pooling, or a learned
 * compressor (learned.ts).
 */
import { check, dispatch, type Gpu, memoizeWgsl, Tensor } from '@webattn/core';
import type { NsaConfig } from '../config.js';
import type { NsaLayout } from '../layout.js';
import { COMPRESS_PARAMS, COMPRESS_WORKGROUP, compressWgsl } from './compress.wgsl.js';
import {
  COMPRESS_BACKWARD_PARAMS,
  COMPRESS_BACKWARD_WORKGROUP,
  COMPRESS_PARAMS_BACKWARD_PARAMS,
  compressBackwardWgsl,
  compressPeBackwardWgsl,
  compressWeightBackwardWgsl,
} from './compress-backward.wgsl.js';
import {
  compressLearned,
  compressLearnedBackward,
  type LearnedCompression,
  learnedFeatures,
} from './learned.js';

// Each kernel's WGSL is written once per configuration (see memoizeWgsl).
const compressBackwardCode = memoizeWgsl(compressBackwardWgsl);
const compressPeBackwardCode = memoizeWgsl(compressPeBackwardWgsl);
const compressWeightBackwardCode = memoizeWgsl(compressWeightBackwardWgsl);
const compressCode = memoizeWgsl(compressWgsl);

/**
 * The Qwen variant's learned pooling (spec section 2): compressed block m is
 * `(1/l) Σ_r weight[r] · (x[m·s + r] + pe[r])`, with the same parameters for every head.
 */
export interface WeightedCompression {
  method?: 'weighted';
  /** `[kernelSize]`, the inputs' dtype. */
  weight: Tensor;
  /** `[kernelSize, dim]` (the key or value head dim), the inputs' dtype. */
  pe: Tensor;
}

/** A compressor with parameters: the weighted pooling or a learned one. */
export type NsaCompression = WeightedCompression | LearnedCompression;

/** How keys and values are compressed: with the given compressor, or by mean pooling. */
export interface NsaCompressors {
  k?: NsaCompression;
  v?: NsaCompression;
}

/** Gradients of a compressor's parameters, shaped like them (`pe` for the weighted pooling only). */
export interface CompressionGradients {
  weight: Tensor;
  pe?: Tensor;
}

function isLearned(params: NsaCompression): params is LearnedCompression {
  return params.method !== undefined && params.method !== 'weighted';
}

/** Checks a compressor's parameters against the config and the tensor it compresses. */
export function checkCompression(
  name: 'k' | 'v',
  params: NsaCompression,
  x: Tensor,
  config: NsaConfig,
): void {
  const dim = x.shape[x.shape.length - 1] ?? 0;
  const methods = ['weighted', 'linear', 'swiglu', 'sigmoid-mul'];
  check(
    params.method === undefined || methods.includes(params.method),
    'invalid-argument',
    () => `compressors.${name}.method: expected one of ${methods.join(', ')}, got ${String(params.method)}`,
  );
  const expected: [string, Tensor, number[]][] = isLearned(params)
    ? [
        [
          `compressors.${name}.weight`,
          params.weight,
          [learnedFeatures(params.method, dim), config.kernelSize * dim],
        ],
      ]
    : [
        [`compressors.${name}.weight`, params.weight, [config.kernelSize]],
        [`compressors.${name}.pe`, params.pe, [config.kernelSize, dim]],
      ];
  for (const [label, t, shape] of expected) {
    check(
      t.shape.join() === shape.join(),
      'shape-mismatch',
      () => `${label}: expected shape [${shape.join(', ')}], got [${t.shape.join(', ')}]`,
    );
    check(
      t.dtype === x.dtype,
      'dtype-mismatch',
      () => `${label}: expected dtype ${x.dtype} (${name}'s), got ${t.dtype}`,
    );
  }
}

/**
 * Compresses `x` (`[...tokenDims, heads, dim]`) into `[...cmpDims, heads, dim]`, or returns
 * undefined when no sequence is long enough to fill a block. `starts` holds each block's first token.
 */
export async function compress(
  gpu: Gpu,
  x: Tensor,
  layout: NsaLayout,
  config: NsaConfig,
  starts: Tensor,
  params?: NsaCompression,
): Promise<Tensor | undefined> {
  if (layout.cmpBlocks === 0) return undefined;
  if (params && isLearned(params)) return compressLearned(gpu, x, layout, config, starts, params);
  const [heads, dim] = x.shape.slice(-2) as [number, number];
  const out = Tensor.empty(gpu, [...layout.cmpDims, heads, dim], x.dtype);
  await dispatch(gpu, {
    label: `nsa compress ${params ? 'weighted' : 'mean'}`,
    code: compressCode(x.dtype, params !== undefined),
    buffers: params ? [x, starts, params.weight, params.pe, out] : [x, starts, out],
    params: {
      layout: COMPRESS_PARAMS,
      values: { blocks: layout.cmpBlocks, heads, dim, kernelSize: config.kernelSize },
    },
    workgroups: Math.ceil((layout.cmpBlocks * heads * dim) / COMPRESS_WORKGROUP),
  });
  return out;
}

/** The tokens' gradient `[...tokenDims, heads, dim]` from the blocks', for mean or weighted pooling. */
async function compressBackward(
  gpu: Gpu,
  dcmp: Tensor,
  layout: NsaLayout,
  config: NsaConfig,
  tables: { tensor: Tensor; tokenTable: number },
  params?: WeightedCompression,
): Promise<Tensor> {
  const [heads, dim] = dcmp.shape.slice(-2) as [number, number];
  const dx = Tensor.empty(gpu, [...layout.tokenDims, heads, dim], dcmp.dtype);
  await dispatch(gpu, {
    label: `nsa compress ${params ? 'weighted' : 'mean'} backward`,
    code: compressBackwardCode(dcmp.dtype, params !== undefined),
    buffers: params ? [dcmp, tables.tensor, params.weight, dx] : [dcmp, tables.tensor, dx],
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

/**
 * The tokens' gradient and the compressor's parameters' gradients (absent for mean pooling), from
 * the inputs `x` and the blocks' gradient.
 */
export async function compressionBackward(
  gpu: Gpu,
  x: Tensor,
  dcmp: Tensor,
  layout: NsaLayout,
  config: NsaConfig,
  tables: { tensor: Tensor; tokenTable: number; starts: Tensor },
  params?: NsaCompression,
): Promise<{ dx: Tensor; params?: CompressionGradients }> {
  if (params && isLearned(params)) {
    const { dx, dWeight } = await compressLearnedBackward(gpu, x, dcmp, layout, config, tables, params);
    return { dx, params: { weight: dWeight } };
  }
  const dx = await compressBackward(gpu, dcmp, layout, config, tables, params);
  if (!params) return { dx };
  try {
    return { dx, params: await compressParamsBackward(gpu, x, dcmp, layout, config, tables.starts, params) };
  } catch (error) {
    dx.dispose();
    throw error;
  }
}

/** Gradients of a weighted compression's parameters, from the inputs `x` and the blocks' gradient. */
async function compressParamsBackward(
  gpu: Gpu,
  x: Tensor,
  dcmp: Tensor,
  layout: NsaLayout,
  config: NsaConfig,
  starts: Tensor,
  params: WeightedCompression,
): Promise<Required<CompressionGradients>> {
  const [heads, dim] = x.shape.slice(-2) as [number, number];
  const values = { blocks: layout.cmpBlocks, heads, dim, kernelSize: config.kernelSize };
  const weight = Tensor.empty(gpu, params.weight.shape, params.weight.dtype);
  const pe = Tensor.empty(gpu, params.pe.shape, params.pe.dtype);
  await dispatch(gpu, {
    label: 'nsa compress weighted backward pe',
    code: compressPeBackwardCode(x.dtype),
    buffers: [dcmp, params.weight, pe],
    params: { layout: COMPRESS_PARAMS_BACKWARD_PARAMS, values },
    workgroups: Math.ceil((config.kernelSize * dim) / COMPRESS_BACKWARD_WORKGROUP),
  });
  await dispatch(gpu, {
    label: 'nsa compress weighted backward weight',
    code: compressWeightBackwardCode(x.dtype),
    buffers: [x, dcmp, starts, params.pe, weight],
    params: { layout: COMPRESS_PARAMS_BACKWARD_PARAMS, values },
    workgroups: config.kernelSize,
  });
  return { weight, pe };
}

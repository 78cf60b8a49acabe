/** The uniform parameters every masked kernel reads, and how a call fills them. */
import { type Dtype, enables, type ParamLayout, paramsStruct } from '@webattn/core';
import type { MaskedShape } from './masked-call.js';

/**
 * One layout for every masked kernel. `mbStride`/`mhStride` step the mask per sequence and per
 * query head (0 along a dim it broadcasts over); `count` bounds the one-thread-per-element kernels
 * and `tiles` the tiled ones.
 */
export const MASKED_PARAMS = [
  ['batch', 'u32'],
  ['n', 'u32'],
  ['hq', 'u32'],
  ['hkv', 'u32'],
  ['group', 'u32'],
  ['maskBatch', 'u32'],
  ['maskHeads', 'u32'],
  ['mbStride', 'u32'],
  ['mhStride', 'u32'],
  ['count', 'u32'],
  ['tiles', 'u32'],
  ['scale', 'f32'],
] as const satisfies ParamLayout;

/** Parameter values of a call; `count` and `tiles` per launch. */
export function maskedParams(
  s: MaskedShape,
  scale: number,
  extra: { count?: number; tiles?: number } = {},
): Record<string, number> {
  const nn = s.n * s.n;
  return {
    batch: s.batch,
    n: s.n,
    hq: s.hq,
    hkv: s.hkv,
    group: s.group,
    maskBatch: s.maskBatch,
    maskHeads: s.maskHeads,
    mbStride: s.maskBatch === 1 ? 0 : s.maskHeads * nn,
    mhStride: s.maskHeads === 1 ? 0 : nn,
    count: extra.count ?? 0,
    tiles: extra.tiles ?? 0,
    scale,
  };
}

/**
 * f32 -> f16 for stored results. A WGSL conversion of a value outside the f16 range is
 * indeterminate, so out-of-range values (and NaN) are written as an explicit inf, which the host's
 * non-finite check then reports.
 */
export const TO_F16_WGSL = `fn toF16(x: f32) -> f16 {
  if (abs(x) <= 65504.0) { return f16(x); }
  return bitcast<vec2<f16>>(select(0x7c007c00u, 0xfc00fc00u, x < 0.0)).x;
}`;

/** The WGSL function that converts an f32 result to a stored `dtype` value. */
export function storeAs(dtype: Dtype): string {
  return dtype === 'f16' ? 'toF16' : 'f32';
}

/** The enables and the params struct every masked kernel opens with (and {@link TO_F16_WGSL} for f16). */
export function maskedHeader(dtype: Dtype): string {
  return `${enables({ f16: dtype === 'f16' })}
${paramsStruct(MASKED_PARAMS)}
${dtype === 'f16' ? TO_F16_WGSL : ''}`;
}

/** WGSL reading mask element (i, j) of sequence b, query head h, as f32 (binding name `m`). */
export const MASK_AT_WGSL = `fn maskAt(b: u32, h: u32, i: u32, j: u32) -> f32 {
  return f32(m[b * p.mbStride + h * p.mhStride + i * p.n + j]);
}`;

/**
 * Key and value compression (spec §1.2, §2): every compressed block of `l` consecutive tokens, one
 * every `s` tokens, is pooled into a single vector, separately per sequence and kv head. Tokens after
 * the last full block are dropped. All methods are in f64, forward and backward.
 */
import { checkLength, tokenOffset } from '../attention-shape.js';
import { compressedBlockCount } from './blocks.js';
import type { ResolvedNsaConfig } from './config.js';
import { sigmoid } from './sigmoid.js';

/** Plain mean pooling, `cmp[m] = (1/l) Σ_r x[m·s + r]`: the Scalable repo's default; no parameters. */
export interface MeanCompressor {
  /** The method's name. */
  method: 'mean';
}

/**
 * The Qwen variant's pooling with a learned weight per position and an intra-block position
 * embedding, `cmp[m] = (1/l) Σ_r weight[r] · (x[m·s + r] + pe[r])`; parameters shared by all heads.
 */
export interface WeightedCompressor {
  /** The method's name. */
  method: 'weighted';
  /** `[l]`, one weight per position in the block. */
  weight: ArrayLike<number>;
  /** `[l, dim]`, added to the token at that position before weighting. */
  pe: ArrayLike<number>;
}

/**
 * The Scalable repo's learned compressors, on the block flattened to `u = [l · dim]` (position-major)
 * and a bias-free `z = weight · u` shared by all heads:
 * - `linear`: `cmp = z`, weight `[dim, l · dim]`;
 * - `swiglu`: `cmp = silu(z[0 .. dim]) ∘ z[dim .. 2 dim]`, weight `[2 dim, l · dim]`;
 * - `sigmoid-mul`: `cmp = sigmoid(z[0 .. dim]) ∘ z[dim .. 2 dim]`, weight `[2 dim, l · dim]`.
 */
export interface LearnedCompressor {
  /** The method's name. */
  method: 'linear' | 'swiglu' | 'sigmoid-mul';
  /** `[outFeatures, l · dim]`, row-major, as a PyTorch `Linear(l · dim, outFeatures)` stores it. */
  weight: ArrayLike<number>;
}

/** How a sequence of keys or values is compressed; `{ method: 'mean' }` when not given. */
export type NsaCompressor = MeanCompressor | WeightedCompressor | LearnedCompressor;

/** Gradients of a compressor's parameters, each the shape of its parameter; empty for `mean`. */
export interface NsaCompressorGradients {
  /** Gradient of `weight` (`weighted` and the learned methods). */
  weight?: Float32Array;
  /** Gradient of `pe` (`weighted` only). */
  pe?: Float32Array;
}

/** Parameter gradients as they accumulate, in f64. */
export interface CompressorGradientsF64 {
  weight?: Float64Array;
  pe?: Float64Array;
}

/** Sizes of a token-major `[batch, n, heads, dim]` tensor to compress. */
export interface TokenSizes {
  batch: number;
  n: number;
  heads: number;
  dim: number;
}

/** Output features of a learned compressor: the value half and, when gated, the gate half. */
function outFeatures(method: LearnedCompressor['method'], dim: number): number {
  return method === 'linear' ? dim : 2 * dim;
}

function checkCompressor(name: string, compressor: NsaCompressor, l: number, dim: number): void {
  if (compressor.method === 'mean') return;
  if (compressor.method === 'weighted') {
    checkLength(`${name}.weight`, compressor.weight, [l]);
    checkLength(`${name}.pe`, compressor.pe, [l, dim]);
    return;
  }
  checkLength(`${name}.weight`, compressor.weight, [outFeatures(compressor.method, dim), l * dim]);
}

/** The gate `a` of a gated compressor and its derivative. */
function gateActivation(method: 'swiglu' | 'sigmoid-mul', a: number): { value: number; slope: number } {
  const s = sigmoid(a);
  // silu(a) = a·σ(a), whose derivative is σ(a) + a·σ(a)(1 - σ(a)).
  return method === 'swiglu'
    ? { value: a * s, slope: s + a * s * (1 - s) }
    : { value: s, slope: s * (1 - s) };
}

/** `z = weight · u` of a learned compressor. */
function linearMap(weight: ArrayLike<number>, u: Float64Array, features: number): Float64Array {
  const z = new Float64Array(features);
  for (let o = 0; o < features; o++) {
    for (let e = 0; e < u.length; e++) z[o]! += weight[o * u.length + e]! * u[e]!;
  }
  return z;
}

/** One compressed vector from one block `u = [l, dim]`. */
function poolBlock(u: Float64Array, compressor: NsaCompressor, l: number, dim: number): Float64Array {
  const y = new Float64Array(dim);
  switch (compressor.method) {
    case 'mean':
      for (let r = 0; r < l; r++) for (let c = 0; c < dim; c++) y[c]! += u[r * dim + c]! / l;
      return y;
    case 'weighted': {
      const { weight, pe } = compressor;
      for (let r = 0; r < l; r++) {
        for (let c = 0; c < dim; c++) y[c]! += (weight[r]! * (u[r * dim + c]! + pe[r * dim + c]!)) / l;
      }
      return y;
    }
    case 'linear':
      return linearMap(compressor.weight, u, dim);
    default: {
      const z = linearMap(compressor.weight, u, 2 * dim);
      for (let c = 0; c < dim; c++) y[c] = gateActivation(compressor.method, z[c]!).value * z[dim + c]!;
      return y;
    }
  }
}

/** Gradient of {@link poolBlock} with respect to `u`, adding the parameters' gradients into `grads`. */
function poolBlockBackward(
  u: Float64Array,
  dy: Float64Array,
  compressor: NsaCompressor,
  l: number,
  dim: number,
  grads: CompressorGradientsF64,
): Float64Array {
  const du = new Float64Array(u.length);
  switch (compressor.method) {
    case 'mean':
      for (let r = 0; r < l; r++) for (let c = 0; c < dim; c++) du[r * dim + c] = dy[c]! / l;
      return du;
    case 'weighted': {
      const { weight, pe } = compressor;
      for (let r = 0; r < l; r++) {
        for (let c = 0; c < dim; c++) {
          const e = r * dim + c;
          du[e] = (weight[r]! * dy[c]!) / l;
          grads.pe![e]! += (weight[r]! * dy[c]!) / l;
          grads.weight![r]! += ((u[e]! + pe[e]!) * dy[c]!) / l;
        }
      }
      return du;
    }
    default: {
      const { method, weight } = compressor;
      const features = outFeatures(method, dim);
      // dz: the upstream gradient through the activation, then z = weight · u as any linear layer.
      let dz = dy;
      if (method !== 'linear') {
        const z = linearMap(weight, u, features);
        dz = new Float64Array(features);
        for (let c = 0; c < dim; c++) {
          const gate = gateActivation(method, z[c]!);
          dz[c] = dy[c]! * z[dim + c]! * gate.slope;
          dz[dim + c] = dy[c]! * gate.value;
        }
      }
      for (let o = 0; o < features; o++) {
        for (let e = 0; e < u.length; e++) {
          du[e]! += weight[o * u.length + e]! * dz[o]!;
          grads.weight![o * u.length + e]! += dz[o]! * u[e]!;
        }
      }
      return du;
    }
  }
}

/** Tokens `m·s .. m·s + l - 1` of (sequence b, head h), as `[l, dim]`. */
function gatherBlock(
  x: ArrayLike<number>,
  sizes: TokenSizes,
  b: number,
  h: number,
  m: number,
  config: ResolvedNsaConfig,
) {
  const { n, heads, dim } = sizes;
  const u = new Float64Array(config.kernelSize * dim);
  for (let r = 0; r < config.kernelSize; r++) {
    const base = tokenOffset(b, m * config.stride + r, h, n, heads, dim);
    for (let c = 0; c < dim; c++) u[r * dim + c] = x[base + c]!;
  }
  return u;
}

/**
 * Compressed keys or values, `[batch, M, heads, dim]` with M from {@link compressedBlockCount}.
 *
 * @param x - `[batch, n, heads, dim]`, its length checked by the caller.
 * @param name - The compressor's name in error messages (`'kCompressor'`).
 * @throws Error if a parameter has the wrong length.
 */
export function compressTokens(
  x: ArrayLike<number>,
  compressor: NsaCompressor,
  sizes: TokenSizes,
  config: ResolvedNsaConfig,
  name: string,
): Float64Array {
  const { batch, n, heads, dim } = sizes;
  checkCompressor(name, compressor, config.kernelSize, dim);
  const blocks = compressedBlockCount(n, config);
  const out = new Float64Array(batch * blocks * heads * dim);
  for (let b = 0; b < batch; b++) {
    for (let m = 0; m < blocks; m++) {
      for (let h = 0; h < heads; h++) {
        const y = poolBlock(gatherBlock(x, sizes, b, h, m, config), compressor, config.kernelSize, dim);
        out.set(y, tokenOffset(b, m, h, blocks, heads, dim));
      }
    }
  }
  return out;
}

/**
 * Gradients of {@link compressTokens} given `dy = ∂L/∂cmp` (`[batch, M, heads, dim]`): dx, which
 * each token collects from every block covering it (dropped tail tokens get 0), and the
 * parameters' gradients, summed over sequences, heads and blocks since they are shared.
 */
export function compressTokensBackward(
  x: ArrayLike<number>,
  dy: ArrayLike<number>,
  compressor: NsaCompressor,
  sizes: TokenSizes,
  config: ResolvedNsaConfig,
): { dx: Float64Array; params: CompressorGradientsF64 } {
  const { batch, n, heads, dim } = sizes;
  const l = config.kernelSize;
  const blocks = compressedBlockCount(n, config);
  const params: CompressorGradientsF64 = {};
  if (compressor.method === 'weighted') {
    params.weight = new Float64Array(l);
    params.pe = new Float64Array(l * dim);
  } else if (compressor.method !== 'mean') {
    params.weight = new Float64Array(compressor.weight.length);
  }
  const dx = new Float64Array(x.length);
  for (let b = 0; b < batch; b++) {
    for (let m = 0; m < blocks; m++) {
      for (let h = 0; h < heads; h++) {
        const yBase = tokenOffset(b, m, h, blocks, heads, dim);
        const dyBlock = Float64Array.from({ length: dim }, (_, c) => dy[yBase + c]!);
        const u = gatherBlock(x, sizes, b, h, m, config);
        const du = poolBlockBackward(u, dyBlock, compressor, l, dim, params);
        for (let r = 0; r < l; r++) {
          const base = tokenOffset(b, m * config.stride + r, h, n, heads, dim);
          for (let c = 0; c < dim; c++) dx[base + c]! += du[r * dim + c]!;
        }
      }
    }
  }
  return { dx, params };
}

/**
 * NSA's hyper-parameters, with the defaults of the reference implementation and its constraints
 * checked up front (see the NSA spec, section 1). Every kernel of this package takes a resolved
 * config, so no kernel has to re-check them.
 */
import { check } from '@webattn/core';

/** NSA hyper-parameters; every field but the head counts and dims has the reference default. */
export interface NsaConfig {
  /** Query heads (64 in the benchmarks). */
  heads: number;
  /** Key/value heads; `heads` must be a multiple (GQA, contiguous grouping). */
  kvHeads: number;
  /** q/k head dim (128). */
  headDim: number;
  /** v head dim, a power of two (defaults to `headDim`). */
  vHeadDim: number;
  /** Tokens per compressed block, `l` (32). */
  kernelSize: number;
  /** Step between compressed blocks, `s`, a power of two dividing `kernelSize` (16). */
  stride: number;
  /** Tokens per selection block, `L` (64). */
  blockSize: number;
  /** Selected blocks per query, forced ones included (16). */
  topN: number;
  /** Blocks at the start every query selects (1). */
  numInitBlocks: number;
  /** Blocks ending at the query every query selects (2). */
  numLocalBlocks: number;
  /** Sliding-window size `w` (512): query t sees keys t-w..t. */
  windowSize: number;
  /** Softmax scale, `headDim ** -0.5` by default. */
  scale: number;
}

const DEFAULTS = {
  kernelSize: 32,
  stride: 16,
  blockSize: 64,
  topN: 16,
  numInitBlocks: 1,
  numLocalBlocks: 2,
  windowSize: 512,
};

const isPowerOfTwo = (x: number) => Number.isSafeInteger(x) && x > 0 && (x & (x - 1)) === 0;

/** Fills in defaults and checks every constraint, naming the offending field. */
export function resolveNsaConfig(
  config: Pick<NsaConfig, 'heads' | 'kvHeads' | 'headDim'> & Partial<NsaConfig>,
): NsaConfig {
  const c: NsaConfig = {
    ...DEFAULTS,
    vHeadDim: config.headDim,
    scale: config.headDim ** -0.5,
    ...config,
  };
  for (const key of [
    'heads',
    'kvHeads',
    'headDim',
    'vHeadDim',
    'kernelSize',
    'stride',
    'blockSize',
    'topN',
  ] as const) {
    check(
      Number.isSafeInteger(c[key]) && c[key] > 0,
      'invalid-argument',
      () => `config.${key}: expected a positive integer, got ${c[key]}`,
    );
  }
  for (const key of ['numInitBlocks', 'numLocalBlocks', 'windowSize'] as const) {
    check(
      Number.isSafeInteger(c[key]) && c[key] >= 0,
      'invalid-argument',
      () => `config.${key}: expected a non-negative integer, got ${c[key]}`,
    );
  }
  check(
    c.heads % c.kvHeads === 0,
    'heads-not-divisible',
    () => `config.heads: expected a multiple of kvHeads (${c.kvHeads}), got ${c.heads}`,
  );
  check(
    isPowerOfTwo(c.vHeadDim),
    'invalid-argument',
    () => `config.vHeadDim: expected a power of two, got ${c.vHeadDim}`,
  );
  check(
    isPowerOfTwo(c.stride),
    'invalid-argument',
    () => `config.stride: expected a power of two, got ${c.stride}`,
  );
  check(
    c.kernelSize % c.stride === 0,
    'invalid-argument',
    () => `config.kernelSize: expected a multiple of stride (${c.stride}), got ${c.kernelSize}`,
  );
  check(
    c.blockSize >= c.kernelSize,
    'invalid-argument',
    () => `config.blockSize: expected at least kernelSize (${c.kernelSize}), got ${c.blockSize}`,
  );
  check(
    c.blockSize % c.stride === 0,
    'invalid-argument',
    () => `config.blockSize: expected a multiple of stride (${c.stride}), got ${c.blockSize}`,
  );
  check(
    c.numInitBlocks + c.numLocalBlocks <= c.topN,
    'invalid-argument',
    () =>
      `config.topN: expected at least numInitBlocks + numLocalBlocks (${c.numInitBlocks + c.numLocalBlocks}), got ${c.topN}`,
  );
  check(
    Number.isFinite(c.scale) && c.scale > 0,
    'invalid-argument',
    () => `config.scale: expected a positive number, got ${c.scale}`,
  );
  return c;
}

/** Compressed blocks over `n` tokens, `M = floor((n - l) / s) + 1` (none while n < l). */
export function compressedBlockCount(n: number, config: Pick<NsaConfig, 'kernelSize' | 'stride'>): number {
  return n < config.kernelSize ? 0 : Math.floor((n - config.kernelSize) / config.stride) + 1;
}

/** Selection blocks over `n` tokens, `NB = ceil(n / L)`. */
export function selectionBlockCount(n: number, config: Pick<NsaConfig, 'blockSize'>): number {
  return Math.ceil(n / config.blockSize);
}

/**
 * NSA hyper-parameters under the reference implementation's names (those of `@webattn/reference`
 * and the PyTorch code: `selectSize`, `initBlocks`, `localBlocks`), any of them left to the defaults.
 */
export interface NsaReferenceSettings {
  kernelSize?: number;
  stride?: number;
  selectSize?: number;
  topN?: number;
  windowSize?: number;
  initBlocks?: number;
  localBlocks?: number;
}

/** {@link resolveNsaConfig} for head counts and dims plus settings under the reference's names. */
export function resolveNsaConfigFromReference(
  dims: Pick<NsaConfig, 'heads' | 'kvHeads' | 'headDim'> & Partial<Pick<NsaConfig, 'vHeadDim'>>,
  settings: NsaReferenceSettings,
): NsaConfig {
  const r = settings;
  return resolveNsaConfig({
    ...dims,
    ...(r.kernelSize !== undefined && { kernelSize: r.kernelSize }),
    ...(r.stride !== undefined && { stride: r.stride }),
    ...(r.selectSize !== undefined && { blockSize: r.selectSize }),
    ...(r.topN !== undefined && { topN: r.topN }),
    ...(r.windowSize !== undefined && { windowSize: r.windowSize }),
    ...(r.initBlocks !== undefined && { numInitBlocks: r.initBlocks }),
    ...(r.localBlocks !== undefined && { numLocalBlocks: r.localBlocks }),
  });
}

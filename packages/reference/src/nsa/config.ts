/**
 * NSA's hyper-parameters, their reference defaults (spec §1.2, the Scalable repo's `NSAConfig`) and
 * the constraints the reference kernels assert, checked once so that nothing downstream re-checks.
 */

/**
 * NSA hyper-parameters. Every field is optional and defaults to the value in {@link NSA_DEFAULTS};
 * `initBlocks: 0, localBlocks: 1` gives the original Qwen variant, which forces only the current block.
 */
export interface NsaConfig {
  /** Tokens per compressed block, `l`. @defaultValue 32 */
  kernelSize?: number;
  /** Step between compressed blocks, `s`; a power of two dividing `kernelSize`. @defaultValue 16 */
  stride?: number;
  /** Tokens per selection block, `L`; a multiple of `stride`, at least `kernelSize`. @defaultValue 64 */
  selectSize?: number;
  /** Selection blocks each query attends, forced ones included. @defaultValue 16 */
  topN?: number;
  /** Sliding window: query t sees keys `t - windowSize ..= t`, `windowSize + 1` keys. @defaultValue 512 */
  windowSize?: number;
  /** Blocks `0 .. initBlocks - 1` that every query selects (when they are not in its future). @defaultValue 1 */
  initBlocks?: number;
  /** The query's own block and the `localBlocks - 1` before it, selected by every query. @defaultValue 2 */
  localBlocks?: number;
  /** Softmax scale of all three branches; `dqk ** -0.5` by default. */
  scale?: number;
}

/** A config with every default filled in and every constraint checked. */
export type ResolvedNsaConfig = Required<NsaConfig>;

/** The reference implementations' defaults (spec §1.2); the scale depends on the head dim. */
export const NSA_DEFAULTS: Readonly<Required<Omit<NsaConfig, 'scale'>>> = Object.freeze({
  kernelSize: 32,
  stride: 16,
  selectSize: 64,
  topN: 16,
  windowSize: 512,
  initBlocks: 1,
  localBlocks: 2,
});

function fail(field: string, expected: string, actual: number): never {
  throw new Error(`nsa: config.${field}: expected ${expected}, got ${actual}`);
}

/**
 * Fills in the defaults and checks every constraint of the reference code (spec §1.1, §1.2):
 * `stride` a power of two, `kernelSize` and `selectSize` multiples of it, `selectSize >= kernelSize`,
 * and no more forced blocks than `topN`. The Qwen variant's extra `selectSize % kernelSize == 0` is
 * not required: the overlap weights of §4.2 are defined without it.
 *
 * @param config - The fields to override.
 * @param dqk - Head dimension of q and k, for the default scale.
 * @throws Error naming the field, what it must be and what it is.
 */
export function resolveNsaConfig(config: NsaConfig, dqk: number): ResolvedNsaConfig {
  // Field by field rather than by spreading: callers pass their whole options object, sizes included,
  // and a field given as undefined still takes its default.
  const c: ResolvedNsaConfig = {
    kernelSize: config.kernelSize ?? NSA_DEFAULTS.kernelSize,
    stride: config.stride ?? NSA_DEFAULTS.stride,
    selectSize: config.selectSize ?? NSA_DEFAULTS.selectSize,
    topN: config.topN ?? NSA_DEFAULTS.topN,
    windowSize: config.windowSize ?? NSA_DEFAULTS.windowSize,
    initBlocks: config.initBlocks ?? NSA_DEFAULTS.initBlocks,
    localBlocks: config.localBlocks ?? NSA_DEFAULTS.localBlocks,
    scale: config.scale ?? 1 / Math.sqrt(dqk),
  };
  for (const field of ['kernelSize', 'stride', 'selectSize', 'topN'] as const) {
    if (!Number.isSafeInteger(c[field]) || c[field] < 1) fail(field, 'a positive integer', c[field]);
  }
  for (const field of ['windowSize', 'initBlocks', 'localBlocks'] as const) {
    if (!Number.isSafeInteger(c[field]) || c[field] < 0) fail(field, 'a non-negative integer', c[field]);
  }
  if (!Number.isInteger(Math.log2(c.stride))) fail('stride', 'a power of two', c.stride);
  if (c.kernelSize % c.stride !== 0) {
    fail('kernelSize', `a multiple of stride (${c.stride})`, c.kernelSize);
  }
  if (c.selectSize % c.stride !== 0) {
    fail('selectSize', `a multiple of stride (${c.stride})`, c.selectSize);
  }
  if (c.selectSize < c.kernelSize) {
    fail('selectSize', `at least kernelSize (${c.kernelSize})`, c.selectSize);
  }
  // Forced blocks take the first slots; more of them than slots would not fit.
  if (c.initBlocks + c.localBlocks > c.topN) {
    fail('topN', `at least initBlocks + localBlocks (${c.initBlocks + c.localBlocks})`, c.topN);
  }
  if (!Number.isFinite(c.scale)) fail('scale', 'a finite number', c.scale);
  return c;
}

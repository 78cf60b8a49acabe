/**
 * Random tensors generated on the device, for benchmarks at sizes the host is slow to fill: normal
 * samples for inputs, 0/1 samples for masks.
 */
import { dispatch } from '../dispatch.js';
import type { Dtype } from '../dtype.js';
import { check } from '../errors.js';
import type { Gpu } from '../gpu.js';
import { memoizeWgsl } from '../memoize-wgsl.js';
import { Tensor } from '../tensor.js';
import { RANDOM_PARAMS, RANDOM_THREADS, type RandomDistribution, randomWgsl } from './random.wgsl.js';

// Each kernel's WGSL is written once per configuration (see memoizeWgsl).
const randomCode = memoizeWgsl(randomWgsl);

/** Options of {@link randomNormal}. */
export interface RandomNormalOptions {
  /** Storage dtype; f32 by default. */
  dtype?: Dtype;
  /** Standard deviation; 1 by default. */
  scale?: number;
}

/** Options of {@link randomBernoulli}. */
export interface RandomBernoulliOptions {
  /** Storage dtype; f32 by default. */
  dtype?: Dtype;
  /** Probability of a 1; 0.5 by default. */
  probability?: number;
}

async function fill(
  gpu: Gpu,
  shape: readonly number[],
  seed: number,
  dtype: Dtype,
  distribution: RandomDistribution,
  parameter: number,
): Promise<Tensor> {
  check(
    Number.isInteger(seed) && seed >= 0 && seed < 2 ** 32,
    'invalid-argument',
    () => `seed: expected an integer in [0, 2^32), got ${seed}`,
  );
  const out = Tensor.empty(gpu, shape, dtype);
  try {
    await dispatch(gpu, {
      label: `random ${distribution}`,
      code: randomCode(dtype, distribution),
      buffers: [out],
      params: { layout: RANDOM_PARAMS, values: { count: out.size, seed, parameter } },
      workgroups: Math.max(1, Math.ceil(Math.ceil(out.size / 2) / RANDOM_THREADS)),
    });
  } catch (error) {
    out.dispose();
    throw error;
  }
  return out;
}

/**
 * A tensor of `shape` filled on the device with normal samples (mean 0, standard deviation
 * `scale`), the same values for the same seed on every run and every adapter up to the rounding
 * of log, sqrt and cos. Not the host's `randn` sequence: use it where the values only need to be
 * random (timing), and `Tensor.from(gpu, randn(...))` where a reference must see the same inputs.
 */
export async function randomNormal(
  gpu: Gpu,
  shape: readonly number[],
  seed: number,
  options: RandomNormalOptions = {},
): Promise<Tensor> {
  const scale = options.scale ?? 1;
  check(Number.isFinite(scale), 'invalid-argument', () => `scale: expected a finite number, got ${scale}`);
  return fill(gpu, shape, seed, options.dtype ?? 'f32', 'normal', scale);
}

/**
 * A tensor of `shape` filled on the device with 0/1 samples, 1 with `probability`: random masks
 * at sizes the host is slow to fill (an n x n mask at n = 16384 has 268M entries).
 */
export async function randomBernoulli(
  gpu: Gpu,
  shape: readonly number[],
  seed: number,
  options: RandomBernoulliOptions = {},
): Promise<Tensor> {
  const probability = options.probability ?? 0.5;
  check(
    probability >= 0 && probability <= 1,
    'invalid-argument',
    () => `probability: expected a number in [0, 1], got ${probability}`,
  );
  return fill(gpu, shape, seed, options.dtype ?? 'f32', 'bernoulli', probability);
}

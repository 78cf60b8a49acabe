/**
 * WGSL of the random fills: invocation i writes elements 2i and 2i + 1 from hashes of (seed, i),
 * a Box-Muller pair for normal samples or two threshold tests for 0/1 samples. Stateless, so any
 * element is the same whatever the launch shape; f16 pairs are written as one packed u32, so the
 * kernels need no shader-f16.
 */
import { WORKGROUP_INDEX_WGSL } from '../dispatch.js';
import type { Dtype } from '../dtype.js';
import { paramsStruct } from '../params.js';

/** Uniform parameters of the fills: `parameter` is the scale (normal) or the probability of 1 (bernoulli). */
export const RANDOM_PARAMS = [
  ['count', 'u32'],
  ['seed', 'u32'],
  ['parameter', 'f32'],
] as const;

/** Invocations per workgroup. */
export const RANDOM_THREADS = 256;

/** What the samples follow. */
export type RandomDistribution = 'normal' | 'bernoulli';

const SAMPLE: Record<RandomDistribution, string> = {
  normal: `let radius = sqrt(-2.0 * log(unitInterval(hash(key ^ hash(2u * i))))) * p.parameter;
  let angle = 6.283185307179586 * unitInterval(hash(key ^ hash(2u * i + 1u)));
  let z = radius * vec2f(cos(angle), sin(angle));`,
  bernoulli: `let z = select(vec2f(0.0), vec2f(1.0), vec2f(unitInterval(hash(key ^ hash(2u * i))), unitInterval(hash(key ^ hash(2u * i + 1u)))) <= vec2f(p.parameter));`,
};

/** WGSL of a fill for a storage dtype and a distribution. */
export function randomWgsl(dtype: Dtype, distribution: RandomDistribution): string {
  const store =
    dtype === 'f16'
      ? 'out[i] = pack2x16float(vec2f(z.x, select(0.0, z.y, 2u * i + 1u < p.count)));'
      : 'out[2u * i] = z.x;\n  if (2u * i + 1u < p.count) { out[2u * i + 1u] = z.y; }';
  return `${paramsStruct(RANDOM_PARAMS)}
@group(0) @binding(0) var<storage, read_write> out: array<${dtype === 'f16' ? 'u32' : 'f32'}>;
@group(0) @binding(1) var<uniform> p: Params;

${WORKGROUP_INDEX_WGSL}

// PCG's output permutation of one LCG step: a well-mixed 32-bit hash.
fn hash(v: u32) -> u32 {
  let state = v * 747796405u + 2891336453u;
  let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
  return (word >> 22u) ^ word;
}

// A uniform sample in (0, 1]: 24 random bits, never 0, so the logarithm stays finite.
fn unitInterval(h: u32) -> f32 {
  return (f32(h >> 8u) + 1.0) / 16777216.0;
}

@compute @workgroup_size(${RANDOM_THREADS})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = workgroupIndex(wid, nwg) * ${RANDOM_THREADS}u + li;
  if (2u * i >= p.count) { return; }
  let key = hash(p.seed);
  ${SAMPLE[distribution]}
  ${store}
}
`;
}

/** Small pieces of WGSL that many kernel generators share. */
import type { Dtype } from './dtype.js';

/** The WGSL scalar type that stores a dtype. */
export function wgslType(dtype: Dtype): 'f32' | 'f16' {
  return dtype;
}

/**
 * `enable` directives a kernel needs: f16 for f16 storage, subgroups, subgroup matrices, and
 * subgroup size control where its entry point pins its subgroup size (`subgroupSizeControl`: the
 * `pinSubgroupSize` that computeAttributesWgsl is given).
 */
export function enables(needs: {
  f16?: boolean;
  subgroups?: boolean;
  subgroupMatrix?: boolean;
  subgroupSizeControl?: boolean;
}): string {
  const lines: string[] = [];
  if (needs.f16 || needs.subgroupMatrix) lines.push('enable f16;');
  if (needs.subgroups || needs.subgroupMatrix) lines.push('enable subgroups;');
  if (needs.subgroupMatrix) lines.push('enable chromium_experimental_subgroup_matrix;');
  if (needs.subgroupSizeControl) lines.push('enable subgroup_size_control;');
  return lines.join('\n');
}

/**
 * The `@compute` attributes of a kernel of `threads` invocations, with `@subgroup_size` where the
 * kernel is built for one subgroup size and pins it (`pinSubgroupSize`: core's matrixSubgroupSize).
 */
export function computeAttributesWgsl(
  threads: number,
  subgroup: { subgroupSize: number; pinSubgroupSize: boolean },
): string {
  const pin = subgroup.pinSubgroupSize ? ` @subgroup_size(${subgroup.subgroupSize})` : '';
  return `@compute @workgroup_size(${threads})${pin}`;
}

/**
 * The entry point of a subgroup kernel of `threads` invocations (computeAttributesWgsl), up to its
 * opening brace, with the builtins most of them take: `wid` and `nwg` (for workgroupIndex), `li`,
 * the subgroup `sg` and the invocation's `lane` within it.
 */
export function subgroupMainWgsl(
  threads: number,
  subgroup: { subgroupSize: number; pinSubgroupSize: boolean },
): string {
  return `${computeAttributesWgsl(threads, subgroup)}
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) li: u32, @builtin(subgroup_id) sg: u32,
        @builtin(subgroup_invocation_id) lane: u32) {`;
}

/**
 * WGSL type names of a subgroup-matrix shape's fragments, as every tensor-core kernel here uses
 * them: f16 left (K x M) and right (N x K) operands, an f32 result (N x M).
 */
export function subgroupMatrixTypes(m: { M: number; N: number; K: number }): {
  left: string;
  right: string;
  result: string;
} {
  return {
    left: `subgroup_matrix_left<f16, ${m.K}, ${m.M}>`,
    right: `subgroup_matrix_right<f16, ${m.N}, ${m.K}>`,
    result: `subgroup_matrix_result<f32, ${m.N}, ${m.M}>`,
  };
}

/**
 * WGSL storing the four lanes of the vec4 `value` to `dest[at]` .. `dest[at + 3u]`: staging loads
 * vec4s from storage, but a subgroup-matrix load reads workgroup memory only as a scalar array.
 */
export function storeVec4Wgsl(dest: string, at: string, value: string): string {
  return ['x', 'y', 'z', 'w']
    .map((lane, i) => `${dest}[${at}${i ? ` + ${i}u` : ''}] = ${value}.${lane};`)
    .join(' ');
}

/**
 * WGSL storing a loaded row vector whole into `dest`, an `array<vec4<f16>>`, at vector `at`: a
 * `vec4<f16>` as it is, the eight f16 of a `vec4<u32>` (`wide`) as two. One or two stores where
 * an f16 array takes four or eight.
 */
export function storeVectorsWgsl(dest: string, at: string, value: string, wide: boolean | undefined): string {
  return wide
    ? `${dest}[${at}] = bitcast<vec4<f16>>(${value}.xy); ${dest}[${at} + 1u] = bitcast<vec4<f16>>(${value}.zw);`
    : `${dest}[${at}] = ${value};`;
}

/** The four components of a WGSL vector, in order. */
export const COMPONENTS = ['x', 'y', 'z', 'w'] as const;

/** WGSL storing the eight f16 packed in a `vec4<u32>` `value` (one 16-byte load) to `dest[at ..]`. */
export function storeWideWgsl(dest: string, at: string, value: string): string {
  return ['x', 'y', 'z', 'w']
    .map((lane, i) => {
      const half = `bitcast<vec2<f16>>(${value}.${lane})`;
      return `${dest}[${at}${i ? ` + ${2 * i}u` : ''}] = ${half}.x; ${dest}[${at} + ${2 * i + 1}u] = ${half}.y;`;
    })
    .join(' ');
}

/**
 * The vector a row staging loads from a tensor of f16: four halves as a `vec4<f16>` (8 bytes), or
 * with 16-byte loads (`wide`) eight packed in a `vec4<u32>`. Kernels bind the tensor as an array
 * of it.
 */
export function rowVectorType(wide: boolean | undefined): string {
  return wide ? 'vec4<u32>' : 'vec4<f16>';
}

/**
 * WGSL folding the per-lane `value` over `lanes` lanes (a power of two) of a subgroup with `op`
 * (e.g. max or +), by shuffles at lane distances `laneStride` · 1, 2, 4 …: afterwards every lane of
 * the group holds the whole fold. The lanes sharing a row of the tensor-core kernels' softmax.
 */
export function shuffleFoldWgsl(
  value: string,
  lanes: number,
  op: (a: string, b: string) => string,
  laneStride = 1,
): string {
  return Array.from({ length: Math.log2(lanes) }, (_, b) => b)
    .map((b) => `${value} = ${op(value, `subgroupShuffleXor(${value}, ${laneStride * 2 ** b}u)`)};`)
    .join(' ');
}

/**
 * One set of values a cooperative staging step moves: `count` elements over the step's invocations,
 * invocation `li` taking elements `${index}${k} = li + k · threads`. `load(k, inRange)` declares the
 * values of step k (names suffixed by the index and k, so that sets do not collide) and must put
 * `inRange` (empty, or `${index}${k} < count && `) in front of its condition; `store(k)` writes them.
 * A set that can be prefetched (see {@link prefetchedStagingSetsWgsl}) also has `declare(k)`, the
 * declaration alone, and then assigns without declaring when `load` is called with `declare` false.
 */
export interface StagingSet {
  count: number;
  /** Name of the set's element indices, `e` by default. */
  index?: string;
  load: (k: number, inRange: string, declare?: boolean) => string;
  store: (k: number) => string;
  declare?: (k: number) => string;
}

/**
 * A cooperative staging step, unrolled, of one or more sets: every load of every set comes before
 * the first store. A loop of load-then-store waits out the global-memory latency once per element,
 * this once per step (it doubled the flash kernels' speed on the H100); two sets staged one after
 * the other wait twice. Each `store` runs in a block of its own, under the set's bound where its
 * last step overhangs `count`. The whole is one block, so that several stagings can share a scope.
 */
export function unrolledStagingSetsWgsl(threads: number, sets: StagingSet[]): string {
  const parts = sets.map((set) => stagingSteps(threads, set, false));
  return `{
${parts.flatMap((p) => p.loads).join('\n')}
${parts.flatMap((p) => p.stores).join('\n')}
  }`;
}

/**
 * Each step's loads (its index, then `load`) and stores (under the bound where it overhangs) of one
 * set; `storesNameIndex` where the stores are not in the loads' scope.
 */
function stagingSteps(
  threads: number,
  { count, index = 'e', load, store }: StagingSet,
  storesNameIndex: boolean,
) {
  const steps = Array.from({ length: Math.ceil(count / threads) }, (_, k) => k);
  const overhangs = (k: number) => (k + 1) * threads > count;
  return {
    steps,
    loads: steps.map(
      (k) =>
        `    let ${index}${k} = li + ${k * threads}u;\n${load(k, overhangs(k) ? `${index}${k} < ${count}u && ` : '')}`,
    ),
    stores: steps.map(
      (k) =>
        `    ${overhangs(k) ? `if (${storesNameIndex ? `li + ${k * threads}u` : `${index}${k}`} < ${count}u) ` : ''}{\n${storesNameIndex ? `    let ${index}${k} = li + ${k * threads}u;\n` : ''}${store(k)}\n    }`,
    ),
  };
}

/** A staging step split in two: see {@link prefetchedStagingSetsWgsl}. */
export interface PrefetchedStaging {
  declarations: string;
  loads: string;
  stores: string;
}

/**
 * A staging step of one or more sets split in two, for a tile prefetched while the previous one is
 * computed: `declarations` (each set's `declare(k)` per step, at function scope), `loads`
 * (assigning those values) and `stores`, each a block of its own that names its indices, so that
 * the loads can be issued a whole tile before the stores.
 */
export function prefetchedStagingSetsWgsl(threads: number, sets: StagingSet[]): PrefetchedStaging {
  const parts = sets.map((set) => {
    const { declare } = set;
    if (!declare) throw new Error('prefetchedStagingSetsWgsl: a set without declare() cannot be prefetched');
    const load = (k: number, inRange: string) => set.load(k, inRange, false);
    return { declare, ...stagingSteps(threads, { ...set, load }, true) };
  });
  return {
    declarations: parts.flatMap((p) => p.steps.map((k) => `  ${p.declare(k)}`)).join('\n'),
    loads: `{\n${parts.flatMap((p) => p.loads).join('\n')}\n  }`,
    stores: `{\n${parts.flatMap((p) => p.stores).join('\n')}\n  }`,
  };
}

/** {@link unrolledStagingSetsWgsl} of a single set whose indices are named `e`. */
export function unrolledStagingWgsl(
  count: number,
  threads: number,
  load: (k: number, inRange: string) => string,
  store: (k: number) => string,
): string {
  return unrolledStagingSetsWgsl(threads, [{ count, load, store }]);
}

/**
 * Elements of `dtype` in 16 bytes: what an invocation of a memory-bound kernel moves per
 * `vec4<u32>` access (16-byte accesses are what reach the memory's bandwidth; one f16 per
 * invocation reached a fifth of it).
 */
export function vec4uElements(dtype: Dtype): number {
  return dtype === 'f16' ? 8 : 4;
}

/**
 * The f32 `vec4f`s in `x`, a `vec4<u32>` holding 16 bytes of `dtype`: two for f16 (the xy and zw
 * halves are a `vec4<f16>` each), one for f32.
 */
export function unpackVec4uWgsl(dtype: Dtype, x: string): string[] {
  return dtype === 'f16'
    ? ['xy', 'zw'].map((half) => `vec4f(bitcast<vec4<f16>>(${x}.${half}))`)
    : [`bitcast<vec4f>(${x})`];
}

/** The `vec4<u32>` holding `parts` (as many `vec4f`s as {@link unpackVec4uWgsl} gives) in `dtype`. */
export function packVec4uWgsl(dtype: Dtype, parts: string[]): string {
  return dtype === 'f16'
    ? `vec4u(${parts.map((v) => `bitcast<vec2u>(vec4<f16>(${v}))`).join(', ')})`
    : `bitcast<vec4u>(${parts[0]})`;
}

/**
 * Ceilings of this adapter, measured in the same process as the bench so that every table can say
 * how close a kernel gets: tensor-core multiply-accumulate throughput with operands in registers,
 * and streaming bandwidth (read + write).
 */
import {
  computeAttributesWgsl,
  dispatch,
  enables,
  type Gpu,
  matrixSubgroupSize,
  measure,
  preferredMatrixConfig,
  subgroupMatrixTypes,
  Tensor,
} from '@webattn/core';

/** Measured ceilings; a probe the adapter cannot run is absent. */
export interface Ceilings {
  tensorCoreTflops?: number;
  streamingGBps?: number;
}

const MMA_ITERS = 4096;
const MMA_SUBGROUPS = 4;

/** WGSL of the tensor-core probe: four independent accumulators per subgroup, fed from registers. */
export function tensorCoreProbeWgsl(
  m: { M: number; N: number; K: number },
  subgroup: { subgroupSize: number; pinSubgroupSize: boolean },
): string {
  const { left, right, result } = subgroupMatrixTypes(m);
  return `${enables({ subgroupMatrix: true, subgroupSizeControl: subgroup.pinSubgroupSize })}
@group(0) @binding(0) var<storage, read_write> out: array<f32>;
${computeAttributesWgsl(MMA_SUBGROUPS * subgroup.subgroupSize, subgroup)}
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(subgroup_id) sg: u32) {
  let a = ${left}(f16(0.001));
  let b = ${right}(f16(0.001));
  var c0 = ${result}();
  var c1 = c0; var c2 = c0; var c3 = c0;
  for (var i = 0u; i < ${MMA_ITERS}u; i++) {
    c0 = subgroupMatrixMultiplyAccumulate(a, b, c0);
    c1 = subgroupMatrixMultiplyAccumulate(a, b, c1);
    c2 = subgroupMatrixMultiplyAccumulate(a, b, c2);
    c3 = subgroupMatrixMultiplyAccumulate(a, b, c3);
  }
  // Stored so the compiler cannot drop the loop; every workgroup writes the same slot.
  subgroupMatrixStore<row_major>(&out, 0u, c0, ${m.N}u);
  subgroupMatrixStore<row_major>(&out, 0u, c1, ${m.N}u);
  subgroupMatrixStore<row_major>(&out, 0u, c2, ${m.N}u);
  subgroupMatrixStore<row_major>(&out, 0u, c3, ${m.N}u);
}
`;
}

/** WGSL of the streaming probe: one vec4<f32> read and one written per thread. */
export const STREAM_PROBE_WGSL = `@group(0) @binding(0) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> dst: array<vec4<f32>>;
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) id: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = id.x + id.y * nwg.x * 256u;
  if (i < arrayLength(&src)) { dst[i] = src[i] * 1.0001; }
}
`;

/** Runs both probes; `small` scales them down for CPU adapters. */
export async function measureCeilings(gpu: Gpu, small: boolean): Promise<Ceilings> {
  const ceilings: Ceilings = {};
  const matrix = preferredMatrixConfig(gpu.caps);
  if (matrix && gpu.caps.tiers.includes('subgroup-matrix')) {
    const workgroups = 132 * 16; // enough to fill the largest GPUs several times over
    using out = Tensor.empty(gpu, [matrix.M * matrix.N]);
    const code = tensorCoreProbeWgsl(matrix, matrixSubgroupSize(gpu.caps));
    const m = await measure(
      gpu,
      () => dispatch(gpu, { label: 'tensor-core probe', code, buffers: [out], workgroups }),
      {
        warmup: 2,
        iters: 5,
      },
    );
    const flops = workgroups * MMA_SUBGROUPS * MMA_ITERS * 4 * 2 * matrix.M * matrix.N * matrix.K;
    ceilings.tensorCoreTflops = flops / (m.min * 1e-3) / 1e12;
  }
  const elements = small ? 1 << 22 : 1 << 28; // 16 MiB or 1 GiB of f32
  const limit = gpu.caps.limits.maxStorageBufferBindingSize / 4;
  const n = Math.min(elements, Math.floor(limit / 4) * 4);
  using src = Tensor.empty(gpu, [n]);
  using dst = Tensor.empty(gpu, [n]);
  const m = await measure(
    gpu,
    () =>
      dispatch(gpu, {
        label: 'stream probe',
        code: STREAM_PROBE_WGSL,
        buffers: [src, dst],
        workgroups: Math.ceil(n / 4 / 256),
      }),
    { warmup: 2, iters: 5 },
  );
  ceilings.streamingGBps = (2 * n * 4) / (m.min * 1e-3) / 1e9;
  return ceilings;
}

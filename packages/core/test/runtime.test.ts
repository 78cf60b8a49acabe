import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  dispatch,
  type Gpu,
  measure,
  packParams,
  paramsStruct,
  splitWorkgroups,
  Tensor,
  WORKGROUP_INDEX_WGSL,
} from '../src/index.js';
import { testGpu } from '../src/testing.js';
import { PassTimestamps } from '../src/timing.js';

describe('workgroup splitting', () => {
  it('keeps counts within the per-dimension limit and covers every workgroup', () => {
    for (const count of [1, 65535, 65536, 100000, 65535 * 3 + 1, 10_000_000]) {
      const [x, y] = splitWorkgroups(count, 65535);
      expect(x).toBeLessThanOrEqual(65535);
      expect(y).toBeLessThanOrEqual(65535);
      expect(x * y).toBeGreaterThanOrEqual(count);
      expect(x * (y - 1)).toBeLessThan(count);
    }
  });
});

describe('uniform parameters', () => {
  it('pack in declaration order, padded to 16 bytes', () => {
    const layout = [
      ['n', 'u32'],
      ['scale', 'f32'],
      ['offset', 'i32'],
    ] as const;
    const view = new DataView(packParams(layout, { n: 7, scale: 0.5, offset: -3 }));
    expect(view.byteLength).toBe(16);
    expect([view.getUint32(0, true), view.getFloat32(4, true), view.getInt32(8, true)]).toEqual([7, 0.5, -3]);
    expect(paramsStruct(layout)).toBe('struct Params {\n  n: u32,\n  scale: f32,\n  offset: i32,\n}');
    expect(() => packParams(layout, { n: 1 })).toThrow(/no value for 'scale'/);
  });
});

describe('dispatch and timing on SwiftShader', () => {
  let gpu: Gpu;
  beforeAll(async () => {
    gpu = await testGpu();
  });
  afterAll(() => gpu.destroy());

  const layout = [['count', 'u32']] as const;
  const code = `${paramsStruct(layout)}
@group(0) @binding(0) var<storage, read_write> out: array<u32>;
@group(0) @binding(1) var<uniform> p: Params;
${WORKGROUP_INDEX_WGSL}
@compute @workgroup_size(1)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = workgroupIndex(wid, nwg);
  if (i >= p.count) { return; }
  out[i] = i + 1u;
}`;

  it('runs more workgroups than one dimension allows, each exactly once', async () => {
    const count = gpu.caps.limits.maxComputeWorkgroupsPerDimension + 4465;
    using out = Tensor.zeros(gpu, [count + 8]);
    await dispatch(gpu, {
      label: 'index',
      code,
      buffers: [out],
      params: { layout, values: { count } },
      workgroups: count,
    });
    const bits = new Uint32Array((await out.read()).buffer);
    let wrong = 0;
    for (let i = 0; i < count; i++) if (bits[i] !== i + 1) wrong++;
    expect(wrong).toBe(0);
    expect(Array.from(bits.subarray(count))).toEqual(new Array(8).fill(0)); // nothing past the count
  });

  it('reuses a bind group for the same pipeline and buffers, and makes a new one for others', async () => {
    using a = Tensor.zeros(gpu, [64]);
    using b = Tensor.zeros(gpu, [64]);
    const create = gpu.device.createBindGroup.bind(gpu.device);
    let created = 0;
    gpu.device.createBindGroup = (descriptor) => {
      created++;
      return create(descriptor);
    };
    const launch = (out: Tensor, count: number) =>
      dispatch(gpu, {
        label: 'index',
        code,
        buffers: [out],
        params: { layout, values: { count } },
        workgroups: count,
      });
    try {
      await launch(a, 8);
      await launch(a, 8);
      expect(created).toBe(1);
      // Another buffer, or other parameters (another uniform buffer): another bind group.
      await launch(b, 8);
      await launch(a, 16);
      expect(created).toBe(3);
      await launch(b, 8);
      expect(created).toBe(3);
    } finally {
      gpu.device.createBindGroup = create;
    }
    const bits = (t: Tensor) => t.read().then((x) => Array.from(new Uint32Array(x.buffer).subarray(0, 17)));
    expect(await bits(a)).toEqual([...Array.from({ length: 16 }, (_, i) => i + 1), 0]);
    expect(await bits(b)).toEqual([...Array.from({ length: 8 }, (_, i) => i + 1), ...new Array(9).fill(0)]);
  });

  it('lays out each timed pass in order on the GPU clock', async () => {
    expect(gpu.caps.timestamps).toBe(true);
    using out = Tensor.zeros(gpu, [1024]);
    const launch = (label: string) =>
      dispatch(gpu, {
        label,
        code,
        buffers: [out],
        params: { layout, values: { count: 1024 } },
        workgroups: 1024,
      });
    await gpu.sync();
    const timestamps = new PassTimestamps(gpu);
    gpu.recorder = timestamps;
    await launch('first');
    await launch('second');
    gpu.recorder = null;
    const timed = await timestamps.span();
    expect(timed?.passes.map((pass) => pass.label)).toEqual(['first', 'second']);
    const [first, second] = timed!.passes;
    expect(first!.start).toBe(0);
    expect(first!.end).toBeGreaterThan(first!.start);
    expect(second!.start).toBeGreaterThanOrEqual(first!.end);
    expect(second!.end).toBeCloseTo(timed!.ms, 9);
    expect(timed!.kernels.first).toBeCloseTo(first!.end - first!.start, 9);
  });

  it('measures with GPU timestamps where the adapter has them', async () => {
    using out = Tensor.zeros(gpu, [1024]);
    const m = await measure(
      gpu,
      () =>
        dispatch(gpu, {
          label: 'index',
          code,
          buffers: [out],
          params: { layout, values: { count: 1024 } },
          workgroups: 1024,
        }),
      { warmup: 1, iters: 3 },
    );
    expect(m.samples).toHaveLength(3);
    expect(m.source).toBe(gpu.caps.timestamps ? 'timestamp' : 'wall');
    expect(m.min).toBeGreaterThan(0);
    expect(m.min).toBeLessThanOrEqual(m.median);
    expect(m.median).toBeLessThanOrEqual(m.max);
    if (gpu.caps.timestamps) {
      // Per-kernel times: one label here, within its run's span.
      expect(m.kernels).toHaveLength(3);
      m.kernels!.forEach((run, i) => {
        expect(Object.keys(run)).toEqual(['index']);
        expect(run.index).toBeGreaterThan(0);
        expect(run.index).toBeLessThanOrEqual(m.samples[i]! + 1e-9);
      });
    }
    const wall = await measure(gpu, () => undefined, { warmup: 0, iters: 2, wallClock: true });
    expect(wall.kernels).toBeUndefined();
    expect(wall.source).toBe('wall');
    // A budget smaller than one run leaves one warm-up and one timed run.
    let runs = 0;
    const slow = await measure(
      gpu,
      async () => {
        runs++;
        await new Promise((resolve) => setTimeout(resolve, 5));
      },
      { warmup: 3, iters: 10, budgetMs: 1, wallClock: true },
    );
    expect(slow.samples).toHaveLength(1);
    expect(runs).toBe(2);
  });
});

// Diagnostic (not the bench): what a compute pass costs on the GPU by itself, and whether the
// bench's per-pass timestamps add to the spans it reports. Short kernels keep showing a floor in
// the bench's per-kernel times (the MLA decode's combine and its row padding, 14-24 us whatever
// their work); this separates the pass from the kernel and the timestamps from both.
//  1. A kernel of one workgroup, N times, each dispatch its own pass (as core's dispatch encodes
//     them), with timestamps on every pass (as the bench times) and without (GPU time of the
//     whole submit from the host's clock: submit to onSubmittedWorkDone, the recording excluded).
//  2. The same N dispatches in one pass, without timestamps; once all writing one buffer (a barrier
//     between each two) and once each reading only (no hazard, no barrier).
//  3. The MLA decode at batch 32 x 4096 (the bench's row for #6's bar): the bench's timestamped span
//     against the host-clock GPU time of R steps recorded into one submit without timestamps.
// `pnpm gpu:bundle` builds it into .gpu-kit/pass-floor.mjs; on the GPU machine:
//   node .gpu-kit/pass-floor.mjs

import { createGpu, type Gpu, measure, Tensor } from '../../packages/core/src/index.js';
import { mlaDecodeProblem } from './mla-problem.js';

const gpu = await createGpu({ fast: true, maxPooledBytes: 16 * 2 ** 30 });

const WRITING = `@group(0) @binding(0) var<storage, read_write> x: array<u32>;
@compute @workgroup_size(64)
fn main(@builtin(local_invocation_index) li: u32) { if (li == 0u) { x[0] = x[0] + 1u; } }`;
const READING = `@group(0) @binding(0) var<storage, read> x: array<u32>;
@group(0) @binding(1) var<storage, read_write> y: array<u32>;
@compute @workgroup_size(64)
fn main(@builtin(local_invocation_index) li: u32) { if (li == 100000u) { y[0] = x[0]; } }`;

/** Host-clock time of the GPU work `record` queues: recorded first, then submitted and awaited. */
async function gpuTimeOf(g: Gpu, record: () => Promise<void>): Promise<{ recordMs: number; gpuMs: number }> {
  await g.sync();
  const start = performance.now();
  await record();
  const recorded = performance.now();
  await g.sync();
  return { recordMs: recorded - start, gpuMs: performance.now() - recorded };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
const us = (ms: number) => `${(ms * 1000).toFixed(1)} us`;

using counter = Tensor.zeros(gpu, [64], 'f32');
using sink = Tensor.zeros(gpu, [64], 'f32');
const writing = await gpu.pipelines.get(WRITING, 'pass-floor writing');
const reading = await gpu.pipelines.get(READING, 'pass-floor reading');
const writingGroup = gpu.device.createBindGroup({
  layout: writing.getBindGroupLayout(0),
  entries: [{ binding: 0, resource: { buffer: counter.buffer } }],
});
const readingGroup = gpu.device.createBindGroup({
  layout: reading.getBindGroupLayout(0),
  entries: [
    { binding: 0, resource: { buffer: counter.buffer } },
    { binding: 1, resource: { buffer: sink.buffer } },
  ],
});

/** N dispatches of one workgroup: each in its own pass, or all in one pass. */
function record(n: number, onePass: boolean, kind: 'writing' | 'reading') {
  const [pipeline, group] = kind === 'writing' ? [writing, writingGroup] : [reading, readingGroup];
  const encoder = gpu.encoder();
  let pass: GPUComputePassEncoder | undefined;
  for (let i = 0; i < n; i++) {
    if (!pass || !onePass) {
      const writes = gpu.recorder?.passWrites(`pass-floor ${kind}`);
      pass = encoder.beginComputePass(writes ? { timestampWrites: writes } : {});
    }
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, group);
    pass.dispatchWorkgroups(1);
    if (!onePass || i === n - 1) pass.end();
  }
}

const N = 512;
for (let round = 0; round < 2; round++) {
  for (const kind of ['writing', 'reading'] as const) {
    // Timestamped as the bench times: a span over N passes of their own.
    const stamped = await measure(gpu, () => record(N, false, kind), { warmup: 1, iters: 5 });
    const perPass = stamped.kernels?.map((k) => Object.values(k).reduce((a, b) => a + b, 0) / N) ?? [];
    console.log(
      `${kind}, ${N} passes, timestamped: span ${us(stamped.median / N)} per pass, inside the passes ${us(median(perPass))} per pass`,
    );
    for (const onePass of [false, true]) {
      const runs: number[] = [];
      for (let i = 0; i < 5; i++)
        runs.push((await gpuTimeOf(gpu, async () => record(N, onePass, kind))).gpuMs);
      console.log(
        `${kind}, ${N} dispatches ${onePass ? 'in one pass' : 'in passes of their own'}, no timestamps: ${us(median(runs) / N)} per dispatch (host clock, submit to done, over ${N})`,
      );
    }
  }
}

// The MLA decode: the bench's span against R steps in one submit without timestamps.
const problem = await mlaDecodeProblem(gpu, 32, 4096);
for (let round = 0; round < 2; round++) {
  const m = await problem.time();
  const kernels = m.kernels?.[0] ?? {};
  console.log(
    `mla decode batch 32 x 4096, timestamped span: ${us(m.median)} [${Object.entries(kernels)
      .map(([label, ms]) => `${label.split(' [')[0]} ${us(ms)}`)
      .join('; ')}]`,
  );
  for (const steps of [1, 10, 100]) {
    const runs: { recordMs: number; gpuMs: number }[] = [];
    for (let i = 0; i < 5; i++) {
      runs.push(
        await gpuTimeOf(gpu, async () => {
          for (let s = 0; s < steps; s++) await problem.step();
        }),
      );
    }
    console.log(
      `mla decode batch 32 x 4096, ${steps} steps in one submit, no timestamps: ${us(median(runs.map((r) => r.gpuMs)) / steps)} per step (host clock), recording ${us(median(runs.map((r) => r.recordMs)) / steps)} per step`,
    );
  }
}
problem.dispose();
gpu.destroy();

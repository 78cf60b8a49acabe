// Diagnostic (not the bench): the NSA forward's compute passes on the GPU's clock (the bench's
// reference config, b=1, hq=64, hkv=4, d=128, f16, 65536 tokens, tensor-core tier): each pass's
// start and end from the first pass's start, and the gap before it, so that the time the bench's
// span holds beyond the sum of its kernels (the passes' stage table) can be placed. With `decode`,
// the same for one decode step of a batch of 8 sequences of n cached tokens each (the bench's
// decode table; n = 16384 unless given).
// `pnpm gpu:bundle` builds it into .gpu-kit/nsa-timeline.mjs; on the GPU machine:
//   node .gpu-kit/nsa-timeline.mjs [decode] [n]

import { randomNormal } from '../../packages/core/src/index.js';
import { PassTimestamps } from '../../packages/core/src/timing.js';
import { disposeNsaForward, NsaCache, nsaDecode, nsaForward } from '../../packages/nsa/src/index.js';
import { nsaProblem } from './nsa-problem.js';

const decoding = process.argv.includes('decode');
// The decode step's cached tokens per sequence default to the bench's 16384.
const { n, gpu, c, q, k, v, g } = await nsaProblem(decoding ? 16384 : 65536);

/** One decode step for 8 sequences of `cached` tokens each, as the bench's decode table runs it. */
async function decodeStep(cached: number) {
  const batch = 8;
  const f16 = (shape: number[], seed: number) => randomNormal(gpu, shape, seed, { dtype: 'f16' });
  const cache = NsaCache.create(gpu, c, { batch, capacity: cached, dtype: 'f16' });
  const keys = await f16([batch * cached, c.kvHeads, c.headDim], 11);
  const values = await f16([batch * cached, c.kvHeads, c.vHeadDim], 12);
  await cache.append(keys, values, new Array<number>(batch).fill(cached));
  const query = await f16([batch, c.heads, c.headDim], 13);
  const gates = await f16([batch, c.heads, 3], 14);
  return async () => {
    const r = await nsaDecode(gpu, cache, query, gates);
    r.o.dispose();
    r.selection.dispose();
  };
}
const run = decoding
  ? await decodeStep(n)
  : async () => disposeNsaForward(await nsaForward(gpu, c, q, k, v, g, { tier: 'subgroup-matrix' }));
// Warm-up: pipelines compiled, the pool's buffers allocated.
await run();
await run();
await gpu.sync();
for (let iteration = 0; iteration < 3; iteration++) {
  const timestamps = new PassTimestamps(gpu);
  gpu.recorder = timestamps;
  await run();
  gpu.recorder = null;
  gpu.submit();
  const timed = await timestamps.span();
  await gpu.sync();
  if (!timed) throw new Error('nsa-timeline: no pass was timed (timestamps missing?)');
  let kernels = 0;
  const lines = timed.passes.map(({ label, start, end }, i) => {
    const gap = i > 0 ? start - timed.passes[i - 1]!.end : 0;
    kernels += end - start;
    return `  ${start.toFixed(3).padStart(9)} -> ${end.toFixed(3).padStart(9)} ms (gap before ${gap.toFixed(3)})  ${label}`;
  });
  console.log(
    `${decoding ? `decode step, batch 8 x ${n}` : `n=${n} forward`}, iteration ${iteration}: span ${timed.ms.toFixed(2)} ms, kernels ${kernels.toFixed(2)} ms`,
  );
  console.log(lines.join('\n'));
}
gpu.destroy();

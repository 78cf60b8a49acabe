/** @webattn/core's flashAttention: causal GQA, sizes off the kernels' tile sizes. */
import { flashAttention, Tensor, tierDtype } from '@webattn/core';
import { attentionForward, compare, randn, toleranceFor } from '@webattn/reference';
import { type DemoOp, disposeAll, readAll, sizeOf } from './op.js';

const S = { batch: 1, n: 37, nk: 37, hq: 4, hkv: 2, d: 32, dv: 32, causal: true };

/** flashAttention against attentionForward. */
export const flashOp: DemoOp = {
  id: 'flash',
  label: '@webattn/core flashAttention',
  shape: `b=${S.batch} n=${S.n} hq=${S.hq} hkv=${S.hkv} d=${S.d} causal`,
  setup(gpu, tier) {
    const dtype = tierDtype(tier);
    const qs = [S.batch, S.n, S.hq, S.d];
    const ks = [S.batch, S.nk, S.hkv, S.d];
    const vs = [S.batch, S.nk, S.hkv, S.dv];
    const q = Tensor.from(gpu, randn(sizeOf(qs), 1), qs, dtype);
    const k = Tensor.from(gpu, randn(sizeOf(ks), 2), ks, dtype);
    const v = Tensor.from(gpu, randn(sizeOf(vs), 3), vs, dtype);
    const run = () => flashAttention(gpu, q, k, v, { causal: S.causal, tier });
    return {
      async launch() {
        const { o, lse } = await run();
        await gpu.sync();
        disposeAll([o, lse]);
      },
      async check() {
        const { o, lse } = await run();
        try {
          const [hq, hk, hv, ho, hlse] = await readAll([q, k, v, o, lse]);
          const ref = attentionForward(hq!, hk!, hv!, S);
          return [
            { output: 'o', comparison: compare(ref.o, ho!, toleranceFor(dtype)) },
            { output: 'lse', comparison: compare(ref.lse, hlse!, toleranceFor(dtype)) },
          ];
        } finally {
          disposeAll([o, lse]);
        }
      },
      dispose: () => disposeAll([q, k, v]),
    };
  },
};

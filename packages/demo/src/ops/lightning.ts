/** @webattn/linear-attn's lightningAttention: chunkwise decayed linear attention with GQA. */
import { Tensor, tierDtype } from '@webattn/core';
import { disposeLightningContext, lightningAttention } from '@webattn/linear-attn';
import {
  compare,
  magnitudeOf,
  randn,
  lightningAttention as referenceLightning,
  toleranceFor,
} from '@webattn/reference';
import { type DemoOp, disposeAll, readAll } from './op.js';

const S = { batch: 2, n: 45, hq: 4, hkv: 2, dk: 16, dv: 16, decays: [0.999, 0.99, 0.9, 0.5] };

/** lightningAttention against the reference's quadratic form: o and the final state. */
export const lightningOp: DemoOp = {
  id: 'lightning',
  label: '@webattn/linear-attn lightningAttention',
  shape: `b=${S.batch} n=${S.n} hq=${S.hq} hkv=${S.hkv} dk=${S.dk} dv=${S.dv} decays=${S.decays.join('/')}`,
  setup(gpu, tier) {
    const dtype = tierDtype(tier);
    const { batch, n, hq, hkv, dk, dv, decays } = S;
    const q = Tensor.from(gpu, randn(batch * n * hq * dk, 71), [batch, n, hq, dk], dtype);
    const k = Tensor.from(gpu, randn(batch * n * hkv * dk, 72), [batch, n, hkv, dk], dtype);
    const v = Tensor.from(gpu, randn(batch * n * hkv * dv, 73), [batch, n, hkv, dv], dtype);
    const run = () => lightningAttention(gpu, q, k, v, { decays, tier });
    return {
      async launch() {
        const result = await run();
        await gpu.sync();
        disposeAll([result.o, result.finalState]);
        disposeLightningContext(result.ctx);
      },
      async check() {
        const result = await run();
        try {
          const [hq_, hk, hv, o, state] = await readAll([q, k, v, result.o, result.finalState]);
          const ref = referenceLightning({ q: hq_!, k: hk!, v: hv!, decays }, { batch, n, hq, hkv, dk, dv });
          // The state accumulates in f32 but over the inputs' precision: held to the tier's dtype.
          return [
            { output: 'o', comparison: compare(ref.o, o!, toleranceFor(dtype, magnitudeOf(ref.o))) },
            {
              output: 'finalState',
              comparison: compare(ref.finalState, state!, toleranceFor(dtype, magnitudeOf(ref.finalState))),
            },
          ];
        } finally {
          disposeAll([result.o, result.finalState]);
          disposeLightningContext(result.ctx);
        }
      },
      dispose: () => disposeAll([q, k, v]),
    };
  },
};

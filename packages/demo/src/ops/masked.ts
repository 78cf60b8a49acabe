/** @webattn/linear-attn's maskedLinearAttention: the fused kernel under a per-head causal 0/1 mask. */
import { Tensor, tierDtype } from '@webattn/core';
import { maskedLinearAttention } from '@webattn/linear-attn';
import {
  compare,
  magnitudeOf,
  randn,
  maskedLinearAttention as referenceMasked,
  toleranceFor,
} from '@webattn/reference';
import { type DemoOp, disposeAll, readAll } from './op.js';

const S = { batch: 1, n: 30, hq: 4, hkv: 2, d: 16 };

/** A causal 0/1 mask `[1, hq, n, n]`, with every other head also dropping the diagonal. */
function causalMask(n: number, heads: number): Float32Array {
  const m = new Float32Array(heads * n * n);
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) m[(h * n + i) * n + j] = j < i || (j === i && h % 2 === 0) ? 1 : 0;
    }
  }
  return m;
}

/** maskedLinearAttention against the reference's masked form. */
export const maskedOp: DemoOp = {
  id: 'masked',
  label: '@webattn/linear-attn maskedLinearAttention',
  shape: `b=${S.batch} n=${S.n} hq=${S.hq} hkv=${S.hkv} d=${S.d} mask [1,${S.hq},n,n] causal`,
  setup(gpu, tier) {
    const dtype = tierDtype(tier);
    const { batch, n, hq, hkv, d } = S;
    // Scaled so that sums of n products stay O(1) and f16 storage keeps its relative precision.
    const scale = 1 / Math.sqrt(d * n);
    const q = Tensor.from(gpu, randn(batch * n * hq * d, 61, scale), [batch, n, hq, d], dtype);
    const k = Tensor.from(gpu, randn(batch * n * hkv * d, 62), [batch, n, hkv, d], dtype);
    const v = Tensor.from(gpu, randn(batch * n * hkv * d, 63), [batch, n, hkv, d], dtype);
    const m = Tensor.from(gpu, causalMask(n, hq), [1, hq, n, n], dtype);
    const run = () => maskedLinearAttention(gpu, q, k, v, m, { tier });
    return {
      async launch() {
        const { o } = await run();
        await gpu.sync();
        o.dispose();
      },
      async check() {
        const { o } = await run();
        try {
          const [hq_, hk, hv, hm, ho] = await readAll([q, k, v, m, o]);
          const ref = referenceMasked(hq_!, hk!, hv!, hm!, {
            batch,
            n,
            hq,
            hkv,
            dk: d,
            dv: d,
            maskBatch: 1,
            maskHeads: hq,
          });
          return [{ output: 'o', comparison: compare(ref, ho!, toleranceFor(dtype, magnitudeOf(ref))) }];
        } finally {
          o.dispose();
        }
      },
      dispose: () => disposeAll([q, k, v, m]),
    };
  },
};

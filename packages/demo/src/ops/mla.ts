/** @webattn/mla's mlaAttention: multi-token decode over a dense latent cache, two sequences. */
import { Tensor, tierDtype } from '@webattn/core';
import { mlaAttention } from '@webattn/mla';
import { compare, mlaAbsorbedAttention, randn, toleranceFor } from '@webattn/reference';
import { type DemoOp, disposeAll, readAll } from './op.js';

const S = { heads: 4, r: 32, dr: 16, dv: 16, nq: 2, lengths: [40, 17] };

/** mlaAttention against mlaAbsorbedAttention. */
export const mlaOp: DemoOp = {
  id: 'mla',
  label: '@webattn/mla mlaAttention',
  shape: `h=${S.heads} r=${S.r} dr=${S.dr} dv=${S.dv} nq=${S.nq} lengths=${S.lengths.join('/')}`,
  setup(gpu, tier) {
    const dtype = tierDtype(tier);
    const { heads, r, dr, dv, nq, lengths } = S;
    const b = lengths.length;
    const nk = Math.max(...lengths);
    const scale = (r / 4 + dr) ** -0.5;
    const ql = Tensor.from(gpu, randn(b * nq * heads * r, 61), [b, nq, heads, r], dtype);
    const qp = Tensor.from(gpu, randn(b * nq * heads * dr, 62), [b, nq, heads, dr], dtype);
    const c = Tensor.from(gpu, randn(b * nk * r, 63), [b, nk, r], dtype);
    const k = Tensor.from(gpu, randn(b * nk * dr, 64), [b, nk, dr], dtype);
    const w = Tensor.from(gpu, randn(heads * r * dv, 65, 1 / Math.sqrt(r)), [heads, r, dv], dtype);
    const run = () => mlaAttention(gpu, ql, qp, c, k, w, lengths, { scale, tier });
    return {
      async launch() {
        const o = await run();
        await gpu.sync();
        o.dispose();
      },
      async check() {
        const o = await run();
        try {
          const [hql, hqp, hc, hk, hw, ho] = await readAll([ql, qp, c, k, w, o]);
          const ref = mlaAbsorbedAttention(hql!, hqp!, hc!, hk!, hw!, lengths, {
            nq,
            nk,
            heads,
            kvLoraRank: r,
            qkRopeHeadDim: dr,
            vHeadDim: dv,
            scale,
          });
          return [{ output: 'o', comparison: compare(ref, ho!, toleranceFor(dtype)) }];
        } finally {
          o.dispose();
        }
      },
      dispose: () => disposeAll([ql, qp, c, k, w]),
    };
  },
};

/** @webattn/nsa's nsaForward: a small configuration where all three branches have work. */
import { Tensor, tierDtype } from '@webattn/core';
import { disposeNsaForward, nsaForward, readSelection, resolveNsaConfigFromReference } from '@webattn/nsa';
import { compare, randn, nsaForward as referenceNsaForward, toleranceFor } from '@webattn/reference';
import { type DemoOp, disposeAll, readAll } from './op.js';

const S = { batch: 1, n: 29, hq: 4, hkv: 2, d: 16 };
const SMALL = {
  kernelSize: 4,
  stride: 2,
  selectSize: 8,
  topN: 3,
  windowSize: 6,
  initBlocks: 1,
  localBlocks: 2,
};

/** nsaForward against the reference's nsaForward on the GPU's own selection. */
export const nsaOp: DemoOp = {
  id: 'nsa',
  label: '@webattn/nsa nsaForward',
  shape: `b=${S.batch} n=${S.n} hq=${S.hq} hkv=${S.hkv} d=${S.d} block=${SMALL.selectSize} top=${SMALL.topN} window=${SMALL.windowSize}`,
  setup(gpu, tier) {
    const dtype = tierDtype(tier);
    const { batch, n, hq, hkv, d } = S;
    const config = resolveNsaConfigFromReference({ heads: hq, kvHeads: hkv, headDim: d }, SMALL);
    const q = Tensor.from(gpu, randn(batch * n * hq * d, 11), [batch, n, hq, d], dtype);
    const k = Tensor.from(gpu, randn(batch * n * hkv * d, 12), [batch, n, hkv, d], dtype);
    const v = Tensor.from(gpu, randn(batch * n * hkv * d, 13), [batch, n, hkv, d], dtype);
    const g = Tensor.from(gpu, randn(batch * n * hq * 3, 14), [batch, n, hq, 3], dtype);
    const run = () => nsaForward(gpu, config, q, k, v, g, { tier });
    return {
      async launch() {
        const result = await run();
        await gpu.sync();
        disposeNsaForward(result);
      },
      async check() {
        const result = await run();
        try {
          const [hq_, hk, hv, hg, o] = await readAll([q, k, v, g, result.o]);
          // Near ties may select differently on the GPU: the reference runs on the GPU's selection.
          const selection = await readSelection(result.selection);
          const ref = referenceNsaForward(
            { q: hq_!, k: hk!, v: hv!, gates: hg!, selection },
            { batch, n, hq, hkv, dqk: d, dv: d, ...SMALL },
          );
          return [{ output: 'o', comparison: compare(ref.o, o!, toleranceFor(dtype)) }];
        } finally {
          disposeNsaForward(result);
        }
      },
      dispose: () => disposeAll([q, k, v, g]),
    };
  },
};

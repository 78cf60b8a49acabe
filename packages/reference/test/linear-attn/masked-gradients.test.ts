import { describe, expect, it } from 'vitest';
import { type MaskedLinearAttentionOptions, maskedLinearAttentionBackward } from '../../src/index.js';
import { maskedLinearAttentionF64 } from '../../src/linear-attn/masked-forward.js';
import { expectGradient } from '../nsa/helpers.js';
import { inner, randomBinaryMask, randomQkv, randomRealMask } from './helpers.js';

interface Case {
  name: string;
  options: MaskedLinearAttentionOptions;
  mask: 'real' | 'binary';
}

const CASES: Case[] = [
  {
    name: 'GQA 4:2, mask per head [1, h] broadcast over the batch, dk != dv',
    options: { batch: 2, n: 5, hq: 4, hkv: 2, dk: 3, dv: 2, maskBatch: 1, maskHeads: 4 },
    mask: 'real',
  },
  {
    name: "MQA (one kv head), mask per sequence [b, 1] broadcast over the heads, the seed's 0/1 mask",
    options: { batch: 2, n: 4, hq: 3, hkv: 1, dk: 2, dv: 3, maskBatch: 2, maskHeads: 1 },
    mask: 'binary',
  },
  {
    name: 'one mask [1, 1] for every sequence and head',
    options: { batch: 2, n: 3, hq: 2, hkv: 2, dk: 2, dv: 2, maskBatch: 1, maskHeads: 1 },
    mask: 'real',
  },
  {
    name: 'n = 1, full mask [b, h]',
    options: { batch: 2, n: 1, hq: 2, hkv: 1, dk: 3, dv: 2, maskBatch: 2, maskHeads: 2 },
    mask: 'real',
  },
];

describe('maskedLinearAttentionBackward', () => {
  for (const { name, options: s, mask } of CASES) {
    it(`matches central finite differences of L = Σ o · dO in every element of dq, dk, dv, dM: ${name}`, () => {
      const x = randomQkv(s, 61);
      const m = mask === 'real' ? randomRealMask(s, 62) : randomBinaryMask(s, 62);
      const grads = maskedLinearAttentionBackward(x.q, x.k, x.v, m, x.dO, s);
      const loss = () => inner(maskedLinearAttentionF64(x.q, x.k, x.v, m, s), x.dO);
      for (const [label, input, grad] of [
        ['dq', x.q, grads.dq],
        ['dk', x.k, grads.dk],
        ['dv', x.v, grads.dv],
        ['dm', m, grads.dm],
      ] as const) {
        expect(Math.max(...grad.map(Math.abs)), `${label} is not all zero`).toBeGreaterThan(0.01);
        expectGradient(label, input, grad, loss);
      }
    });
  }
});

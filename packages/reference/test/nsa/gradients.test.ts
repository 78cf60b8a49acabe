import { describe, expect, it } from 'vitest';
import { type NsaCompressor, type NsaOptions, nsaBackward } from '../../src/index.js';
import { nsaForwardF64 } from '../../src/nsa/forward.js';
import { expectGradient, randomCompressor, randomInputs, SMALL } from './helpers.js';

interface Case {
  name: string;
  options: NsaOptions;
  k: NsaCompressor['method'];
  v: NsaCompressor['method'];
}

const CASES: Case[] = [
  {
    // n = 13: not a multiple of the stride, the selection block or the window, and just above topN · L = 12.
    name: 'GQA group 4, dqk != dv, n just above topN · selectSize, weighted keys, sigmoid-mul values',
    options: { batch: 1, n: 13, hq: 4, hkv: 1, dqk: 3, dv: 2, ...SMALL },
    k: 'weighted',
    v: 'sigmoid-mul',
  },
  {
    name: 'GQA group 1, two sequences, Qwen variant (initBlocks 0, localBlocks 1), linear keys, swiglu values',
    options: { batch: 2, n: 11, hq: 2, hkv: 2, dqk: 2, dv: 3, ...SMALL, initBlocks: 0, localBlocks: 1 },
    k: 'linear',
    v: 'swiglu',
  },
  {
    name: 'n < kernelSize: no compressed block at all',
    options: { batch: 1, n: 3, hq: 2, hkv: 1, dqk: 2, dv: 2, ...SMALL },
    k: 'weighted',
    v: 'mean',
  },
  {
    name: 'two kv heads of group 2, 1 init + 2 local blocks, window 3, scale 0.8, mean keys, weighted values',
    options: {
      batch: 1,
      n: 14,
      hq: 4,
      hkv: 2,
      dqk: 3,
      dv: 2,
      ...SMALL,
      topN: 4,
      localBlocks: 2,
      windowSize: 3,
      scale: 0.8,
    },
    k: 'mean',
    v: 'weighted',
  },
];

/**
 * Gradients that are zero by the math, not by accident: with no compressed block nothing reaches the
 * compressors; and the key position embedding adds the same vector `(1/l) Σ_r weight[r] pe[r]` to every
 * compressed key, which shifts every score of a row equally and so leaves the softmax unchanged
 * (it only moves the selection, which carries no gradient).
 */
function expectedZero(label: string, options: NsaOptions): boolean {
  return label === 'dk.pe' || (label.includes('.') && options.n < options.kernelSize!);
}

describe('nsaBackward', () => {
  for (const { name, options, k, v } of CASES) {
    it(`matches central finite differences of L = Σ o · dO in every element: ${name}`, () => {
      const l = options.kernelSize!;
      const x = randomInputs(options, 7, {
        k: randomCompressor(k, l, options.dqk, 11),
        v: randomCompressor(v, l, options.dv, 13),
      });
      // No gradient flows through the selection, so the finite differences must not move it.
      const selection = nsaForwardF64(x, options).selection;
      const fixed = { ...x, selection };
      const grads = nsaBackward(fixed, x.dO, options);
      const loss = () => nsaForwardF64(fixed, options).o.reduce((sum, o, e) => sum + o * x.dO[e]!, 0);
      const checks: [string, Float64Array, ArrayLike<number> | undefined][] = [
        ['dq', x.q, grads.dq],
        ['dk', x.k, grads.dk],
        ['dv', x.v, grads.dv],
        ['dGates', x.gates, grads.dGates],
      ];
      for (const [side, compressor, paramGrads] of [
        ['k', fixed.kCompressor, grads.kCompressor],
        ['v', fixed.vCompressor, grads.vCompressor],
      ] as const) {
        if (compressor && compressor.method !== 'mean')
          checks.push([`d${side}.weight`, compressor.weight as Float64Array, paramGrads.weight]);
        if (compressor?.method === 'weighted')
          checks.push([`d${side}.pe`, compressor.pe as Float64Array, paramGrads.pe]);
        if (compressor?.method === 'mean') expect(paramGrads).toEqual({});
      }
      for (const [label, input, analytic] of checks) {
        expect(analytic, `${label} is returned`).toBeDefined();
        const largest = Math.max(...Array.from(analytic!, Math.abs));
        if (expectedZero(label, options)) expect(largest, `${label} is zero`).toBeLessThan(1e-12);
        else expect(largest, `${label} is not all zero`).toBeGreaterThan(1e-3);
        expectGradient(label, input, analytic!, loss);
      }
    });
  }
});

import { describe, expect, it } from 'vitest';
import {
  applyRope,
  DEEPSEEK_V2_ROPE,
  MINICPM3_MLA_DIMS,
  MINICPM3_ROPE,
  type MlaRope,
  mlaSoftmaxScale,
  randn,
  ropeFrequencies,
  yarnMscale,
} from '../../src/index.js';
import { complexInterleaved, expectClose, hfRotateHalf } from './helpers.js';

const DIM = 8;
const HEADS = 2;
const POSITIONS = [0, 1, 5, 1000];
const x = randn(POSITIONS.length * HEADS * DIM, 11);
const plain: MlaRope = { style: 'rotate-half', theta: 10000 };
const frequencies = ropeFrequencies(DIM, plain);

/** One `[dim]` vector of `[tokens, heads, dim]`. */
function vector(a: ArrayLike<number>, t: number, h: number): number[] {
  return Array.from(a).slice((t * HEADS + h) * DIM, (t * HEADS + h + 1) * DIM);
}

/** HF DeepSeek-V2's `view(d/2, 2).transpose` before its rotate_half: pair k goes to k and k + d/2. */
function deinterleave(v: number[]): number[] {
  return [...v.filter((_, i) => i % 2 === 0), ...v.filter((_, i) => i % 2 === 1)];
}

function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += a[i]! * b[i]!;
  return sum;
}

describe('applyRope', () => {
  it('rotate-half equals the HF formula x·cos + rotate_half(x)·sin', () => {
    const y = applyRope(x, POSITIONS, { heads: HEADS, style: 'rotate-half', frequencies });
    const expected = POSITIONS.flatMap((pos, t) =>
      [0, 1].flatMap((h) => hfRotateHalf(vector(x, t, h), pos, frequencies.invFreq)),
    );
    expectClose(y, expected);
  });

  it('interleaved equals the complex multiplication of DeepSeek', () => {
    const y = applyRope(x, POSITIONS, { heads: HEADS, style: 'interleaved', frequencies });
    const expected = POSITIONS.flatMap((pos, t) =>
      [0, 1].flatMap((h) => complexInterleaved(vector(x, t, h), pos, frequencies.invFreq)),
    );
    expectClose(y, expected);
  });

  it('interleaved is rotate-half after de-interleaving, as HF DeepSeek-V2 computes it', () => {
    const interleaved = applyRope(x, POSITIONS, { heads: HEADS, style: 'interleaved', frequencies });
    const permuted = POSITIONS.flatMap((_, t) => [0, 1].flatMap((h) => deinterleave(vector(x, t, h))));
    const half = applyRope(permuted, POSITIONS, { heads: HEADS, style: 'rotate-half', frequencies });
    const expected = POSITIONS.flatMap((_, t) =>
      [0, 1].flatMap((h) => deinterleave(vector(interleaved, t, h))),
    );
    expectClose(half, expected);
    // The permutation matters: without it the two styles disagree.
    expect(Math.max(...Array.from(interleaved, (e, i) => Math.abs(e - half[i]!)))).toBeGreaterThan(0.1);
  });

  it('leaves position 0 unchanged and keeps only the distance between query and key', () => {
    for (const style of ['rotate-half', 'interleaved'] as const) {
      const at = (v: Float32Array, pos: number) => applyRope(v, [pos], { heads: 1, style, frequencies });
      const q = randn(DIM, 12);
      const k = randn(DIM, 13);
      expectClose(at(q, 0), q);
      const near = dot(at(q, 9), at(k, 4));
      expect(dot(at(q, 105), at(k, 100))).toBeCloseTo(near, 5);
      expect(dot(at(q, 5), at(k, 4))).not.toBeCloseTo(near, 2);
    }
  });

  it('rejects an input that is not [tokens, heads, dim]', () => {
    expect(() =>
      applyRope(new Float32Array(7), [0], { heads: 1, style: 'rotate-half', frequencies }),
    ).toThrow(/rope input/);
  });
});

describe('ropeFrequencies', () => {
  it('plain: theta^(-2k/dim), magnitude 1', () => {
    const f = ropeFrequencies(DIM, { style: 'interleaved', theta: 500 });
    expect(Array.from(f.invFreq)).toEqual([0, 1, 2, 3].map((k) => expect.closeTo(500 ** (-k / 4), 14)));
    expect(f.magnitude).toBe(1);
  });

  it("MiniCPM3's LongRoPE: 1 / (factor_k · 10000^(2k/32)) with the spec's factors and magnitude 1", () => {
    const f = ropeFrequencies(32, MINICPM3_ROPE, 100);
    expect(f.invFreq).toHaveLength(16);
    // First and last factors as the spec lists them (§1.1).
    expect(f.invFreq[0]).toBeCloseTo(1 / 1.0591234137867171, 14);
    expect(f.invFreq[15]).toBeCloseTo(1 / (16.940876586213285 * 10000 ** (30 / 32)), 18);
    // sqrt(1 + ln(32768 / 32768) / ln(32768)) = 1 (§1.4).
    expect(f.magnitude).toBe(1);
  });

  it('LongRoPE: short factors up to the original length, long ones past it, magnitude from the lengths', () => {
    const rope: MlaRope = {
      style: 'rotate-half',
      theta: 100,
      scaling: {
        type: 'longrope',
        shortFactor: [1, 2],
        longFactor: [3, 5],
        originalMaxPositionEmbeddings: 64,
        maxPositionEmbeddings: 256,
      },
    };
    const magnitude = Math.sqrt(1 + Math.log(4) / Math.log(64));
    expect(ropeFrequencies(4, rope, 64)).toEqual({ invFreq: new Float64Array([1, 0.1 / 2]), magnitude });
    expect(ropeFrequencies(4, rope, 65)).toEqual({ invFreq: new Float64Array([1 / 3, 0.1 / 5]), magnitude });
    expect(() => ropeFrequencies(6, rope)).toThrow(/3 positive factors/);
  });

  it("DeepSeek-V2's YaRN: fast pairs keep theta's rate, slow ones are divided by 40, a ramp between", () => {
    const f = ropeFrequencies(64, DEEPSEEK_V2_ROPE);
    const base = (k: number) => 10000 ** (-k / 32);
    // Pairs turning 32 and 1 times over 4096 positions: 64 ln(4096 / (2π · 32)) / (2 ln 10000) = 10.47
    // and 64 ln(4096 / 2π) / (2 ln 10000) = 22.51, so the ramp runs from pair 10 to pair 23.
    for (let k = 0; k <= 10; k++) expect(f.invFreq[k]).toBeCloseTo(base(k), 15);
    for (let k = 23; k < 32; k++) expect(f.invFreq[k]).toBeCloseTo(base(k) / 40, 15);
    const ramp = (16 - 10) / (23 - 10);
    expect(f.invFreq[16]).toBeCloseTo(base(16) * (1 - ramp) + (base(16) / 40) * ramp, 15);
    // mscale = mscale_all_dim: cos and sin keep magnitude 1.
    expect(f.magnitude).toBeCloseTo(1, 15);
  });

  it('YaRN magnitudes: mscale over mscale_all_dim on cos/sin, mscale_all_dim squared on the softmax scale', () => {
    expect(yarnMscale(1, 5)).toBe(1);
    expect(yarnMscale(40, 0.5)).toBeCloseTo(1 + 0.05 * Math.log(40), 15);
    const rope: MlaRope = {
      style: 'interleaved',
      theta: 10000,
      scaling: { type: 'yarn', factor: 8, originalMaxPositionEmbeddings: 512, mscale: 1, mscaleAllDim: 0 },
    };
    expect(ropeFrequencies(16, rope).magnitude).toBeCloseTo(1 + 0.1 * Math.log(8), 15);
    expect(mlaSoftmaxScale({ qkNopeHeadDim: 6, qkRopeHeadDim: 10 }, rope)).toBe(0.25);
    expect(mlaSoftmaxScale({ qkNopeHeadDim: 128, qkRopeHeadDim: 64 }, DEEPSEEK_V2_ROPE)).toBeCloseTo(
      (1 + 0.0707 * Math.log(40)) ** 2 / Math.sqrt(192),
      15,
    );
  });

  it("MiniCPM3's softmax scale is 96^-0.5 = 0.10206207 (spec §1.1)", () => {
    expect(mlaSoftmaxScale(MINICPM3_MLA_DIMS, MINICPM3_ROPE)).toBeCloseTo(0.10206207, 8);
  });

  it('rejects an odd dim and a theta that is not above 1', () => {
    expect(() => ropeFrequencies(5, plain)).toThrow(/even/);
    expect(() => ropeFrequencies(4, { style: 'rotate-half', theta: 1 })).toThrow(/theta/);
  });
});

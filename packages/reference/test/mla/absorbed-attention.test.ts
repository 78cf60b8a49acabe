import { describe, expect, it } from 'vitest';
import {
  attentionForward,
  type MlaAbsorbedOptions,
  type MlaDims,
  maxAbsError,
  mlaAbsorbedAttention,
  mlaExpandKv,
  randn,
} from '../../src/index.js';
import { bandMask, headRows, singleHeadAttention } from '../support/single-head-attention.js';
import { expectClose } from './helpers.js';

const SHAPE = { heads: 3, kvLoraRank: 16, qkRopeHeadDim: 4, vHeadDim: 5 };
const { heads, kvLoraRank: r, qkRopeHeadDim: dr, vHeadDim: dv } = SHAPE;
const SCALE = 1 / Math.sqrt(12);

/** Random kernel inputs for `lengths.length` sequences of `nk` slots and `nq` queries. */
function inputs(nq: number, nk: number, batch: number, seed: number) {
  return {
    qLatent: randn(batch * nq * heads * r, seed),
    qPe: randn(batch * nq * heads * dr, seed + 1),
    cKv: randn(batch * nk * r, seed + 2),
    kPe: randn(batch * nk * dr, seed + 3),
    wUv: randn(heads * r * dv, seed + 4, 1 / Math.sqrt(r)),
  };
}

type Inputs = ReturnType<typeof inputs>;

function run(x: Inputs, lengths: number[], nq: number, nk: number): Float32Array {
  const options: MlaAbsorbedOptions = { nq, nk, ...SHAPE, scale: SCALE };
  return mlaAbsorbedAttention(x.qLatent, x.qPe, x.cKv, x.kPe, x.wUv, lengths, options);
}

/**
 * The kernel's math with the test's own attention: per (sequence, head), q = [q_latent | q_pe],
 * k = [c_kv | k_pe] of the first `length` slots, v = c_kv, an explicit mask, then · w_uv[h].
 * `visible(i, length)` gives the keys query i sees as `[from, to]`.
 */
function direct(
  x: Inputs,
  lengths: number[],
  nq: number,
  nk: number,
  visible: (i: number, length: number) => [number, number],
): number[] {
  const out = new Array<number>(lengths.length * nq * heads * dv).fill(0);
  lengths.forEach((length, b) => {
    const keyRows = (t: number) => [
      ...headRows(x.cKv, b, 0, nk, 1, r)[t]!,
      ...headRows(x.kPe, b, 0, nk, 1, dr)[t]!,
    ];
    const k = Array.from({ length }, (_, t) => keyRows(t));
    const v = Array.from({ length }, (_, t) => headRows(x.cKv, b, 0, nk, 1, r)[t]!);
    for (let h = 0; h < heads; h++) {
      const latent = headRows(x.qLatent, b, h, nq, heads, r);
      const pe = headRows(x.qPe, b, h, nq, heads, dr);
      const q = latent.map((row, i) => [...row, ...pe[i]!]);
      const mask = bandMask(
        nq,
        length,
        (i) => visible(i, length)[0],
        (i) => visible(i, length)[1],
      );
      const { o } = singleHeadAttention(q, k, v, mask, SCALE);
      o.forEach((row, i) => {
        for (let d = 0; d < dv; d++) {
          const value = row.reduce((sum, e, c) => sum + e * x.wUv[(h * r + c) * dv + d]!, 0);
          out[((b * nq + i) * heads + h) * dv + d] = value;
        }
      });
    }
  });
  return out;
}

/** Bottom-right causal: query i of nq is the token at `length − nq + i` and sees keys up to it. */
const endAligned = (nq: number) => (i: number, length: number) => [0, length - nq + i] as [number, number];

describe('mlaAbsorbedAttention', () => {
  it('matches a direct evaluation for mixed lengths, decode and multi-token queries', () => {
    // Lengths of 1, 0, below nq, and others that are multiples of nothing in particular.
    const lengths = [5, 1, 0, 13, 2, 16];
    for (const nq of [1, 3]) {
      const x = inputs(nq, 16, lengths.length, 100 + nq);
      expectClose(run(x, lengths, nq, 16), direct(x, lengths, nq, 16, endAligned(nq)));
    }
  });

  it('equals the unabsorbed attention over per-head keys and values expanded by kv_b_proj', () => {
    const dims: MlaDims = {
      hiddenSize: 1,
      heads,
      kvLoraRank: r,
      qkNopeHeadDim: 6,
      qkRopeHeadDim: dr,
      vHeadDim: dv,
    };
    const dn = dims.qkNopeHeadDim;
    const kvBProj = randn(heads * (dn + dv) * r, 201, 1 / Math.sqrt(r));
    const [nq, nk, length] = [4, 9, 7];
    const qNope = randn(nq * heads * dn, 202);
    const x = inputs(nq, nk, 1, 203);
    // The kernel's operands, built by the test from kv_b_proj's rows: q_latent = W_UKᵀ q_nope, w_uv = W_UVᵀ.
    for (let row = 0; row < nq * heads; row++) {
      const h = row % heads;
      for (let k = 0; k < r; k++) {
        let sum = 0;
        for (let d = 0; d < dn; d++) sum += qNope[row * dn + d]! * kvBProj[(h * (dn + dv) + d) * r + k]!;
        x.qLatent[row * r + k] = sum;
      }
      for (let k = 0; k < r; k++) {
        for (let d = 0; d < dv; d++) x.wUv[(h * r + k) * dv + d] = kvBProj[(h * (dn + dv) + dn + d) * r + k]!;
      }
    }
    const cache = { cKv: x.cKv.subarray(0, length * r), kPe: x.kPe.subarray(0, length * dr) };
    const { k, v } = mlaExpandKv(cache, kvBProj, dims);
    const q = new Float32Array(nq * heads * (dn + dr));
    for (let row = 0; row < nq * heads; row++) {
      q.set(qNope.subarray(row * dn, (row + 1) * dn), row * (dn + dr));
      q.set(x.qPe.subarray(row * dr, (row + 1) * dr), row * (dn + dr) + dn);
    }
    const unabsorbed = attentionForward(q, k, v, {
      batch: 1,
      n: nq,
      nk: length,
      hq: heads,
      hkv: heads,
      d: dn + dr,
      dv,
      scale: SCALE,
      causal: true,
    }).o;
    // q_latent and w_uv were rounded to f32 above, hence an f32-level bound rather than ulps.
    expectClose(run(x, [length], nq, nk), unabsorbed, { rmsRel: 1e-5, maxAbs: 1e-5 });
  });

  it('ignores NaN in every slot at or past a sequence length', () => {
    const lengths = [3, 0, 11, 1];
    const nk = 12;
    const x = inputs(2, nk, lengths.length, 300);
    const clean = run(x, lengths, 2, nk);
    lengths.forEach((length, b) => {
      x.cKv.fill(Number.NaN, (b * nk + length) * r, (b + 1) * nk * r);
      x.kPe.fill(Number.NaN, (b * nk + length) * dr, (b + 1) * nk * dr);
    });
    expect(run(x, lengths, 2, nk)).toEqual(clean);
  });

  it('gives 0 for an empty sequence, and for queries before the first key, never NaN', () => {
    const x = inputs(4, 6, 2, 400);
    const o = run(x, [0, 2], 4, 6);
    const perSequence = 4 * heads * dv;
    expect(Array.from(o.subarray(0, perSequence)).every((e) => e === 0)).toBe(true);
    // Sequence 1 holds 2 keys for 4 queries: queries 0 and 1 sit before it starts (spec §3.4-3's
    // "padded rows"); they see no key and are 0.
    const second = o.subarray(perSequence);
    expect(Array.from(second.subarray(0, 2 * heads * dv)).every((e) => e === 0)).toBe(true);
    expect(Array.from(second.subarray(2 * heads * dv)).every((e) => Number.isFinite(e) && e !== 0)).toBe(
      true,
    );
  });

  it('computes each sequence as if it were alone in the batch', () => {
    const lengths = [4, 9, 1];
    const [nq, nk] = [2, 10];
    const x = inputs(nq, nk, lengths.length, 500);
    const batched = run(x, lengths, nq, nk);
    lengths.forEach((length, b) => {
      const part = (a: Float32Array, perSequence: number) =>
        a.subarray(b * perSequence, (b + 1) * perSequence);
      const alone = mlaAbsorbedAttention(
        part(x.qLatent, nq * heads * r),
        part(x.qPe, nq * heads * dr),
        part(x.cKv, nk * r),
        part(x.kPe, nk * dr),
        x.wUv,
        [length],
        { nq, nk, ...SHAPE, scale: SCALE },
      );
      expect(part(batched, nq * heads * dv)).toEqual(alone);
    });
  });

  it('rejects lengths past nk and inputs of the wrong size', () => {
    const x = inputs(1, 4, 1, 600);
    expect(() => run(x, [5], 1, 4)).toThrow(/lengths\[0\]/);
    expect(() => run(x, [2, 2], 1, 4)).toThrow(/qLatent/);
    expect(() => run({ ...x, wUv: x.wUv.subarray(1) }, [2], 1, 4)).toThrow(/wUv/);
  });
});

describe("the seed kernel's bugs (spec §3.4) do not occur", () => {
  it('decode tail (§3.4-1): a cache of 100 keys in 128 zero-padded slots attends exactly 100 keys', () => {
    const x = inputs(1, 128, 1, 700);
    // The seed kernel loads whole blocks of 128 with zeros past N and does not mask them in decode.
    x.cKv.fill(0, 100 * r);
    x.kPe.fill(0, 100 * dr);
    const o = run(x, [100], 1, 128);
    expectClose(
      o,
      direct(x, [100], 1, 128, () => [0, 99]),
    );
    // What the bug computes: 28 extra keys of logit 0 in the softmax. The reference is far from it.
    const buggy = direct(x, [128], 1, 128, () => [0, 127]);
    expect(maxAbsError(buggy, o)).toBeGreaterThan(1e-2);
  });

  it('chunked prefill (§3.4-2): 16 new queries over 40 keys are causal from the end, not from slot 0', () => {
    const [nq, length] = [16, 40];
    const x = inputs(nq, length, 1, 800);
    const o = run(x, [length], nq, length);
    expectClose(
      o,
      direct(x, [length], nq, length, (i) => [0, length - nq + i]),
    );
    // The seed's slot-aligned mask (j <= i) gives attention over the first 16 keys only.
    const slotAligned = direct(x, [length], nq, length, (i) => [0, i]);
    expect(maxAbsError(slotAligned, o)).toBeGreaterThan(1e-1);
  });
});

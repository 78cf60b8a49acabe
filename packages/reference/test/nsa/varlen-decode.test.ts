import { describe, expect, it } from 'vitest';
import {
  type NsaOptions,
  type NsaVarlenOptions,
  nsaBackward,
  nsaDecode,
  nsaForward,
  nsaVarlenBackward,
  nsaVarlenForward,
  randn,
} from '../../src/index.js';
import { cumulative, f64, randomCompressor, SMALL } from './helpers.js';

const OPTIONS: NsaVarlenOptions = { hq: 4, hkv: 2, dqk: 3, dv: 2, ...SMALL };
/** An empty sequence, one shorter than a compressed block, one just above topN · L, and others. */
const LENGTHS = [5, 13, 0, 3, 9];
const CU = cumulative(LENGTHS);
const TOTAL = CU.at(-1)!;
const { hq, hkv, dqk, dv } = OPTIONS;

const packed = {
  q: f64(randn(TOTAL * hq * dqk, 301)),
  k: f64(randn(TOTAL * hkv * dqk, 302)),
  v: f64(randn(TOTAL * hkv * dv, 303)),
  gates: f64(randn(TOTAL * hq * 3, 304)),
  kCompressor: randomCompressor('weighted', SMALL.kernelSize!, dqk, 305),
  vCompressor: randomCompressor('swiglu', SMALL.kernelSize!, dv, 307),
};
const dO = f64(randn(TOTAL * hq * dv, 309));

/** Tokens of sequence s of a packed array with `perToken` elements per token. */
function part(x: ArrayLike<number>, s: number, perToken: number): number[] {
  return Array.from(x).slice(CU[s]! * perToken, CU[s + 1]! * perToken);
}

function sequence(s: number) {
  const options: NsaOptions = { ...OPTIONS, batch: 1, n: LENGTHS[s]! };
  const inputs = {
    ...packed,
    q: part(packed.q, s, hq * dqk),
    k: part(packed.k, s, hkv * dqk),
    v: part(packed.v, s, hkv * dv),
    gates: part(packed.gates, s, hq * 3),
  };
  return { options, inputs };
}

const close = (x: ArrayLike<number>) => Array.from(x, (e) => expect.closeTo(e, 6));

describe('nsaVarlenForward and nsaVarlenBackward', () => {
  it('equal the dense calls on each sequence, placed along the packed token axis', () => {
    const out = nsaVarlenForward(packed, CU, OPTIONS);
    LENGTHS.forEach((n, s) => {
      const { options, inputs } = sequence(s);
      const dense = nsaForward(inputs, options);
      expect(part(out.o, s, hq * dv)).toEqual(Array.from(dense.o));
      expect(part(out.selection, s, hkv * SMALL.topN!)).toEqual(Array.from(dense.selection));
      for (const branch of ['compressed', 'selected', 'window'] as const) {
        expect(part(out[branch].o, s, hq * dv)).toEqual(Array.from(dense[branch].o));
        for (let h = 0; h < hq; h++) {
          const lse = Array.from(out[branch].lse.subarray(h * TOTAL + CU[s]!, h * TOTAL + CU[s]! + n));
          expect(lse).toEqual(Array.from(dense[branch].lse.subarray(h * n, (h + 1) * n)));
        }
      }
    });
  });

  it('sums the shared compressors’ gradients over the sequences and places the rest', () => {
    const grads = nsaVarlenBackward(packed, dO, CU, OPTIONS);
    const sums = { kWeight: [] as number[], kPe: [] as number[], vWeight: [] as number[] };
    const add = (into: number[], grad: Float32Array) => {
      grad.forEach((e, i) => {
        into[i] = (into[i] ?? 0) + e;
      });
    };
    LENGTHS.forEach((_, s) => {
      const { options, inputs } = sequence(s);
      const dense = nsaBackward(inputs, part(dO, s, hq * dv), options);
      expect(part(grads.dq, s, hq * dqk)).toEqual(Array.from(dense.dq));
      expect(part(grads.dk, s, hkv * dqk)).toEqual(Array.from(dense.dk));
      expect(part(grads.dv, s, hkv * dv)).toEqual(Array.from(dense.dv));
      expect(part(grads.dGates, s, hq * 3)).toEqual(Array.from(dense.dGates));
      add(sums.kWeight, dense.kCompressor.weight!);
      add(sums.kPe, dense.kCompressor.pe!);
      add(sums.vWeight, dense.vCompressor.weight!);
    });
    expect(Array.from(grads.kCompressor.weight!)).toEqual(close(sums.kWeight));
    expect(Array.from(grads.kCompressor.pe!)).toEqual(close(sums.kPe));
    expect(Array.from(grads.vCompressor.weight!)).toEqual(close(sums.vWeight));
  });

  it('uses a given selection instead of its own', () => {
    const own = nsaVarlenForward(packed, CU, OPTIONS);
    const onlyInit = Int32Array.from(own.selection, (_, e) => (e % SMALL.topN! === 0 ? 0 : -1));
    const forced = nsaVarlenForward({ ...packed, selection: onlyInit }, CU, OPTIONS);
    expect(Array.from(forced.selection)).toEqual(Array.from(onlyInit));
    expect(forced.compressed.o).toEqual(own.compressed.o);
    expect(forced.selected.o).not.toEqual(own.selected.o);
    expect(() => nsaVarlenForward({ ...packed, selection: onlyInit.map(() => 9) }, CU, OPTIONS)).toThrow(
      /selection\[0\]: expected -1 or a block index below 2, got 9/,
    );
  });

  it('rejects malformed cumulative lengths', () => {
    expect(() => nsaVarlenForward(packed, [1, TOTAL], OPTIONS)).toThrow(/must start with 0/);
    expect(() => nsaVarlenForward(packed, [0, 5, 4, TOTAL], OPTIONS)).toThrow(/got 4 after 5/);
    expect(() => nsaVarlenForward(packed, [0, TOTAL - 1], OPTIONS)).toThrow(/q has/);
  });
});

describe('nsaDecode', () => {
  const prefixes = LENGTHS.filter((n) => n > 0);
  const cu = cumulative(prefixes);
  const kept = LENGTHS.map((n, s) => (n > 0 ? s : -1)).filter((s) => s >= 0);

  it('gives each sequence’s newest token exactly the last row of the full forward', () => {
    const last = (x: ArrayLike<number>, perToken: number) => Array.from(x).slice(-perToken);
    const decode = nsaDecode(
      {
        ...packed,
        q: kept.flatMap((s) => last(part(packed.q, s, hq * dqk), hq * dqk)),
        gates: kept.flatMap((s) => last(part(packed.gates, s, hq * 3), hq * 3)),
        k: kept.flatMap((s) => part(packed.k, s, hkv * dqk)),
        v: kept.flatMap((s) => part(packed.v, s, hkv * dv)),
      },
      cu,
      OPTIONS,
    );
    kept.forEach((s, i) => {
      const { options, inputs } = sequence(s);
      const full = nsaForward(inputs, options);
      expect(Array.from(decode.o.subarray(i * hq * dv, (i + 1) * hq * dv))).toEqual(last(full.o, hq * dv));
      const slots = hkv * SMALL.topN!;
      expect(Array.from(decode.selection.subarray(i * slots, (i + 1) * slots))).toEqual(
        last(full.selection, slots),
      );
    });
  });

  it('needs at least the newest token in every prefix', () => {
    const one = { q: new Float64Array(hq * dqk), gates: new Float64Array(hq * 3), k: [], v: [] };
    expect(() => nsaDecode(one, [0, 0], OPTIONS)).toThrow(/decode sequence 0 is empty/);
  });
});

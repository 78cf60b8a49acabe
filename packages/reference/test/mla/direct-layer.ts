/**
 * A second, deliberately different MLA layer for the tests to check the reference against: spec
 * §1.3 written out for one freshly prefilled sequence, token by token on nested arrays, with its own
 * matrix-vector products, norm, softmax (no max shift) and causal mask (`j <= i`), and the rotation
 * passed in by the test.
 */
import type { MlaDims, MlaWeights } from '../../src/index.js';

/** Rotates one rope vector to position `pos`. */
export type Rotation = (x: number[], pos: number) => number[];

/** `W x` for `W` stored `[out, in]` row-major. */
function apply(w: ArrayLike<number>, x: number[]): number[] {
  return Array.from({ length: w.length / x.length }, (_, o) =>
    x.reduce((sum, xi, i) => sum + w[o * x.length + i]! * xi, 0),
  );
}

function norm(x: number[], w: ArrayLike<number>, eps: number): number[] {
  const rms = Math.sqrt(x.reduce((sum, v) => sum + v * v, 0) / x.length + eps);
  return x.map((v, i) => (v / rms) * w[i]!);
}

function dot(a: number[], b: number[]): number {
  return a.reduce((sum, x, i) => sum + x * b[i]!, 0);
}

/** The layer's output rows for the tokens `hidden` of one sequence, positions 0, 1, … */
export function directMlaPrefill(
  hidden: number[][],
  w: MlaWeights,
  dims: MlaDims,
  rotate: Rotation,
  scale: number,
  eps = 1e-6,
): number[][] {
  const { heads: H, kvLoraRank: R, qkNopeHeadDim: dn, qkRopeHeadDim: dr, vHeadDim: dv } = dims;
  const q: number[][][] = [];
  const k: number[][][] = [];
  const v: number[][][] = [];
  hidden.forEach((x, t) => {
    const cQ = dims.qLoraRank === undefined ? x : norm(apply(w.qAProj!, x), w.qALayernorm!, eps);
    const qAll = apply(dims.qLoraRank === undefined ? w.qProj! : w.qBProj!, cQ);
    const kvA = apply(w.kvAProjWithMqa, x);
    const cKv = norm(kvA.slice(0, R), w.kvALayernorm, eps);
    const kPe = rotate(kvA.slice(R), t);
    const kv = apply(w.kvBProj, cKv);
    q.push(
      Array.from({ length: H }, (_, h) => {
        const head = qAll.slice(h * (dn + dr), (h + 1) * (dn + dr));
        return [...head.slice(0, dn), ...rotate(head.slice(dn), t)];
      }),
    );
    k.push(Array.from({ length: H }, (_, h) => [...kv.slice(h * (dn + dv), h * (dn + dv) + dn), ...kPe]));
    v.push(Array.from({ length: H }, (_, h) => kv.slice(h * (dn + dv) + dn, (h + 1) * (dn + dv))));
  });
  return hidden.map((_, i) => {
    const o: number[] = [];
    for (let h = 0; h < H; h++) {
      const weights = k.slice(0, i + 1).map((kj) => Math.exp(scale * dot(q[i]![h]!, kj[h]!)));
      const total = weights.reduce((a, b) => a + b, 0);
      for (let c = 0; c < dv; c++) o.push(weights.reduce((sum, p, j) => sum + p * v[j]![h]![c]!, 0) / total);
    }
    return apply(w.oProj, o);
  });
}

/**
 * The gated combine (spec §6): `out = σ(g0) · compressed + σ(g1) · selected + σ(g2) · window` per
 * (token, head), with gate logits `g` `[rows, 3]`. The gates are not normalised.
 */
import { sigmoid } from './sigmoid.js';

/** The three branch outputs, each `[rows, dv]`, in gate order: compressed, selected, window. */
export type Branches<T> = readonly [compressed: T, selected: T, window: T];

/** `Σ_i σ(gates[row, i]) · branches[i][row]`, `[rows, dv]`. */
export function combineForward(
  branches: Branches<Float64Array>,
  gates: ArrayLike<number>,
  dv: number,
): Float64Array {
  const out = new Float64Array(branches[0].length);
  for (let e = 0; e < out.length; e++) {
    const row = Math.floor(e / dv);
    for (let i = 0; i < 3; i++) out[e]! += sigmoid(gates[row * 3 + i]!) * branches[i]![e]!;
  }
  return out;
}

/**
 * Gradients of the combine given `dO = ∂L/∂out`: `dBranch_i = σ(g_i) · dO` and
 * `dg_i = σ(g_i)(1 - σ(g_i)) · Σ_c dO[c] · branch_i[c]`.
 */
export function combineBackward(
  branches: Branches<Float64Array>,
  gates: ArrayLike<number>,
  dO: ArrayLike<number>,
  dv: number,
): { dBranches: Branches<Float64Array>; dGates: Float64Array } {
  const rows = branches[0].length / dv;
  const dBranches: Branches<Float64Array> = [
    new Float64Array(rows * dv),
    new Float64Array(rows * dv),
    new Float64Array(rows * dv),
  ];
  const dGates = new Float64Array(rows * 3);
  for (let row = 0; row < rows; row++) {
    for (let i = 0; i < 3; i++) {
      const gate = sigmoid(gates[row * 3 + i]!);
      let dot = 0;
      for (let e = row * dv; e < (row + 1) * dv; e++) {
        dBranches[i]![e] = gate * dO[e]!;
        dot += dO[e]! * branches[i]![e]!;
      }
      dGates[row * 3 + i] = gate * (1 - gate) * dot;
    }
  }
  return { dBranches, dGates };
}

/**
 * What the flash-attention tests share: a dense case's shape, its reference options, and one run of
 * the forward and backward against the reference with every output compared.
 */
import { attentionBackward, attentionForward, compare, randn, toleranceFor } from '@webattn/reference';
import { expect } from 'vitest';
import { type FlashProblem, flashProblem } from '../src/flash/problem.js';
import { flashAttention, flashAttentionBackward, type Gpu, Tensor, type Tier } from '../src/index.js';

/** A dense batch: q `[b, n, hq, d]`, k `[b, nk, hkv, d]`, v `[b, nk, hkv, dv]`, and the mask. */
export interface DenseCase {
  name: string;
  b: number;
  n: number;
  nk: number;
  hq: number;
  hkv: number;
  d: number;
  dv: number;
  causal?: boolean;
  window?: [number, number];
  scale?: number;
}

/** The problem a dense call of these shapes makes (d = dv), for the planners: only shapes are read. */
export function problemOf(
  gpu: Gpu,
  shape: { b: number; n: number; nk: number; hq: number; hkv: number; d: number },
  options: Parameters<typeof flashProblem>[3] = {},
): FlashProblem {
  using q = Tensor.empty(gpu, [shape.b, shape.n, shape.hq, shape.d]);
  using k = Tensor.empty(gpu, [shape.b, shape.nk, shape.hkv, shape.d]);
  using v = Tensor.empty(gpu, [shape.b, shape.nk, shape.hkv, shape.d]);
  return flashProblem(q, k, v, options);
}

/** The boundaries `[0, l0, l0 + l1, ...]` of packed sequences of these lengths (cuSeqlens). */
export function cumulativeLengths(lengths: readonly number[]): number[] {
  const bounds = [0];
  for (const len of lengths) bounds.push(bounds.at(-1)! + len);
  return bounds;
}

/** The mask and scale options of a case, for flashAttention and the reference alike. */
export function maskOptions(c: DenseCase) {
  return {
    ...(c.scale !== undefined && { scale: c.scale }),
    ...(c.causal !== undefined && { causal: c.causal }),
    ...(c.window !== undefined && { window: c.window }),
  };
}

/** The reference's options for a case. */
export function referenceOptions(c: DenseCase) {
  return { batch: c.b, n: c.n, nk: c.nk, hq: c.hq, hkv: c.hkv, d: c.d, dv: c.dv, ...maskOptions(c) };
}

/** Asserts `actual` is within the f32 tolerance of `expected` (gradients: magnitude 4). */
export function expectClose(label: string, expected: Float32Array, actual: Float32Array, magnitude = 1) {
  const result = compare(expected, actual, toleranceFor('f32', magnitude));
  expect(result.ok, `${label}: ${JSON.stringify(result)}`).toBe(true);
}

/** What {@link checkDenseCase} hands back for checks of its own: the outputs read and the reference's. */
export interface DenseRun {
  o: Float32Array;
  lse: Float32Array;
  reference: { o: Float32Array; lse: Float32Array };
  /** The problem the call made (for the planners' checks). */
  problem: FlashProblem;
}

/** Options of {@link checkDenseCase}. */
export interface DenseCheckOptions {
  /** The first of the four seeds the inputs are drawn from. */
  seed?: number;
  /** Whether a second forward must give the same bits. */
  sameBitsTwice?: boolean;
}

/**
 * One case on `tier`, inputs drawn from seeds `seed .. seed + 3`: o and lse against the reference's
 * forward, then dq, dk and dv against its backward. Every tensor is disposed before it returns.
 */
export async function checkDenseCase(
  gpu: Gpu,
  c: DenseCase,
  tier: Tier,
  { seed = 1, sameBitsTwice = false }: DenseCheckOptions = {},
): Promise<DenseRun> {
  const q = randn(c.b * c.n * c.hq * c.d, seed);
  const k = randn(c.b * c.nk * c.hkv * c.d, seed + 1);
  const v = randn(c.b * c.nk * c.hkv * c.dv, seed + 2);
  const dO = randn(c.b * c.n * c.hq * c.dv, seed + 3);
  using tq = Tensor.from(gpu, q, [c.b, c.n, c.hq, c.d]);
  using tk = Tensor.from(gpu, k, [c.b, c.nk, c.hkv, c.d]);
  using tv = Tensor.from(gpu, v, [c.b, c.nk, c.hkv, c.dv]);
  using tdo = Tensor.from(gpu, dO, [c.b, c.n, c.hq, c.dv]);
  const options = { ...maskOptions(c), tier };
  const forward = () => flashAttention(gpu, tq, tk, tv, options);
  const { o, lse, ctx } = await forward();
  using _o = o;
  using _lse = lse;
  expect(o.shape).toEqual([c.b, c.n, c.hq, c.dv]);
  expect(lse.shape).toEqual([c.b, c.hq, c.n]);
  const reference = attentionForward(q, k, v, referenceOptions(c));
  const [go, glse] = [await o.read(), await lse.read()];
  expectClose('o', reference.o, go);
  expectClose('lse', reference.lse, glse);
  const grads = await flashAttentionBackward(ctx, tdo);
  using dq = grads.dq;
  using dk = grads.dk;
  using dv = grads.dv;
  const refGrads = attentionBackward(q, k, v, reference.o, reference.lse, dO, referenceOptions(c));
  // Gradients sum over many keys and heads: compare relative to their size.
  expectClose('dq', refGrads.dq, await dq.read(), 4);
  expectClose('dk', refGrads.dk, await dk.read(), 4);
  expectClose('dv', refGrads.dv, await dv.read(), 4);
  // Rows that see no key are exactly o = 0 and lse = -inf, never NaN: lse [b, hq, n], o [b, n, hq, dv].
  reference.lse.forEach((x, at) => {
    if (x !== Number.NEGATIVE_INFINITY) return;
    expect(glse[at]).toBe(Number.NEGATIVE_INFINITY);
    const [bh, i] = [Math.floor(at / c.n), at % c.n];
    const row = (Math.floor(bh / c.hq) * c.n + i) * c.hq + (bh % c.hq);
    expect(go.subarray(row * c.dv, (row + 1) * c.dv).every((y) => y === 0)).toBe(true);
  });
  expect(go.every(Number.isFinite)).toBe(true);
  if (sameBitsTwice) {
    const second = await forward();
    using o2 = second.o;
    using lse2 = second.lse;
    expect(Buffer.from((await o2.read()).buffer).equals(Buffer.from(go.buffer))).toBe(true);
    expect(Buffer.from((await lse2.read()).buffer).equals(Buffer.from(glse.buffer))).toBe(true);
  }
  return { o: go, lse: glse, reference, problem: flashProblem(tq, tk, tv, options) };
}

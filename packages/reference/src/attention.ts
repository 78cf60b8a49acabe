/**
 * Dense softmax attention, forward and backward, written for clarity: every score is computed,
 * masked and exponentiated in f64. Layouts are token-major like FlashAttention's: q `[b, n, hq, d]`,
 * k `[b, nk, hkv, d]`, v `[b, nk, hkv, dv]`, o `[b, n, hq, dv]`, lse `[b, hq, n]`.
 */

/** Sizes and masking of one attention call. */
export interface AttentionOptions {
  batch: number;
  n: number;
  nk: number;
  hq: number;
  hkv: number;
  d: number;
  dv: number;
  /** Softmax scale, `d^-0.5` by default. */
  scale?: number;
  causal?: boolean;
  /** `[left, right]` keys around the aligned diagonal; -1 = unbounded. */
  window?: readonly [number, number];
}

/**
 * Whether query row i (of n) sees key j (of nk). Rows are aligned bottom-right: row i sits at key
 * position i + nk - n. Causal limits keys to that position; a window to [pos - left, pos + right].
 */
export function isKeyVisible(
  i: number,
  j: number,
  n: number,
  nk: number,
  causal = false,
  window: readonly [number, number] = [-1, -1],
): boolean {
  const pos = i + nk - n;
  const [left, right] = window;
  if (causal && j > pos) return false;
  if (left >= 0 && j < pos - left) return false;
  if (right >= 0 && j > pos + right) return false;
  return true;
}

function checkSizes(
  o: AttentionOptions,
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
): void {
  if (o.hkv <= 0 || o.hq % o.hkv !== 0)
    throw new Error(`attention: hq (${o.hq}) must be a multiple of hkv (${o.hkv})`);
  const expect = (name: string, a: ArrayLike<number>, size: number) => {
    if (a.length !== size) throw new Error(`attention: ${name} has ${a.length} elements, expected ${size}`);
  };
  expect('q', q, o.batch * o.n * o.hq * o.d);
  expect('k', k, o.batch * o.nk * o.hkv * o.d);
  expect('v', v, o.batch * o.nk * o.hkv * o.dv);
}

/** Scores of row (b, h, i) against every key, -inf where masked, in f64. */
function scoreRow(
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  o: AttentionOptions,
  b: number,
  h: number,
  i: number,
): Float64Array {
  const { n, nk, hq, hkv, d } = o;
  const scale = o.scale ?? d ** -0.5;
  const hk = Math.floor(h / (hq / hkv));
  const s = new Float64Array(nk);
  const qBase = ((b * n + i) * hq + h) * d;
  for (let j = 0; j < nk; j++) {
    if (!isKeyVisible(i, j, n, nk, o.causal, o.window)) {
      s[j] = Number.NEGATIVE_INFINITY;
      continue;
    }
    const kBase = ((b * nk + j) * hkv + hk) * d;
    let dot = 0;
    for (let c = 0; c < d; c++) dot += q[qBase + c]! * k[kBase + c]!;
    s[j] = dot * scale;
  }
  return s;
}

/** Natural-log sum of exp over a row; -inf for a row with no visible key. */
function logSumExp(s: Float64Array): number {
  let m = Number.NEGATIVE_INFINITY;
  for (const x of s) m = Math.max(m, x);
  if (m === Number.NEGATIVE_INFINITY) return m;
  let l = 0;
  for (const x of s) l += Math.exp(x - m);
  return m + Math.log(l);
}

/** o = softmax(scale · q kᵀ + mask) v and its row log-sum-exp. A row with no key: o = 0, lse = -inf. */
export function attentionForward(
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
  o: AttentionOptions,
): { o: Float32Array; lse: Float32Array } {
  checkSizes(o, q, k, v);
  const { batch, n, nk, hq, hkv, dv } = o;
  const out = new Float32Array(batch * n * hq * dv);
  const lse = new Float32Array(batch * hq * n);
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < hq; h++) {
      const hk = Math.floor(h / (hq / hkv));
      for (let i = 0; i < n; i++) {
        const s = scoreRow(q, k, o, b, h, i);
        const rowLse = logSumExp(s);
        lse[(b * hq + h) * n + i] = rowLse;
        if (rowLse === Number.NEGATIVE_INFINITY) continue;
        const acc = new Float64Array(dv);
        for (let j = 0; j < nk; j++) {
          const p = Math.exp(s[j]! - rowLse);
          if (p === 0) continue;
          const vBase = ((b * nk + j) * hkv + hk) * dv;
          for (let c = 0; c < dv; c++) acc[c]! += p * v[vBase + c]!;
        }
        out.set(acc, ((b * n + i) * hq + h) * dv);
      }
    }
  }
  return { o: out, lse };
}

/**
 * Gradients of L = Σ o · dO: recompute P from the scores and lse, then dV = Pᵀ dO, dP = dO Vᵀ,
 * dS = P ∘ (dP - rowsum(dO ∘ O)), dQ = scale · dS K, dK = scale · dSᵀ Q, with dK and dV summed over
 * each GQA group.
 */
export function attentionBackward(
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
  out: ArrayLike<number>,
  lse: ArrayLike<number>,
  dOut: ArrayLike<number>,
  o: AttentionOptions,
): { dq: Float32Array; dk: Float32Array; dv: Float32Array } {
  checkSizes(o, q, k, v);
  const { batch, n, nk, hq, hkv, d, dv } = o;
  const scale = o.scale ?? d ** -0.5;
  const dq = new Float64Array(q.length);
  const dk = new Float64Array(k.length);
  const dvAcc = new Float64Array(v.length);
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < hq; h++) {
      const hk = Math.floor(h / (hq / hkv));
      for (let i = 0; i < n; i++) {
        const rowLse = lse[(b * hq + h) * n + i]!;
        if (rowLse === Number.NEGATIVE_INFINITY) continue;
        const s = scoreRow(q, k, o, b, h, i);
        const oBase = ((b * n + i) * hq + h) * dv;
        const qBase = ((b * n + i) * hq + h) * d;
        let delta = 0;
        for (let c = 0; c < dv; c++) delta += dOut[oBase + c]! * out[oBase + c]!;
        for (let j = 0; j < nk; j++) {
          const p = Math.exp(s[j]! - rowLse);
          if (p === 0) continue;
          const kBase = ((b * nk + j) * hkv + hk) * d;
          const vBase = ((b * nk + j) * hkv + hk) * dv;
          let dp = 0;
          for (let c = 0; c < dv; c++) {
            dp += dOut[oBase + c]! * v[vBase + c]!;
            dvAcc[vBase + c]! += p * dOut[oBase + c]!;
          }
          const ds = p * (dp - delta) * scale;
          for (let c = 0; c < d; c++) {
            dq[qBase + c]! += ds * k[kBase + c]!;
            dk[kBase + c]! += ds * q[qBase + c]!;
          }
        }
      }
    }
  }
  return { dq: Float32Array.from(dq), dk: Float32Array.from(dk), dv: Float32Array.from(dvAcc) };
}

/** Sizes of a packed variable-length call: everything but the lengths, which come from cuSeqlens. */
export type VarlenOptions = Omit<AttentionOptions, 'batch' | 'n' | 'nk'>;

interface Slices {
  qLen: number;
  kLen: number;
  qStart: number;
  kStart: number;
}

function* sequences(cuQ: ArrayLike<number>, cuK: ArrayLike<number>): Generator<Slices> {
  if (cuQ.length !== cuK.length)
    throw new Error(`attentionVarlen: cuSeqlensQ has ${cuQ.length} entries, cuSeqlensK ${cuK.length}`);
  for (let s = 0; s + 1 < cuQ.length; s++) {
    yield { qStart: cuQ[s]!, qLen: cuQ[s + 1]! - cuQ[s]!, kStart: cuK[s]!, kLen: cuK[s + 1]! - cuK[s]! };
  }
}

/**
 * Attention over packed sequences (q `[totalQ, hq, d]`, k/v `[totalK, hkv, d|dv]`, sequence s spanning
 * `cuSeqlens[s]..cuSeqlens[s+1]`), each attending only within itself; lse is `[hq, totalQ]`.
 */
export function attentionVarlen(
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
  cuSeqlensQ: ArrayLike<number>,
  cuSeqlensK: ArrayLike<number>,
  o: VarlenOptions,
): { o: Float32Array; lse: Float32Array } {
  const totalQ = q.length / (o.hq * o.d);
  const out = new Float32Array(totalQ * o.hq * o.dv);
  const lse = new Float32Array(o.hq * totalQ);
  for (const s of sequences(cuSeqlensQ, cuSeqlensK)) {
    const r = attentionForward(
      sliceTokens(q, s.qStart, s.qLen, o.hq * o.d),
      sliceTokens(k, s.kStart, s.kLen, o.hkv * o.d),
      sliceTokens(v, s.kStart, s.kLen, o.hkv * o.dv),
      { ...o, batch: 1, n: s.qLen, nk: s.kLen },
    );
    out.set(r.o, s.qStart * o.hq * o.dv);
    for (let h = 0; h < o.hq; h++)
      lse.set(r.lse.subarray(h * s.qLen, (h + 1) * s.qLen), h * totalQ + s.qStart);
  }
  return { o: out, lse };
}

/** Gradients of {@link attentionVarlen}, sequence by sequence. */
export function attentionVarlenBackward(
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
  out: ArrayLike<number>,
  lse: ArrayLike<number>,
  dOut: ArrayLike<number>,
  cuSeqlensQ: ArrayLike<number>,
  cuSeqlensK: ArrayLike<number>,
  o: VarlenOptions,
): { dq: Float32Array; dk: Float32Array; dv: Float32Array } {
  const totalQ = q.length / (o.hq * o.d);
  const dq = new Float32Array(q.length);
  const dk = new Float32Array(k.length);
  const dv = new Float32Array(v.length);
  for (const s of sequences(cuSeqlensQ, cuSeqlensK)) {
    const seqLse = new Float32Array(o.hq * s.qLen);
    for (let h = 0; h < o.hq; h++) {
      for (let i = 0; i < s.qLen; i++) seqLse[h * s.qLen + i] = lse[h * totalQ + s.qStart + i]!;
    }
    const g = attentionBackward(
      sliceTokens(q, s.qStart, s.qLen, o.hq * o.d),
      sliceTokens(k, s.kStart, s.kLen, o.hkv * o.d),
      sliceTokens(v, s.kStart, s.kLen, o.hkv * o.dv),
      sliceTokens(out, s.qStart, s.qLen, o.hq * o.dv),
      seqLse,
      sliceTokens(dOut, s.qStart, s.qLen, o.hq * o.dv),
      { ...o, batch: 1, n: s.qLen, nk: s.kLen },
    );
    dq.set(g.dq, s.qStart * o.hq * o.d);
    dk.set(g.dk, s.kStart * o.hkv * o.d);
    dv.set(g.dv, s.kStart * o.hkv * o.dv);
  }
  return { dq, dk, dv };
}

function sliceTokens(a: ArrayLike<number>, start: number, count: number, perToken: number): Float32Array {
  return Float32Array.from({ length: count * perToken }, (_, i) => a[start * perToken + i]!);
}

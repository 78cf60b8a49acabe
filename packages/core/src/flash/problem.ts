/**
 * The shape of one flash-attention call, checked and turned into the tables the kernels walk:
 * one row per sequence (dense batches are sequences of equal length) and one entry per tile of work.
 */
import { check } from '../errors.js';
import type { Tensor } from '../tensor.js';

/** Masking, FlashAttention's way: query i sees keys in [i + off - left, i + off + right], off = nk - n. */
export interface MaskSpec {
  /** Keys before the aligned diagonal a query sees; -1 = unbounded. */
  left: number;
  /** Keys after the aligned diagonal a query sees; -1 = unbounded (causal makes it 0). */
  right: number;
}

/** One sequence of a call: where its queries and keys start in the packed token dimension, and its lengths. */
export interface SequenceSpan {
  qStart: number;
  qLen: number;
  kStart: number;
  kLen: number;
  /** Offset of this sequence's first lse entry (dense: `b·hq·n`; packed: `qStart`). */
  lseBase: number;
}

/**
 * Keys that each stand for a block of tokens, NSA's compressed keys: key j covers tokens
 * `[j·stride, j·stride + size)`, and the mask compares its last token, `j·stride + size - 1`, with
 * the query's token position. Queries then sit at tokens 0, 1, ... of their sequence (no
 * bottom-right alignment: the keys' token count is not their number).
 */
export interface KeyBlocks {
  /** Tokens per block (NSA's kernel size). */
  size: number;
  /** Tokens between block starts (NSA's stride). */
  stride: number;
}

/** Everything the kernels need to know about a call. */
export interface FlashProblem {
  hq: number;
  hkv: number;
  d: number;
  dv: number;
  scale: number;
  mask: MaskSpec;
  /** Token blocks behind the keys; `{ size: 1, stride: 1 }` for plain keys. */
  keyBlocks: KeyBlocks;
  sequences: SequenceSpan[];
  /** Total query and key tokens over all sequences. */
  totalQ: number;
  totalK: number;
  /** Distance between heads in the lse layout: `n` dense, `totalQ` packed. */
  lseHeadStride: number;
  /** Shapes to give `o` and `lse`. */
  oShape: number[];
  lseShape: number[];
  varlen: boolean;
  /** Whether some key rows belong to no sequence (a cache's rows past its lengths). */
  partialKeys: boolean;
}

/** Options that shape the problem. */
export interface ProblemOptions {
  scale?: number;
  causal?: boolean;
  window?: readonly [number, number];
  cuSeqlensQ?: ArrayLike<number>;
  cuSeqlensK?: ArrayLike<number>;
  /** Keys are blocks of tokens (NSA's compressed keys); see {@link KeyBlocks}. */
  keyBlocks?: KeyBlocks;
  /**
   * Keys each sequence of a dense batch holds, when k and v are a cache `[b, capacity, hkv, d]`:
   * sequence b sees its first `cacheSeqlens[b]` rows, its queries aligned to the end of those
   * (bottom-right), and the rows past them are never read. Not with `cuSeqlensQ`/`cuSeqlensK`.
   */
  cacheSeqlens?: ArrayLike<number>;
}

const shapeText = (t: Tensor) => `[${t.shape.join(', ')}]`;

function checkCuSeqlens(name: string, cu: ArrayLike<number>, total: number): number[] {
  const values = Array.from(cu);
  check(
    values.length >= 2,
    'invalid-argument',
    () => `${name}: expected at least 2 entries (batch + 1), got ${values.length}`,
  );
  check(values[0] === 0, 'invalid-argument', () => `${name}[0]: expected 0, got ${values[0]}`);
  for (let i = 1; i < values.length; i++) {
    const v = values[i]!;
    const prev = values[i - 1]!;
    check(
      Number.isSafeInteger(v) && v >= prev,
      'invalid-argument',
      () => `${name}[${i}]: expected an integer >= ${name}[${i - 1}] (${prev}), got ${v}`,
    );
  }
  check(
    values[values.length - 1] === total,
    'shape-mismatch',
    () =>
      `${name}: expected the last entry to equal the packed token count ${total}, got ${values[values.length - 1]}`,
  );
  return values;
}

function checkMask(options: ProblemOptions): MaskSpec {
  const [left, right] = options.window ?? [-1, -1];
  for (const [name, v] of [
    ['window[0]', left],
    ['window[1]', right],
  ] as const) {
    check(
      Number.isSafeInteger(v) && v >= -1,
      'invalid-argument',
      () => `options.${name}: expected an integer >= -1 (-1 = unbounded), got ${v}`,
    );
  }
  // Causal is the window's right edge at the diagonal.
  return { left, right: options.causal ? (right < 0 ? 0 : Math.min(right, 0)) : right };
}

const PLAIN_KEYS: KeyBlocks = { size: 1, stride: 1 };

/** The most query rows of one sequence (per head), 0 for a problem without sequences. */
export function longestQueryRows(p: Pick<FlashProblem, 'sequences'>): number {
  return p.sequences.reduce((most, s) => Math.max(most, s.qLen), 0);
}

/** The most key rows of one sequence (per KV head), 0 for a problem without sequences. */
export function longestKeyRows(p: Pick<FlashProblem, 'sequences'>): number {
  return p.sequences.reduce((most, s) => Math.max(most, s.kLen), 0);
}

/** Whether a problem's keys are blocks of tokens (NSA's compressed keys) rather than tokens. */
export function hasKeyBlocks(p: Pick<FlashProblem, 'keyBlocks'>): boolean {
  return p.keyBlocks.size !== 1 || p.keyBlocks.stride !== 1;
}

function checkKeyBlocks(options: ProblemOptions): KeyBlocks {
  const blocks = options.keyBlocks;
  if (!blocks) return PLAIN_KEYS;
  for (const name of ['size', 'stride'] as const) {
    check(
      Number.isSafeInteger(blocks[name]) && blocks[name] >= 1,
      'invalid-argument',
      () => `options.keyBlocks.${name}: expected a positive integer, got ${blocks[name]}`,
    );
  }
  return { size: blocks.size, stride: blocks.stride };
}

/** Validates q, k, v and the options; every error names the argument and both values. */
export function flashProblem(q: Tensor, k: Tensor, v: Tensor, options: ProblemOptions): FlashProblem {
  const varlen = options.cuSeqlensQ !== undefined || options.cuSeqlensK !== undefined;
  const rank = varlen ? 3 : 4;
  const layout = varlen ? '[total, heads, dim]' : '[batch, tokens, heads, dim]';
  for (const [name, t] of [
    ['q', q],
    ['k', k],
    ['v', v],
  ] as const) {
    check(
      t.shape.length === rank,
      'shape-mismatch',
      () => `${name}: expected rank ${rank} ${layout}, got shape ${shapeText(t)}`,
    );
  }
  check(k.dtype === q.dtype, 'dtype-mismatch', () => `k: expected dtype ${q.dtype} (q's), got ${k.dtype}`);
  check(v.dtype === q.dtype, 'dtype-mismatch', () => `v: expected dtype ${q.dtype} (q's), got ${v.dtype}`);
  const [hq, d] = q.shape.slice(-2) as [number, number];
  const [hkv, dk] = k.shape.slice(-2) as [number, number];
  const [hv, dv] = v.shape.slice(-2) as [number, number];
  check(
    dk === d,
    'shape-mismatch',
    () => `k: expected head dim ${d} (q's), got ${dk} (shape ${shapeText(k)})`,
  );
  check(
    hv === hkv,
    'shape-mismatch',
    () => `v: expected ${hkv} heads (k's), got ${hv} (shape ${shapeText(v)})`,
  );
  check(
    hkv > 0 && hq % hkv === 0,
    'heads-not-divisible',
    () => `q: expected a head count divisible by k's ${hkv}, got ${hq}`,
  );
  check(
    d > 0 && dv > 0,
    'shape-mismatch',
    () => `q/v: expected non-zero head dims, got d = ${d}, dv = ${dv}`,
  );
  const keyTokens = k.shape.slice(0, -2);
  const valueTokens = v.shape.slice(0, -2);
  check(
    keyTokens.join() === valueTokens.join(),
    'shape-mismatch',
    () => `v: expected the token dims of k ${shapeText(k)}, got ${shapeText(v)}`,
  );
  const scale = options.scale ?? d ** -0.5;
  check(
    Number.isFinite(scale),
    'invalid-argument',
    () => `options.scale: expected a finite number, got ${scale}`,
  );
  const mask = checkMask(options);
  const keyBlocks = checkKeyBlocks(options);
  const sequences: SequenceSpan[] = [];
  // What both layouts share; the spans are pushed below.
  const common = { hq, hkv, d, dv, scale, mask, keyBlocks, sequences, varlen };
  if (varlen) {
    check(
      options.cacheSeqlens === undefined,
      'invalid-argument',
      () => 'options.cacheSeqlens: expected no cache lengths with cuSeqlensQ/cuSeqlensK, got both',
    );
    check(
      options.cuSeqlensQ !== undefined && options.cuSeqlensK !== undefined,
      'invalid-argument',
      () => 'options: expected both cuSeqlensQ and cuSeqlensK for a packed batch, got only one',
    );
    const totalQ = q.shape[0]!;
    const totalK = k.shape[0]!;
    const cuQ = checkCuSeqlens('options.cuSeqlensQ', options.cuSeqlensQ!, totalQ);
    const cuK = checkCuSeqlens('options.cuSeqlensK', options.cuSeqlensK!, totalK);
    check(
      cuQ.length === cuK.length,
      'shape-mismatch',
      () => `options.cuSeqlensK: expected ${cuQ.length} entries (cuSeqlensQ's), got ${cuK.length}`,
    );
    for (let s = 0; s + 1 < cuQ.length; s++) {
      sequences.push({
        qStart: cuQ[s]!,
        qLen: cuQ[s + 1]! - cuQ[s]!,
        kStart: cuK[s]!,
        kLen: cuK[s + 1]! - cuK[s]!,
        lseBase: cuQ[s]!,
      });
    }
    return {
      ...common,
      partialKeys: false,
      ...packedLayout(totalQ, totalK, [totalQ, hq, dv], [hq, totalQ], totalQ),
    };
  }
  const [batch, n] = q.shape as [number, number];
  const [kb, nk] = k.shape as [number, number];
  check(kb === batch, 'shape-mismatch', () => `k: expected batch ${batch} (q's), got ${kb}`);
  const held = checkCacheSeqlens(options.cacheSeqlens, batch, nk);
  for (let b = 0; b < batch; b++)
    sequences.push({ qStart: b * n, qLen: n, kStart: b * nk, kLen: held[b]!, lseBase: b * hq * n });
  return {
    ...common,
    partialKeys: held.some((len) => len < nk),
    ...packedLayout(batch * n, batch * nk, [batch, n, hq, dv], [batch, hq, n], n),
  };
}

/** Each sequence's key count: `cacheSeqlens`, checked against the batch and the cache's capacity, or all. */
function checkCacheSeqlens(cache: ArrayLike<number> | undefined, batch: number, capacity: number): number[] {
  if (cache === undefined) return new Array<number>(batch).fill(capacity);
  const values = Array.from(cache);
  check(
    values.length === batch,
    'shape-mismatch',
    () => `options.cacheSeqlens: expected ${batch} entries (q's batch), got ${values.length}`,
  );
  values.forEach((v, b) => {
    check(
      Number.isSafeInteger(v) && v >= 0 && v <= capacity,
      'invalid-argument',
      () => `options.cacheSeqlens[${b}]: expected an integer in [0, ${capacity}] (k's capacity), got ${v}`,
    );
  });
  return values;
}

/** The layout fields of a problem: token totals, output shapes and the lse head stride. */
function packedLayout(
  totalQ: number,
  totalK: number,
  oShape: number[],
  lseShape: number[],
  lseHeadStride: number,
) {
  return { totalQ, totalK, oShape, lseShape, lseHeadStride };
}

/** Words per sequence in the table the kernels read: qStart, qLen, kStart, kLen, lseBase. */
export const SEQUENCE_WORDS = 5;

/** The u32 words one launch reads: the sequence table, then its tiles as (sequence, first row) pairs. */
export interface LaunchMeta {
  words: Uint32Array;
  /** Index of the first tile word. */
  tileBase: number;
  tiles: number;
}

/**
 * The meta table of a launch over every `tile` rows of each sequence's queries (`of: 'q'`) or keys
 * (`of: 'k'`). Tiles a mask hides entirely are still listed; the kernels skip their loops.
 */
export function launchMeta(p: FlashProblem, tile: number, of: 'q' | 'k'): LaunchMeta {
  const words: number[] = [];
  for (const s of p.sequences) words.push(s.qStart, s.qLen, s.kStart, s.kLen, s.lseBase);
  const tileBase = words.length;
  p.sequences.forEach((s, i) => {
    const len = of === 'q' ? s.qLen : s.kLen;
    for (let r = 0; r < len; r += tile) words.push(i, r);
  });
  return {
    words: Uint32Array.from(words.length ? words : [0]),
    tileBase,
    tiles: (words.length - tileBase) / 2,
  };
}

const floorDiv = (a: number, b: number) => Math.floor(a / b);

/**
 * How many keys the query rows `[first, last]` of sequence `s` can see at most: the length of the
 * kernels' `keyRange` (common.wgsl.ts), on the host.
 */
export function keyRangeLength(p: FlashProblem, s: SequenceSpan, first: number, last: number): number {
  const { left, right } = p.mask;
  const { size, stride } = p.keyBlocks;
  const offset = hasKeyBlocks(p) ? 0 : s.kLen - s.qLen;
  let lo = 0;
  let hi = s.kLen;
  if (left >= 0) lo = Math.max(lo, floorDiv(first + offset - left - size + stride, stride));
  if (right >= 0) hi = Math.min(hi, floorDiv(last + offset + right - size + 1, stride) + 1);
  return Math.max(0, hi - lo);
}

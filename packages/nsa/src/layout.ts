/**
 * Where every sequence of an NSA call lives: its tokens in the packed token dimension, its
 * compressed blocks, and the tables the kernels read. Dense batches `[b, n, ...]` are b sequences
 * of n tokens; packed batches `[total, ...]` come with `cuSeqlens`.
 */
import { check, type Gpu, Tensor, WebAttnError } from '@webattn/core';
import { compressedBlockCount, type NsaConfig, selectionBlockCount } from './config.js';

/** One sequence: its tokens, its compressed blocks, and where its lse rows start. */
export interface NsaSequence {
  start: number;
  length: number;
  /** Index of its first compressed block among all of the call's blocks. */
  cmpStart: number;
  /** Its compressed blocks, `M = floor((length - l) / s) + 1` (0 when shorter than l). */
  cmpLength: number;
  /** Offset of its first entry in the flash kernels' lse layout. */
  lseBase: number;
}

/** The shape of an NSA call. */
export interface NsaLayout {
  /** Dense `[b, n, ...]` inputs, or packed `[total, ...]` ones. */
  packed: boolean;
  batch: number;
  sequences: NsaSequence[];
  tokens: number;
  /** All compressed blocks of the call. */
  cmpBlocks: number;
  /** Selection blocks of the longest sequence (sizes the selection kernel's scratch). */
  maxSelectionBlocks: number;
  /** Distance between heads in the flash lse layout: n dense, total packed. */
  lseHeadStride: number;
  /** The token dims of the inputs (`[b, n]` or `[total]`) and of the compressed keys. */
  tokenDims: number[];
  cmpDims: number[];
  /** cuSeqlens of the tokens and of the compressed blocks, for the packed flash calls. */
  cuSeqlens?: number[];
  cuCmpSeqlens?: number[];
}

/** u32 words (tables, positions, lengths) as a tensor the kernels bind as `array<u32>`: f32-typed, only the bits matter. */
export function wordsTensor(gpu: Gpu, words: Uint32Array): Tensor {
  return Tensor.from(gpu, new Float32Array(words.buffer, words.byteOffset, words.length), [words.length]);
}

/** Words per sequence in the kernels' table: start, length, cmpStart, cmpLength, lseBase. */
export const SEQUENCE_WORDS = 5;

/** WGSL of the sequence table lookup; the kernels bind it as `tables` and read `p.tokenTable`. */
export const NSA_SEQUENCE_WGSL = `struct Sequence { start: u32, length: u32, cmpStart: u32, cmpLength: u32, lseBase: u32 }

// The sequence token t belongs to (the table lists one sequence index per token after the sequences).
fn sequenceOf(t: u32) -> Sequence {
  let o = tables[p.tokenTable + t] * ${SEQUENCE_WORDS}u;
  return Sequence(tables[o], tables[o + 1u], tables[o + 2u], tables[o + 3u], tables[o + 4u]);
}`;

/** Checks q's token dims against cuSeqlens and lays the call out. */
export function nsaLayout(q: Tensor, config: NsaConfig, cuSeqlens?: ArrayLike<number>): NsaLayout {
  const rank = cuSeqlens ? 3 : 4;
  check(
    q.shape.length === rank,
    'shape-mismatch',
    () =>
      `q: expected rank ${rank} ${cuSeqlens ? '[total, heads, dim] with cuSeqlens' : '[batch, tokens, heads, dim]'}, got [${q.shape.join(', ')}]`,
  );
  const lengths: number[] = [];
  let packed = false;
  if (cuSeqlens) {
    packed = true;
    const cu = Array.from(cuSeqlens);
    check(
      cu.length >= 2 && cu[0] === 0,
      'invalid-argument',
      () => `cuSeqlens: expected [0, ...] with at least 2 entries, got [${cu.join(', ')}]`,
    );
    for (let i = 1; i < cu.length; i++) {
      check(
        Number.isSafeInteger(cu[i]) && cu[i]! >= cu[i - 1]!,
        'invalid-argument',
        () => `cuSeqlens[${i}]: expected an integer >= ${cu[i - 1]}, got ${cu[i]}`,
      );
      lengths.push(cu[i]! - cu[i - 1]!);
    }
    check(
      cu.at(-1) === q.shape[0],
      'shape-mismatch',
      () => `cuSeqlens: expected the last entry to equal q's token count ${q.shape[0]}, got ${cu.at(-1)}`,
    );
  } else {
    const [b, n] = q.shape as [number, number];
    for (let i = 0; i < b; i++) lengths.push(n);
  }
  const sequences: NsaSequence[] = [];
  let [start, cmpStart] = [0, 0];
  const n = lengths[0] ?? 0;
  for (const [i, length] of lengths.entries()) {
    const cmpLength = compressedBlockCount(length, config);
    sequences.push({ start, length, cmpStart, cmpLength, lseBase: packed ? start : i * config.heads * n });
    start += length;
    cmpStart += cmpLength;
  }
  if (start === 0) throw new WebAttnError('shape-mismatch', 'q: expected at least one token, got 0');
  const maxLength = Math.max(...lengths);
  const layout: NsaLayout = {
    packed,
    batch: lengths.length,
    sequences,
    tokens: start,
    cmpBlocks: cmpStart,
    maxSelectionBlocks: selectionBlockCount(maxLength, config),
    lseHeadStride: packed ? start : n,
    tokenDims: packed ? [start] : [lengths.length, n],
    cmpDims: packed ? [cmpStart] : [lengths.length, compressedBlockCount(n, config)],
  };
  if (packed) {
    layout.cuSeqlens = [0, ...sequences.map((s) => s.start + s.length)];
    layout.cuCmpSeqlens = [0, ...sequences.map((s) => s.cmpStart + s.cmpLength)];
  }
  return layout;
}

/** Where the parts of the kernels' table start, and how many selection blocks it lists. */
export interface SequenceTable {
  words: Uint32Array;
  /** One sequence index per token starts here. */
  tokenTable: number;
  /** The first token of every selection block of every sequence starts here. */
  blockTable: number;
  /** Selection blocks of all sequences. */
  blocks: number;
}

/**
 * The kernels' table: the sequences, then one sequence index per token, then the first token of
 * every selection block (for the backward kernels that run one workgroup per block of keys).
 */
export function sequenceTable(layout: NsaLayout, blockSize: number): SequenceTable {
  const tokenTable = layout.sequences.length * SEQUENCE_WORDS;
  const blockTable = tokenTable + layout.tokens;
  const starts = layout.sequences.flatMap((s) =>
    Array.from({ length: Math.ceil(s.length / blockSize) }, (_, j) => s.start + j * blockSize),
  );
  const words = new Uint32Array(blockTable + starts.length);
  layout.sequences.forEach((s, i) => {
    words.set([s.start, s.length, s.cmpStart, s.cmpLength, s.lseBase], i * SEQUENCE_WORDS);
    words.fill(i, tokenTable + s.start, tokenTable + s.start + s.length);
  });
  words.set(starts, blockTable);
  return { words, tokenTable, blockTable, blocks: starts.length };
}

/** The first token of every compressed block of the call, for the compression kernels. */
export function blockStarts(layout: NsaLayout, config: NsaConfig): Uint32Array {
  const starts = new Uint32Array(Math.max(layout.cmpBlocks, 1));
  for (const s of layout.sequences) {
    for (let m = 0; m < s.cmpLength; m++) starts[s.cmpStart + m] = s.start + m * config.stride;
  }
  return starts;
}

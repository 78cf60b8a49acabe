/** The NSA inference cache: each sequence's keys and values, and their compressed blocks, on the GPU. */
import { check, type Dtype, dispatch, type Gpu, memoizeWgsl, Tensor } from '@webattn/core';
import { compressedBlockCount, type NsaConfig } from '../config.js';
import { wordsTensor } from '../layout.js';
import { CACHE_PARAMS, CACHE_WORKGROUP, cacheCompressWgsl, cacheWriteWgsl } from './cache.wgsl.js';

// Each kernel's WGSL is written once per configuration (see memoizeWgsl).
const cacheCompressCode = memoizeWgsl(cacheCompressWgsl);
const cacheWriteCode = memoizeWgsl(cacheWriteWgsl);

/** Sizes of a new cache. */
export interface NsaCacheOptions {
  /** Sequences. */
  batch: number;
  /** Tokens each sequence can hold. */
  capacity: number;
  /** Storage of keys and values; f32 by default. */
  dtype?: Dtype;
}

/**
 * Keys `[batch, capacity, kvHeads, headDim]`, values `[batch, capacity, kvHeads, vHeadDim]` and their
 * mean-pooled compressed blocks, grown token by token (spec section 11: a compressed block appears
 * when a sequence's length reaches `kernelSize + m · stride`). Decode with {@link nsaDecode}.
 */
export class NsaCache {
  /** Tokens held by each sequence. */
  private readonly held: number[];

  private constructor(
    private readonly gpu: Gpu,
    /** The NSA config the cache was made for. */
    readonly config: NsaConfig,
    /** Tokens each sequence can hold. */
    readonly capacity: number,
    /** The cache's tensors: keys, values and their compressed blocks. */
    readonly k: Tensor,
    readonly v: Tensor,
    readonly cmpK: Tensor,
    readonly cmpV: Tensor,
  ) {
    this.held = new Array<number>(k.shape[0] ?? 0).fill(0);
  }

  /** An empty cache. */
  static create(gpu: Gpu, config: NsaConfig, options: NsaCacheOptions): NsaCache {
    const { batch, capacity, dtype = 'f32' } = options;
    for (const [name, value] of [
      ['batch', batch],
      ['capacity', capacity],
    ] as const) {
      check(
        Number.isSafeInteger(value) && value >= 1,
        'invalid-argument',
        () => `options.${name}: expected a positive integer, got ${value}`,
      );
    }
    const cmpCapacity = Math.max(compressedBlockCount(capacity, config), 1);
    const tensor = (rows: number, dim: number) =>
      Tensor.zeros(gpu, [batch, rows, config.kvHeads, dim], dtype);
    return new NsaCache(
      gpu,
      config,
      capacity,
      tensor(capacity, config.headDim),
      tensor(capacity, config.vHeadDim),
      tensor(cmpCapacity, config.headDim),
      tensor(cmpCapacity, config.vHeadDim),
    );
  }

  /** Sequences in the cache. */
  get batch(): number {
    return this.held.length;
  }

  /** Tokens held by each sequence. */
  get lengths(): readonly number[] {
    return [...this.held];
  }

  /** Compressed blocks each sequence can hold. */
  get cmpCapacity(): number {
    return this.cmpK.shape[1] ?? 0;
  }

  /**
   * Appends tokens: `k [total, kvHeads, headDim]` and `v [total, kvHeads, vHeadDim]`, sequence b
   * taking `counts[b]` consecutive rows (one token per sequence, `[batch, ...]`, when `counts` is
   * omitted), then pools the compressed blocks the new tokens complete.
   */
  async append(k: Tensor, v: Tensor, counts?: readonly number[]): Promise<void> {
    const { config } = this;
    const perSequence = counts ?? new Array<number>(this.batch).fill(1);
    check(
      perSequence.length === this.batch && perSequence.every((n) => Number.isSafeInteger(n) && n >= 0),
      'invalid-argument',
      () => `counts: expected ${this.batch} non-negative integers, got [${perSequence.join(', ')}]`,
    );
    const total = perSequence.reduce((a, b) => a + b, 0);
    const expected: [string, Tensor, number][] = [
      ['k', k, config.headDim],
      ['v', v, config.vHeadDim],
    ];
    for (const [name, t, dim] of expected) {
      const want = [total, config.kvHeads, dim];
      check(
        t.shape.join() === want.join(),
        'shape-mismatch',
        () => `${name}: expected shape [${want.join(', ')}], got [${t.shape.join(', ')}]`,
      );
      check(
        t.dtype === this.k.dtype,
        'dtype-mismatch',
        () => `${name}: expected dtype ${this.k.dtype} (the cache's), got ${t.dtype}`,
      );
    }
    perSequence.forEach((n, b) => {
      check(
        this.held[b]! + n <= this.capacity,
        'limit-exceeded',
        () =>
          `counts[${b}]: sequence ${b} holds ${this.held[b]} of ${this.capacity} tokens and cannot take ${n} more`,
      );
    });
    if (total === 0) return;
    const slots = new Uint32Array(total);
    const blocks: number[] = [];
    let row = 0;
    perSequence.forEach((n, b) => {
      const before = this.held[b]!;
      for (let j = 0; j < n; j++) slots[row++] = b * this.capacity + before + j;
      for (let m = compressedBlockCount(before, config); m < compressedBlockCount(before + n, config); m++) {
        blocks.push(b, m);
      }
    });
    using slotTensor = wordsTensor(this.gpu, slots);
    for (const [src, dst, dim] of [
      [k, this.k, config.headDim],
      [v, this.v, config.vHeadDim],
    ] as const) {
      await this.launch('nsa cache write', cacheWriteCode(dst.dtype), [src, slotTensor, dst], total, dim);
    }
    if (blocks.length > 0) {
      using blockTensor = wordsTensor(this.gpu, Uint32Array.from(blocks));
      for (const [src, dst, dim] of [
        [this.k, this.cmpK, config.headDim],
        [this.v, this.cmpV, config.vHeadDim],
      ] as const) {
        await this.launch(
          'nsa cache compress',
          cacheCompressCode(dst.dtype),
          [src, blockTensor, dst],
          blocks.length / 2,
          dim,
        );
      }
    }
    perSequence.forEach((n, b) => {
      this.held[b]! += n;
    });
  }

  private launch(label: string, code: string, buffers: Tensor[], count: number, dim: number) {
    const row = this.config.kvHeads * dim;
    return dispatch(this.gpu, {
      label,
      code,
      buffers,
      params: {
        layout: CACHE_PARAMS,
        values: {
          count,
          row,
          dim,
          capacity: this.capacity,
          cmpCapacity: this.cmpCapacity,
          kernelSize: this.config.kernelSize,
          stride: this.config.stride,
        },
      },
      workgroups: Math.ceil((count * row) / CACHE_WORKGROUP),
    });
  }

  /** Frees the cache's GPU memory. */
  dispose(): void {
    for (const t of [this.k, this.v, this.cmpK, this.cmpV]) t.dispose();
  }
}

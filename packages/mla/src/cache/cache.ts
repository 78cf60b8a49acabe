/**
 * The paged latent cache: per token the normalised latent `c_kv` (r values) followed by the rotated
 * rope key `k_pe` (dr values), in pages of `pageSize` tokens, with a block table per sequence, as
 * FlashMLA lays it out. Sequences are created, appended to, forked (full pages shared, the partial
 * last page copied, so an append never writes a shared page) and freed.
 */
import { check, type Dtype, dispatch, type Gpu, memoizeWgsl, Tensor } from '@webattn/core';
import { u32Tensor } from '../u32.js';
import { MLA_APPEND_PARAMS, MLA_APPEND_WORKGROUP, mlaAppendWgsl } from './append.wgsl.js';

// Each kernel's WGSL is written once per configuration (see memoizeWgsl).
const mlaAppendCode = memoizeWgsl(mlaAppendWgsl);

/** Options of {@link MlaCache}. */
export interface MlaCacheOptions {
  /** Latent rank, `r` (256 for MiniCPM3). */
  kvLoraRank: number;
  /** Rope dims of the shared key, `dr` (32 for MiniCPM3). */
  qkRopeHeadDim: number;
  /** Pages the cache holds; its capacity is `pages · pageSize` tokens over all sequences. */
  pages: number;
  /** Tokens per page; 64 by default. */
  pageSize?: number;
  /** Storage dtype of the pages; f16 by default. */
  dtype?: Dtype;
}

/** One sequence's pages and length. */
interface SequenceState {
  pages: number[];
  length: number;
}

const OP = 'MlaCache';

/** A paged latent KV cache for one layer; see the module documentation. */
export class MlaCache {
  /** The pages, `[pages, pageSize, r + dr]`; every slot past a sequence's length is never read. */
  readonly pages: Tensor;
  /** Latent rank. */
  readonly r: number;
  /** Rope dims. */
  readonly dr: number;
  /** Tokens per page. */
  readonly pageSize: number;
  /** Storage dtype. */
  readonly dtype: Dtype;
  private readonly freeList: number[] = [];
  private readonly refs: Uint32Array;
  private readonly sequences = new Map<number, SequenceState>();
  private nextId = 0;

  constructor(
    readonly gpu: Gpu,
    options: MlaCacheOptions,
  ) {
    const { kvLoraRank: r, qkRopeHeadDim: dr, pages } = options;
    const pageSize = options.pageSize ?? 64;
    const dtype = options.dtype ?? 'f16';
    for (const [name, value, min] of [
      ['kvLoraRank', r, 1],
      ['qkRopeHeadDim', dr, 0],
      ['pages', pages, 1],
      ['pageSize', pageSize, 1],
    ] as const) {
      check(
        Number.isSafeInteger(value) && value >= min,
        'invalid-argument',
        () => `${OP}: options.${name}: expected an integer >= ${min}, got ${value}`,
      );
    }
    check(
      dtype === 'f16' || dtype === 'f32',
      'dtype-mismatch',
      () => `${OP}: options.dtype: expected 'f16' or 'f32', got ${JSON.stringify(dtype)}`,
    );
    this.r = r;
    this.dr = dr;
    this.pageSize = pageSize;
    check(
      dtype === 'f32' || (pageSize * (r + dr)) % 2 === 0,
      'invalid-argument',
      () =>
        `${OP}: options.pageSize: an f16 page must hold an even number of values (copies move 4-byte words), got ${pageSize} · ${r + dr}`,
    );
    this.dtype = dtype;
    this.pages = Tensor.empty(gpu, [pages, pageSize, r + dr], dtype);
    this.refs = new Uint32Array(pages);
    for (let page = pages - 1; page >= 0; page--) this.freeList.push(page);
  }

  /** Bytes one token occupies: `(r + dr) ·` the dtype's size (576 for MiniCPM3 in f16). */
  get bytesPerToken(): number {
    return (this.r + this.dr) * (this.dtype === 'f16' ? 2 : 4);
  }

  /** Pages not held by any sequence. */
  get freePages(): number {
    return this.freeList.length;
  }

  /** A new empty sequence; returns its id. */
  create(): number {
    const id = this.nextId++;
    this.sequences.set(id, { pages: [], length: 0 });
    return id;
  }

  private state(id: number, name = 'id'): SequenceState {
    const s = this.sequences.get(id);
    check(
      s !== undefined,
      'invalid-argument',
      () => `${OP}: ${name}: expected a live sequence id, got ${id}`,
    );
    return s;
  }

  /** Tokens sequence `id` holds. */
  length(id: number): number {
    return this.state(id).length;
  }

  /** Page ids of sequence `id`, in order (its block table row). */
  blockTable(id: number): readonly number[] {
    return this.state(id).pages;
  }

  private takePage(): number {
    const page = this.freeList.pop();
    check(
      page !== undefined,
      'limit-exceeded',
      () => `${OP}: out of pages: all ${this.refs.length} pages of ${this.pageSize} tokens are in use`,
    );
    this.refs[page] = 1;
    return page;
  }

  private releasePage(page: number): void {
    this.refs[page]! -= 1;
    if (this.refs[page] === 0) this.freeList.push(page);
  }

  /**
   * A new sequence holding the same tokens as `id`: full pages are shared, the partial last page is
   * copied into a fresh page. Returns the new id.
   */
  fork(id: number): number {
    const parent = this.state(id);
    const child: SequenceState = { pages: [...parent.pages], length: parent.length };
    const partial = parent.length % this.pageSize;
    const full = partial === 0 ? child.pages.length : child.pages.length - 1;
    for (let i = 0; i < full; i++) this.refs[child.pages[i]!]! += 1;
    if (partial > 0) {
      const from = child.pages[full]!;
      const to = this.takePage();
      const pageBytes = this.pageSize * (this.r + this.dr) * (this.dtype === 'f16' ? 2 : 4);
      // WebGPU copies never read and write one buffer: go through a scratch page.
      using scratch = Tensor.empty(this.gpu, [this.pageSize, this.r + this.dr], this.dtype);
      const encoder = this.gpu.encoder();
      encoder.copyBufferToBuffer(this.pages.buffer, from * pageBytes, scratch.buffer, 0, pageBytes);
      encoder.copyBufferToBuffer(scratch.buffer, 0, this.pages.buffer, to * pageBytes, pageBytes);
      child.pages[full] = to;
    }
    const childId = this.nextId++;
    this.sequences.set(childId, child);
    return childId;
  }

  /** Frees sequence `id`; its pages return to the pool once no fork holds them. */
  free(id: number): void {
    const s = this.state(id);
    for (const page of s.pages) this.releasePage(page);
    this.sequences.delete(id);
  }

  /**
   * Appends new tokens: `counts[i]` (by default n) tokens of c_kv `[b, n, r]` and k_pe `[b, n, dr]`
   * (f32 or f16, converted to the cache's dtype) to sequence `ids[i]`, in one kernel.
   */
  async append(ids: readonly number[], cKv: Tensor, kPe: Tensor, counts?: readonly number[]): Promise<void> {
    const b = ids.length;
    check(
      cKv.shape.length === 3 && cKv.shape[0] === b && cKv.shape[2] === this.r,
      'shape-mismatch',
      () =>
        `${OP}.append: cKv: expected shape [b, n, r] = [${b}, *, ${this.r}], got [${cKv.shape.join(', ')}]`,
    );
    const n = cKv.shape[1]!;
    check(
      kPe.shape.length === 3 && kPe.shape[0] === b && kPe.shape[1] === n && kPe.shape[2] === this.dr,
      'shape-mismatch',
      () =>
        `${OP}.append: kPe: expected shape [b, n, dr] = [${b}, ${n}, ${this.dr}], got [${kPe.shape.join(', ')}]`,
    );
    check(
      kPe.dtype === cKv.dtype,
      'dtype-mismatch',
      () => `${OP}.append: kPe: expected dtype ${cKv.dtype} (cKv's), got ${kPe.dtype}`,
    );
    check(
      new Set(ids).size === b,
      'invalid-argument',
      () => `${OP}.append: ids: expected distinct sequence ids, got [${ids.join(', ')}]`,
    );
    if (counts !== undefined) {
      check(
        counts.length === b,
        'shape-mismatch',
        () => `${OP}.append: counts: expected ${b} entries, got ${counts.length}`,
      );
      for (const [i, c] of counts.entries()) {
        check(
          Number.isSafeInteger(c) && c >= 0 && c <= n,
          'invalid-argument',
          () => `${OP}.append: counts[${i}]: expected an integer in [0, ${n}], got ${c}`,
        );
      }
    }
    const all = ids.map((_, i) => counts?.[i] ?? n);
    await this.write(
      ids,
      cKv,
      kPe,
      all,
      all.map((_, i) => i * n),
    );
  }

  /**
   * Appends packed tokens: c_kv `[T, r]` and k_pe `[T, dr]` hold `counts[0]` tokens of `ids[0]`, then
   * `counts[1]` of `ids[1]`, and so on (`T = Σ counts`), as a layer call produces them.
   */
  async appendPacked(
    ids: readonly number[],
    cKv: Tensor,
    kPe: Tensor,
    counts: readonly number[],
  ): Promise<void> {
    const total = counts.reduce((a, c) => a + c, 0);
    check(
      cKv.shape.length === 2 && cKv.shape[0] === total && cKv.shape[1] === this.r,
      'shape-mismatch',
      () =>
        `${OP}.appendPacked: cKv: expected shape [Σ counts, r] = [${total}, ${this.r}], got [${cKv.shape.join(', ')}]`,
    );
    check(
      kPe.shape.length === 2 && kPe.shape[0] === total && kPe.shape[1] === this.dr,
      'shape-mismatch',
      () =>
        `${OP}.appendPacked: kPe: expected shape [Σ counts, dr] = [${total}, ${this.dr}], got [${kPe.shape.join(', ')}]`,
    );
    check(
      counts.length === ids.length && new Set(ids).size === ids.length,
      'invalid-argument',
      () =>
        `${OP}.appendPacked: expected distinct ids and one count per id, got ${ids.length} ids and ${counts.length} counts`,
    );
    const starts: number[] = [];
    let start = 0;
    for (const c of counts) {
      starts.push(start);
      start += c;
    }
    await this.write(ids, cKv, kPe, counts, starts);
  }

  private async write(
    ids: readonly number[],
    cKv: Tensor,
    kPe: Tensor,
    counts: readonly number[],
    starts: readonly number[],
  ): Promise<void> {
    const states = ids.map((id, i) => this.state(id, `ids[${i}]`));
    const needed = states.reduce((sum, s, i) => {
      const after = s.length + counts[i]!;
      return sum + Math.ceil(after / this.pageSize) - s.pages.length;
    }, 0);
    check(
      needed <= this.freeList.length,
      'limit-exceeded',
      () => `${OP}.append: needs ${needed} new pages, ${this.freeList.length} are free`,
    );
    const words: number[] = [];
    states.forEach((s, i) => {
      const count = counts[i]!;
      for (let t = 0; t < count; t++) {
        const pos = s.length + t;
        if (pos % this.pageSize === 0 && pos / this.pageSize === s.pages.length)
          s.pages.push(this.takePage());
        const page = s.pages[Math.floor(pos / this.pageSize)]!;
        words.push(starts[i]! + t, page * this.pageSize + (pos % this.pageSize));
      }
      s.length += count;
    });
    const tokens = words.length / 2;
    if (tokens === 0) return;
    using srcdst = u32Tensor(this.gpu, words);
    await dispatch(this.gpu, {
      label: 'mla cache append',
      code: mlaAppendCode({ input: cKv.dtype, cache: this.dtype, r: this.r, dr: this.dr }),
      buffers: [cKv, kPe, srcdst, this.pages],
      params: { layout: MLA_APPEND_PARAMS, values: { tokens } },
      workgroups: Math.ceil((tokens * (this.r + this.dr)) / MLA_APPEND_WORKGROUP),
    });
  }

  /** The block table of `ids` as `[b, maxPages]` words (unused entries 0) and their lengths. */
  tables(ids: readonly number[]): { words: Uint32Array; maxPages: number; lengths: number[] } {
    const states = ids.map((id, i) => this.state(id, `ids[${i}]`));
    const maxPages = Math.max(1, ...states.map((s) => s.pages.length));
    const words = new Uint32Array(ids.length * maxPages);
    for (const [i, s] of states.entries()) words.set(s.pages, i * maxPages);
    return { words, maxPages, lengths: states.map((s) => s.length) };
  }

  /** The cache slot of token j of sequence `id`. */
  slot(id: number, j: number): number {
    const s = this.state(id);
    return s.pages[Math.floor(j / this.pageSize)]! * this.pageSize + (j % this.pageSize);
  }

  /** Frees the pages' memory; the cache cannot be used afterwards. */
  dispose(): void {
    this.pages.dispose();
    this.sequences.clear();
  }

  /** Lets `using cache = new MlaCache(...)` dispose at the end of the scope. */
  [Symbol.dispose](): void {
    this.dispose();
  }
}

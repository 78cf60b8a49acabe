import { type Gpu, Tensor } from '@webattn/core';
import { testGpu } from '@webattn/core/testing';
import {
  compare,
  mlaAbsorbedAttention,
  mlaCacheBytesPerToken,
  randn,
  toleranceFor,
} from '@webattn/reference';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MlaCache, mlaAttentionPaged } from '../src/index.js';

const heads = 4;
const r = 32;
const dr = 8;
const dv = 16;
const scale = 0.2;

/** Host mirror of what each sequence of the cache holds. */
class Mirror {
  readonly tokens = new Map<number, { c: number[][]; k: number[][] }>();
  add(id: number) {
    this.tokens.set(id, { c: [], k: [] });
  }
  fork(from: number, to: number) {
    const s = this.tokens.get(from)!;
    this.tokens.set(to, { c: [...s.c], k: [...s.k] });
  }
}

let seed = 100;

async function append(gpu: Gpu, cache: MlaCache, mirror: Mirror, ids: number[], counts: number[]) {
  const n = Math.max(1, ...counts);
  const c = randn(ids.length * n * r, seed++);
  const k = randn(ids.length * n * dr, seed++);
  using cT = Tensor.from(gpu, c, [ids.length, n, r]);
  using kT = Tensor.from(gpu, k, [ids.length, n, dr]);
  await cache.append(ids, cT, kT, counts);
  ids.forEach((id, i) => {
    const s = mirror.tokens.get(id)!;
    for (let t = 0; t < counts[i]!; t++) {
      s.c.push(Array.from(c.subarray((i * n + t) * r, (i * n + t + 1) * r)));
      s.k.push(Array.from(k.subarray((i * n + t) * dr, (i * n + t + 1) * dr)));
    }
  });
}

async function check(gpu: Gpu, cache: MlaCache, mirror: Mirror, ids: number[], nq: number, options = {}) {
  const b = ids.length;
  const lengths = ids.map((id) => cache.length(id));
  expect(lengths).toEqual(ids.map((id) => mirror.tokens.get(id)!.c.length));
  const nk = Math.max(1, ...lengths);
  const cKv = new Float32Array(b * nk * r).fill(Number.NaN);
  const kPe = new Float32Array(b * nk * dr).fill(Number.NaN);
  ids.forEach((id, i) => {
    const s = mirror.tokens.get(id)!;
    for (const [j, row] of s.c.entries()) cKv.set(row, (i * nk + j) * r);
    for (const [j, row] of s.k.entries()) kPe.set(row, (i * nk + j) * dr);
  });
  const qL = randn(b * nq * heads * r, seed++);
  const qP = randn(b * nq * heads * dr, seed++);
  const w = randn(heads * r * dv, seed++);
  const ref = mlaAbsorbedAttention(qL, qP, cKv, kPe, w, lengths, {
    nq,
    nk,
    heads,
    kvLoraRank: r,
    qkRopeHeadDim: dr,
    vHeadDim: dv,
    scale,
  });
  using q = Tensor.from(gpu, qL, [b, nq, heads, r]);
  using qp = Tensor.from(gpu, qP, [b, nq, heads, dr]);
  using wUv = Tensor.from(gpu, w, [heads, r, dv]);
  using o = await mlaAttentionPaged(gpu, q, qp, cache, ids, wUv, { scale, ...options });
  const result = compare(ref, await o.read(), toleranceFor('f32'));
  expect(result.ok, JSON.stringify(result)).toBe(true);
}

describe('MlaCache', () => {
  let gpu: Gpu;
  beforeAll(async () => {
    gpu = await testGpu();
  });
  afterAll(() => gpu.destroy());

  function nanCache(pages: number, pageSize: number) {
    const cache = new MlaCache(gpu, { kvLoraRank: r, qkRopeHeadDim: dr, pages, pageSize, dtype: 'f32' });
    gpu.write(cache.pages.buffer, new Float32Array(cache.pages.size).fill(Number.NaN));
    return cache;
  }

  it('reports bytes per token like the reference', () => {
    using cache = new MlaCache(gpu, { kvLoraRank: 256, qkRopeHeadDim: 32, pages: 1 });
    expect(cache.bytesPerToken).toBe(mlaCacheBytesPerToken({ kvLoraRank: 256, qkRopeHeadDim: 32 }));
    expect(cache.bytesPerToken).toBe(576);
    expect(cache.pageSize).toBe(64);
  });

  it('prefill in chunks, then decode, over NaN-filled pages, every kernel path', async () => {
    using cache = nanCache(40, 16);
    const mirror = new Mirror();
    const ids = [cache.create(), cache.create(), cache.create(), cache.create()];
    for (const id of ids) mirror.add(id);
    // Chunked prefill: 37, 0, 5 and 19 tokens, then more, attending after each append.
    await append(gpu, cache, mirror, ids, [37, 0, 5, 19]);
    await check(gpu, cache, mirror, ids, 5);
    await append(gpu, cache, mirror, ids, [30, 0, 30, 1]);
    await check(gpu, cache, mirror, ids, 3, { splits: 3 });
    await check(gpu, cache, mirror, ids, 7, { kernel: 'flash' });
    for (let step = 0; step < 3; step++) {
      await append(gpu, cache, mirror, ids, [1, 1, 1, 1]);
      await check(gpu, cache, mirror, ids, 1, step === 1 ? { splits: 2 } : {});
    }
    expect(ids.map((id) => cache.length(id))).toEqual([70, 3, 38, 23]);
  });

  it('forks share full pages and copy the partial one; free returns pages', async () => {
    using cache = nanCache(12, 16);
    const mirror = new Mirror();
    const a = cache.create();
    mirror.add(a);
    await append(gpu, cache, mirror, [a], [21]);
    const before = cache.freePages;
    const b = cache.fork(a);
    mirror.fork(a, b);
    // One partial page copied; the full one is shared.
    expect(cache.freePages).toBe(before - 1);
    expect(cache.blockTable(b)[0]).toBe(cache.blockTable(a)[0]);
    expect(cache.blockTable(b)[1]).not.toBe(cache.blockTable(a)[1]);
    await append(gpu, cache, mirror, [a, b], [4, 15]);
    await check(gpu, cache, mirror, [a, b], 2);
    cache.free(a);
    await check(gpu, cache, mirror, [b], 1);
    cache.free(b);
    expect(cache.freePages).toBe(12);
  });

  it('rejects bad input, naming the argument', async () => {
    using cache = nanCache(2, 4);
    const a = cache.create();
    using c = Tensor.from(gpu, randn(9 * r, 1), [1, 9, r]);
    using k = Tensor.from(gpu, randn(9 * dr, 1), [1, 9, dr]);
    await expect(cache.append([a], c, k)).rejects.toThrow(/needs 3 new pages, 2 are free/);
    await expect(cache.append([a, a], c, k)).rejects.toThrow(
      /cKv: expected shape \[b, n, r\] = \[2, \*, 32\]/,
    );
    await expect(cache.append([7], c, k)).rejects.toThrow(/ids\[0\]: expected a live sequence id, got 7/);
    await expect(cache.append([a], c, k, [10])).rejects.toThrow(
      /counts\[0\]: expected an integer in \[0, 9\], got 10/,
    );
    expect(() => cache.fork(5)).toThrow(/id: expected a live sequence id, got 5/);
    expect(() => new MlaCache(gpu, { kvLoraRank: 0, qkRopeHeadDim: 8, pages: 1 })).toThrow(
      /options.kvLoraRank: expected an integer >= 1, got 0/,
    );
  });

  it('leaks no GPU memory', async () => {
    const live = gpu.memory().liveBuffers;
    {
      using cache = nanCache(8, 16);
      const mirror = new Mirror();
      const a = cache.create();
      mirror.add(a);
      await append(gpu, cache, mirror, [a], [20]);
      await check(gpu, cache, mirror, [a], 2, { splits: 2 });
      await check(gpu, cache, mirror, [a], 2, { kernel: 'flash' });
    }
    expect(gpu.memory().liveBuffers).toBe(live);
  });
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Gpu, randomBernoulli, randomNormal, WebAttnError } from '../src/index.js';
import { testGpu } from '../src/testing.js';

describe('random fills on SwiftShader', () => {
  let gpu: Gpu;
  beforeAll(async () => {
    gpu = await testGpu();
  });
  afterAll(() => gpu.destroy());

  const moments = (x: Float32Array) => {
    let sum = 0;
    let squares = 0;
    for (const v of x) {
      sum += v;
      squares += v * v;
    }
    const mean = sum / x.length;
    return { mean, std: Math.sqrt(squares / x.length - mean * mean) };
  };

  it('fills with normal samples of the requested scale, the same for the same seed', async () => {
    const a = await randomNormal(gpu, [257, 129], 7, { scale: 2 });
    const b = await randomNormal(gpu, [257, 129], 7, { scale: 2 });
    const c = await randomNormal(gpu, [257, 129], 8, { scale: 2 });
    const [x, y, z] = [await a.read(), await b.read(), await c.read()];
    expect(Array.from(y)).toEqual(Array.from(x));
    expect(x.some((v, i) => v !== z[i])).toBe(true);
    const { mean, std } = moments(x);
    expect(Math.abs(mean)).toBeLessThan(0.05);
    expect(Math.abs(std - 2)).toBeLessThan(0.05);
    // Within 4.5 standard deviations, as 33k normal samples are, and finite.
    expect(x.every((v) => Number.isFinite(v) && Math.abs(v) < 9)).toBe(true);
    for (const t of [a, b, c]) t.dispose();
  });

  it('writes f16 pairs, the odd last element included, as the f32 values rounded', async () => {
    const f32 = await randomNormal(gpu, [1001], 3);
    const f16 = await randomNormal(gpu, [1001], 3, { dtype: 'f16' });
    const [x, y] = [await f32.read(), await f16.read()];
    expect(y.length).toBe(1001);
    for (let i = 0; i < x.length; i++)
      expect(Math.abs(y[i]! - x[i]!)).toBeLessThanOrEqual(Math.abs(x[i]!) * 2 ** -10);
    expect(y[1000]).not.toBe(0);
    f32.dispose();
    f16.dispose();
  });

  it('refuses a seed that is not a u32, naming it', async () => {
    await expect(randomNormal(gpu, [4], -1)).rejects.toThrow(WebAttnError);
    await expect(randomNormal(gpu, [4], 1.5)).rejects.toThrow(
      /seed: expected an integer in \[0, 2\^32\), got 1.5/,
    );
  });

  it('fills masks with 0 and 1 at the requested probability, f16 the same as f32', async () => {
    const f32 = await randomBernoulli(gpu, [301, 301], 9, { probability: 0.25 });
    const f16 = await randomBernoulli(gpu, [301, 301], 9, { probability: 0.25, dtype: 'f16' });
    const [x, y] = [await f32.read(), await f16.read()];
    expect(x.every((v) => v === 0 || v === 1)).toBe(true);
    expect(Array.from(y)).toEqual(Array.from(x));
    const ones = x.reduce((a, v) => a + v, 0) / x.length;
    expect(Math.abs(ones - 0.25)).toBeLessThan(0.01);
    const all = await randomBernoulli(gpu, [5], 1, { probability: 1 });
    const none = await randomBernoulli(gpu, [5], 1, { probability: 0 });
    expect(Array.from(await all.read())).toEqual([1, 1, 1, 1, 1]);
    expect(Array.from(await none.read())).toEqual([0, 0, 0, 0, 0]);
    for (const t of [f32, f16, all, none]) t.dispose();
  });

  it('refuses a probability outside [0, 1], naming it', async () => {
    await expect(randomBernoulli(gpu, [4], 1, { probability: 1.5 })).rejects.toThrow(
      /probability: expected a number in \[0, 1\], got 1.5/,
    );
  });
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  f16BitsToF32,
  f32ToF16Bits,
  type Gpu,
  roundToF16,
  sizeClass,
  Tensor,
  WebAttnError,
} from '../src/index.js';
import { testGpu } from '../src/testing.js';

describe('f16 conversion', () => {
  it('rounds to nearest, ties to even, across normal, subnormal and overflow ranges', () => {
    expect(f32ToF16Bits(1)).toBe(0x3c00);
    expect(f32ToF16Bits(-2)).toBe(0xc000);
    expect(f32ToF16Bits(65504)).toBe(0x7bff); // largest finite f16
    expect(f32ToF16Bits(65520)).toBe(0x7c00); // halfway to the next binade rounds to inf
    expect(f32ToF16Bits(2 ** -24)).toBe(0x0001); // smallest subnormal
    expect(f32ToF16Bits(2 ** -26)).toBe(0x0000); // below half of it: zero
    expect(f32ToF16Bits(-0)).toBe(0x8000);
    // 1 + 2^-11 is exactly between 1 and 1 + 2^-10: ties go to the even mantissa (1.0).
    expect(f32ToF16Bits(1 + 2 ** -11)).toBe(0x3c00);
    // 1 + 3·2^-11 is between 1 + 2^-10 (odd) and 1 + 2^-9 (even): rounds up to the even one.
    expect(f32ToF16Bits(1 + 3 * 2 ** -11)).toBe(0x3c02);
    expect(Number.isNaN(f16BitsToF32(f32ToF16Bits(Number.NaN)))).toBe(true);
    expect(f16BitsToF32(f32ToF16Bits(Number.NEGATIVE_INFINITY))).toBe(Number.NEGATIVE_INFINITY);
  });

  it('round-trips every f16 bit pattern exactly', () => {
    for (let bits = 0; bits < 0x10000; bits++) {
      const value = f16BitsToF32(bits);
      if (Number.isNaN(value)) continue;
      expect(f32ToF16Bits(value)).toBe(bits);
    }
  });

  it('keeps the rounding error within half an f16 ulp', () => {
    for (let i = 0; i < 1000; i++) {
      const x = (Math.sin(i * 12.9898) * 43758.5453) % 1000;
      const r = roundToF16([x])[0]!;
      const ulp = 2 ** (Math.floor(Math.log2(Math.abs(x) || 1)) - 10);
      expect(Math.abs(r - x)).toBeLessThanOrEqual(ulp / 2 + 1e-12);
    }
  });
});

describe('Tensor on SwiftShader', () => {
  let gpu: Gpu;
  beforeAll(async () => {
    gpu = await testGpu();
  });
  afterAll(() => gpu.destroy());

  it('round-trips f32 data exactly', async () => {
    const data = Float32Array.from({ length: 1000 }, (_, i) => i * 0.37 - 100);
    using t = Tensor.from(gpu, data, [10, 100]);
    expect(t.size).toBe(1000);
    expect(await t.read()).toEqual(data);
  });

  it('stores f16 rounded to nearest even, odd element counts included', async () => {
    const data = Float32Array.from([1, 1 + 2 ** -11, 1 + 3 * 2 ** -11, 65504, 70000, -3.25, 1e-8]);
    using t = Tensor.from(gpu, data, [7], 'f16');
    expect(t.byteLength).toBe(16);
    expect(await t.read()).toEqual(roundToF16(data));
  });

  it('accepts raw f16 bits', async () => {
    using t = Tensor.from(gpu, Uint16Array.from([0x3c00, 0xc000, 0x7c00]), [3], 'f16');
    expect(Array.from(await t.read())).toEqual([1, -2, Number.POSITIVE_INFINITY]);
  });

  it('an upload with work queued lands after that work, in the same submission', async () => {
    using t = Tensor.from(gpu, Float32Array.from([1, 2, 3, 4]), [4]);
    using copy = Tensor.empty(gpu, [4]);
    await gpu.sync();
    // Queued, not submitted: a copy that must see the old values.
    gpu.encoder().copyBufferToBuffer(t.buffer, 0, copy.buffer, 0, t.byteLength);
    const submit = gpu.device.queue.submit.bind(gpu.device.queue);
    let submits = 0;
    gpu.device.queue.submit = (buffers) => {
      submits++;
      submit(buffers);
    };
    try {
      gpu.write(t.buffer, Float32Array.from([5, 6, 7, 8]));
      expect(submits).toBe(0);
    } finally {
      gpu.device.queue.submit = submit;
    }
    expect(Array.from(await copy.read())).toEqual([1, 2, 3, 4]);
    expect(Array.from(await t.read())).toEqual([5, 6, 7, 8]);
    // With nothing queued the queue writes directly.
    gpu.write(t.buffer, Float32Array.from([9, 10]), 8);
    expect(Array.from(await t.read())).toEqual([5, 6, 9, 10]);
  });

  it('uploads behind queued work share staging chunks, reused once the GPU is done with them', async () => {
    await gpu.sync();
    const before = gpu.stagingStats().chunksCreated;
    const tensors: Tensor[] = [];
    try {
      for (let step = 0; step < 3; step++) {
        // Many small uploads, each behind queued work (the previous upload's copy) and each read
        // back in the same submission through a copy queued after it.
        gpu.encoder();
        const copies = Array.from({ length: 40 }, (_, i) => {
          const t = Tensor.from(
            gpu,
            Float32Array.from({ length: 33 }, (_, j) => step * 1000 + i * 33 + j),
            [33],
          );
          const copy = Tensor.empty(gpu, [33]);
          gpu.encoder().copyBufferToBuffer(t.buffer, 0, copy.buffer, 0, t.byteLength);
          tensors.push(t, copy);
          return copy;
        });
        // A large upload takes a staging buffer of its own.
        const large = Tensor.from(
          gpu,
          Float32Array.from({ length: 8192 }, (_, j) => j - step),
          [8192],
        );
        tensors.push(large);
        for (const [i, copy] of copies.entries()) {
          const got = await copy.read();
          expect(got[0]).toBe(step * 1000 + i * 33);
          expect(got[32]).toBe(step * 1000 + i * 33 + 32);
        }
        expect((await large.read())[8191]).toBe(8191 - step);
        for (const t of tensors.splice(0)) t.dispose();
        await gpu.sync();
      }
    } finally {
      for (const t of tensors) t.dispose();
    }
    // 40 uploads of 132 bytes fit one 64 KiB chunk; each step's chunk came back mapped for the next.
    expect(gpu.stagingStats().chunksCreated - before).toBeLessThanOrEqual(1);
    expect(gpu.stagingStats().freeChunks).toBeGreaterThanOrEqual(1);
  });

  it('zeros() clears a reused buffer', async () => {
    const shape = [64];
    Tensor.from(gpu, new Float32Array(64).fill(7), shape).dispose();
    using z = Tensor.zeros(gpu, shape);
    expect(Array.from(await z.read()).every((x) => x === 0)).toBe(true);
  });

  it('reuses pooled buffers of the same size class', () => {
    const a = Tensor.empty(gpu, [1000]);
    const buffer = a.buffer;
    a.dispose();
    using b = Tensor.empty(gpu, [999]);
    expect(b.buffer).toBe(buffer);
    expect(sizeClass(4000)).toBeLessThanOrEqual(4000 * 1.125);
  });

  it('wraps a foreign buffer without taking ownership', async () => {
    const buffer = gpu.device.createBuffer({
      size: 16,
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
    });
    gpu.device.queue.writeBuffer(buffer, 0, Float32Array.from([1, 2, 3, 4]));
    const t = Tensor.wrap(gpu, buffer, [2, 2]);
    expect(Array.from(await t.read())).toEqual([1, 2, 3, 4]);
    t.dispose();
    // Still usable by its owner after the tensor is gone.
    gpu.device.queue.writeBuffer(buffer, 0, Float32Array.from([5]));
    expect(Array.from(await Tensor.wrap(gpu, buffer, [1]).read())).toEqual([5]);
    buffer.destroy();
    expect(() =>
      Tensor.wrap(gpu, gpu.device.createBuffer({ size: 8, usage: GPUBufferUsage.STORAGE }), [4]),
    ).toThrow(/shape \[4\] f32 needs 16 bytes, the buffer has 8/);
  });

  it('copyFrom gathers tensors one after the other, in order with queued work', async () => {
    using a = Tensor.from(gpu, [1, 2, 3], [3]);
    using b = Tensor.from(gpu, [4, 5], [2]);
    using dest = Tensor.from(gpu, [9, 9, 9, 9, 9, 9], [6]);
    dest.copyFrom([a, b]);
    // The last element stays: the sources cover five of six.
    expect(Array.from(await dest.read())).toEqual([1, 2, 3, 4, 5, 9]);
    using half = Tensor.from(gpu, [1], [1], 'f16');
    expect(() => dest.copyFrom([a, half])).toThrow(
      /sources\[1\]: expected dtype f32 \(the destination's\), got f16/,
    );
    expect(() => dest.copyFrom([a, b, b])).toThrow(
      /sources: expected at most 24 bytes \(the destination's\), got 28/,
    );
  });

  it('rejects bad shapes, data and dtypes with WebAttnError', () => {
    expect(() => Tensor.from(gpu, [1, 2, 3], [2, 2])).toThrow(
      /data: expected 4 elements for shape \[2, 2\], got 3/,
    );
    expect(() => Tensor.empty(gpu, [2, -1])).toThrow(/shape\[1\]: expected a non-negative integer, got -1/);
    expect(() => Tensor.empty(gpu, [1.5])).toThrow(WebAttnError);
    expect(() => Tensor.empty(gpu, [4], 'bf16' as 'f16')).toThrow(
      /dtype: expected one of f32, f16, got "bf16"/,
    );
    expect(() => Tensor.from(gpu, new Uint16Array(2), [2], 'f32')).toThrow(/Uint16Array holds f16 bits/);
    const huge = gpu.caps.limits.maxStorageBufferBindingSize;
    expect(() => Tensor.empty(gpu, [huge])).toThrow(/exceed this device's maxStorageBufferBindingSize/);
  });

  it('refuses use after dispose', async () => {
    const t = Tensor.from(gpu, [1, 2], [2]);
    t.dispose();
    t.dispose();
    expect(t.disposed).toBe(true);
    await expect(t.read()).rejects.toMatchObject({ code: 'disposed' });
  });
});

describe('buffer pool on SwiftShader', () => {
  it('keeps work queued on a buffer valid when releasing it destroys the buffer', async () => {
    // A pool that keeps no free bytes destroys every released buffer: the queued clear must still run.
    const gpu = await testGpu();
    const { createGpu } = await import('../src/index.js');
    const small = await createGpu({
      device: gpu.device,
      adapterInfo: gpu.device.adapterInfo,
      maxPooledBytes: 0,
    });
    const keep = Tensor.from(small, new Float32Array(64).fill(3), [64]);
    const scratch = Tensor.zeros(small, [64]); // a clear queued on the pending encoder
    small.encoder().copyBufferToBuffer(scratch.buffer, 0, keep.buffer, 0, 128);
    scratch.dispose(); // destroyed at once: pending work must be submitted first
    await expect(small.sync()).resolves.toBeUndefined();
    const values = await keep.read();
    expect(Array.from(values.subarray(0, 32)).every((x) => x === 0)).toBe(true);
    expect(values[32]).toBe(3);
    keep.dispose();
    small.destroy();
    gpu.destroy();
  });
  it('over its budget destroys the buffers released longest ago, keeping the latest', async () => {
    const gpu = await testGpu();
    const { createGpu } = await import('../src/index.js');
    // Room for two free 256-byte buffers.
    const small = await createGpu({
      device: gpu.device,
      adapterInfo: gpu.device.adapterInfo,
      maxPooledBytes: 512,
    });
    const [a, b, c] = [0, 1, 2].map(() => Tensor.zeros(small, [64]));
    const [bufferA, bufferB, bufferC] = [a!.buffer, b!.buffer, c!.buffer];
    a!.dispose();
    b!.dispose();
    c!.dispose(); // the third over budget: a's buffer, the oldest, goes
    expect(small.memory()).toMatchObject({ freeBuffers: 2, freeBytes: 512 });
    const again = [0, 1].map(() => Tensor.empty(small, [64]));
    expect(new Set(again.map((t) => t.buffer))).toEqual(new Set([bufferB, bufferC]));
    expect(again.some((t) => t.buffer === bufferA)).toBe(false);
    for (const t of again) t.dispose();
    small.destroy();
    gpu.destroy();
  });
});

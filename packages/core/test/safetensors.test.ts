import { describe, expect, it } from 'vitest';
import { WebAttnError } from '../src/errors.js';
import { roundToF16 } from '../src/f16.js';
import {
  f32ToBf16Bits,
  type HostTensor,
  type HostTensorInput,
  readSafetensors,
  toBf16Bits,
  writeSafetensors,
} from '../src/safetensors/index.js';

const encoder = new TextEncoder();

/**
 * A file assembled by hand: the u64 length prefix (the JSON's byte length unless `length` says
 * otherwise), the header text, then `data`.
 */
function build(header: string | object, data: ArrayLike<number> = [], length?: bigint): Uint8Array {
  const json = encoder.encode(typeof header === 'string' ? header : JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, length ?? BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

/** Little-endian bytes of a list of values stored with `width` bytes each (bigint for 8). */
function le(width: 2 | 4 | 8, values: readonly (number | bigint)[]): number[] {
  const bytes = new Uint8Array(width * values.length);
  const view = new DataView(bytes.buffer);
  values.forEach((v, i) => {
    if (width === 8) view.setBigInt64(i * 8, BigInt(v), true);
    else if (width === 4) view.setUint32(i * 4, Number(v), true);
    else view.setUint16(i * 2, Number(v), true);
  });
  return [...bytes];
}

/** Runs `action`, asserting it throws a WebAttnError with `code` whose message contains `fragment`. */
function expectError(action: () => unknown, code: string, fragment: string): void {
  let caught: unknown;
  try {
    action();
  } catch (error) {
    caught = error;
  }
  expect(caught, `expected a ${code} error mentioning ${JSON.stringify(fragment)}`).toBeInstanceOf(
    WebAttnError,
  );
  expect((caught as WebAttnError).code).toBe(code);
  expect((caught as WebAttnError).message).toContain(fragment);
}

const expectMalformed = (bytes: Uint8Array, fragment: string) =>
  expectError(() => readSafetensors(bytes), 'malformed-file', fragment);

/** A valid one-tensor header entry. */
const f32Entry = (begin: number, count: number) => ({
  dtype: 'F32',
  shape: [count],
  data_offsets: [begin, begin + 4 * count],
});

function sampleTensors(): HostTensorInput[] {
  const floats = Float32Array.from([1, -2.5, 3.3, 1e-6, -65504, 70000, 1 + 2 ** -9, 0]);
  return [
    { name: 'w.f32', dtype: 'f32', shape: [2, 4], data: floats },
    { name: 'w.f16', dtype: 'f16', shape: [4, 2], data: floats },
    { name: 'w.bf16', dtype: 'bf16', shape: [8], data: floats },
    { name: 'idx.i32', dtype: 'i32', shape: [3], data: Int32Array.from([0, -1, 2 ** 31 - 1]) },
    {
      name: 'idx.i64',
      dtype: 'i64',
      shape: [1, 3],
      data: BigInt64Array.from([2n ** 40n + 5n, -(2n ** 62n), 9007199254740993n]),
    },
    { name: 'scalar', dtype: 'f16', shape: [], data: Float32Array.of(0.5) },
    { name: 'empty', dtype: 'bf16', shape: [0, 3], data: new Float32Array(0) },
    { name: 'empty.i64', dtype: 'i64', shape: [2, 0], data: new BigInt64Array(0) },
    { name: 'scalar.i32', dtype: 'i32', shape: [], data: Int32Array.of(-7) },
  ];
}

/** What reading back `tensor` must give: the data at the precision of its dtype. */
function expectedData(tensor: HostTensorInput): HostTensor['data'] {
  if (tensor.dtype === 'f16') return roundToF16(tensor.data as Float32Array);
  if (tensor.dtype === 'bf16') {
    const bits = toBf16Bits(tensor.data as Float32Array);
    return new Float32Array(Uint32Array.from(bits, (b) => b << 16).buffer);
  }
  return tensor.data;
}

describe('safetensors round trip', () => {
  it('reads back every dtype, scalars and empty tensors, with metadata', () => {
    const tensors = sampleTensors();
    const metadata = { format: 'pt', note: 'ünïcode ✓', empty: '' };
    const file = writeSafetensors(tensors, metadata);
    const read = readSafetensors(file);
    expect(read.metadata).toEqual(metadata);
    expect([...read.tensors.keys()]).toEqual(tensors.map((t) => t.name));
    for (const t of tensors) {
      const got = read.tensors.get(t.name)!;
      expect(got.name).toBe(t.name);
      expect(got.dtype).toBe(t.dtype);
      expect(got.shape).toEqual(t.shape);
      expect(got.data).toEqual(expectedData(t));
    }
  });

  it('reads a file placed at every byte offset of a larger buffer', () => {
    const tensors = sampleTensors();
    const file = writeSafetensors(tensors, { a: 'b' });
    for (let offset = 0; offset < 16; offset++) {
      const big = new Uint8Array(file.length + 32).fill(0xee);
      big.set(file, offset);
      const view = big.subarray(offset, offset + file.length);
      const read = readSafetensors(view);
      for (const t of tensors) expect(read.tensors.get(t.name)!.data).toEqual(expectedData(t));
      expect(read.metadata).toEqual({ a: 'b' });
    }
  });

  it('keeps f16 and bf16 values bit-exact when written again', () => {
    const first = writeSafetensors(sampleTensors());
    const again = writeSafetensors(readSafetensors(first).tensors.values());
    expect(again).toEqual(first);
  });

  it('writes deterministic, aligned, gap-free files with a space-padded header', () => {
    const file = writeSafetensors(sampleTensors(), { z: '1', a: '2' });
    expect(writeSafetensors(sampleTensors(), { z: '1', a: '2' })).toEqual(file);
    const view = new DataView(file.buffer, file.byteOffset);
    const n = Number(view.getBigUint64(0, true));
    expect(n % 8).toBe(0);
    const text = new TextDecoder().decode(file.subarray(8, 8 + n));
    expect(text.trimEnd().length).toBeGreaterThan(0);
    expect(text.slice(text.trimEnd().length)).toMatch(/^ *$/);
    const header = JSON.parse(text) as Record<string, { dtype: string; data_offsets: [number, number] }>;
    // Metadata first, then tensors in insertion order.
    expect(Object.keys(header)).toEqual(['__metadata__', ...sampleTensors().map((t) => t.name)]);
    // Like the reference writer: tensors packed by element size, largest first, no gaps, ending at EOF.
    const size: Record<string, number> = { I64: 8, F32: 4, I32: 4, F16: 2, BF16: 2 };
    const spans = Object.entries(header)
      .filter(([k]) => k !== '__metadata__')
      .map(([, v]) => ({ width: size[v.dtype]!, begin: v.data_offsets[0], end: v.data_offsets[1] }))
      .sort((a, b) => a.begin - b.begin || a.end - b.end);
    let at = 0;
    for (const s of spans) {
      expect(s.begin).toBe(at);
      expect((8 + n + s.begin) % s.width).toBe(0);
      at = s.end;
    }
    expect(8 + n + at).toBe(file.length);
  });

  it('handles names an object would mishandle: __proto__, integer-like, empty, lone surrogates', () => {
    const names = ['__proto__', 'constructor', '10', '2', '', '\ud800', 'a"b\\c\n'];
    const file = writeSafetensors(
      names.map((name, i) => ({ name, dtype: 'i32' as const, shape: [1], data: Int32Array.of(i) })),
      Object.fromEntries([['__proto__', 'not a prototype']]),
    );
    const read = readSafetensors(file);
    for (const [i, name] of names.entries()) expect(read.tensors.get(name)!.data).toEqual(Int32Array.of(i));
    expect(read.tensors.size).toBe(names.length);
    expect(Object.entries(read.metadata)).toEqual([['__proto__', 'not a prototype']]);
    expect(({} as Record<string, unknown>).dtype).toBeUndefined();
  });

  it('writes an empty file that reads back as empty', () => {
    const read = readSafetensors(writeSafetensors([]));
    expect(read.tensors.size).toBe(0);
    expect(read.metadata).toEqual({});
  });

  it('rounds bf16 to nearest even, with NaN kept a NaN and overflow to inf', () => {
    expect(f32ToBf16Bits(1)).toBe(0x3f80);
    expect(f32ToBf16Bits(-3)).toBe(0xc040);
    // 1 + 2^-8 is halfway between 1 (even) and 1 + 2^-7: goes to 1.
    expect(f32ToBf16Bits(1 + 2 ** -8)).toBe(0x3f80);
    // 1 + 3·2^-8 is halfway between 1 + 2^-7 (odd) and 1 + 2^-6 (even): goes up.
    expect(f32ToBf16Bits(1 + 3 * 2 ** -8)).toBe(0x3f82);
    expect(f32ToBf16Bits(1 + 2 ** -8 + 2 ** -20)).toBe(0x3f81);
    expect(f32ToBf16Bits(3.4028234663852886e38)).toBe(0x7f80);
    expect(f32ToBf16Bits(Number.NEGATIVE_INFINITY)).toBe(0xff80);
    expect(f32ToBf16Bits(-0)).toBe(0x8000);
    const nan = f32ToBf16Bits(Number.NaN);
    expect(nan & 0x7f80).toBe(0x7f80);
    expect(nan & 0x7f).not.toBe(0);
  });
});

describe('safetensors hand-built file', () => {
  it('reads F16, BF16, F32, I32 and I64 bytes set by hand, with a gap and an unaligned data buffer', () => {
    const header = {
      __metadata__: { format: 'pt' },
      h: { dtype: 'F16', shape: [2, 2], data_offsets: [0, 8] },
      b: { dtype: 'BF16', shape: [3], data_offsets: [8, 14] },
      // bytes 14..16 are covered by no tensor: allowed
      q: { dtype: 'I64', shape: [2], data_offsets: [16, 32] },
      f: { dtype: 'F32', shape: [], data_offsets: [32, 36] },
      i: { dtype: 'I32', shape: [1, 2], data_offsets: [36, 44] },
      e: { dtype: 'F32', shape: [0], data_offsets: [44, 44] },
    };
    const data = [
      ...le(2, [0x3c00, 0xc000, 0x3555, 0x0001]), // 1, -2, 0.333251953125, 2^-24
      ...le(2, [0x3f80, 0xc040, 0x7f80]), // 1, -3, inf
      0xaa,
      0xbb,
      ...le(8, [2n ** 40n + 5n, -(2n ** 33n)]),
      ...le(4, [0x40490fdb]), // pi as f32
      ...le(4, [0xffffffff, 0x7fffffff]), // -1, 2^31 - 1
    ];
    const file = build(header, data);
    expect((8 + JSON.stringify(header).length) % 8).not.toBe(0); // the data buffer is unaligned
    const { tensors, metadata } = readSafetensors(file);
    expect(metadata).toEqual({ format: 'pt' });
    expect([...tensors.keys()]).toEqual(['h', 'b', 'q', 'f', 'i', 'e']);
    expect(tensors.get('h')).toEqual({
      name: 'h',
      dtype: 'f16',
      shape: [2, 2],
      data: Float32Array.of(1, -2, 0.333251953125, 2 ** -24),
    });
    expect(tensors.get('b')).toEqual({
      name: 'b',
      dtype: 'bf16',
      shape: [3],
      data: Float32Array.of(1, -3, Number.POSITIVE_INFINITY),
    });
    expect(tensors.get('q')!.data).toEqual(BigInt64Array.of(1099511627781n, -8589934592n));
    expect(tensors.get('q')!.dtype).toBe('i64');
    expect(tensors.get('f')!.data).toEqual(Float32Array.of(Math.fround(Math.PI)));
    expect(tensors.get('f')!.shape).toEqual([]);
    expect(tensors.get('i')!.data).toEqual(Int32Array.of(-1, 2 ** 31 - 1));
    expect(tensors.get('e')!.data).toEqual(new Float32Array(0));
  });

  it('shares memory with an aligned input for f32 data (documented) and copies unaligned data', () => {
    const header = '{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}  ';
    const aligned = build(header, le(4, [0x3f800000]));
    expect((8 + header.length) % 4).toBe(0);
    const shared = readSafetensors(aligned).tensors.get('x')!.data as Float32Array;
    expect(shared.buffer).toBe(aligned.buffer);
    const big = new Uint8Array(aligned.length + 1);
    big.set(aligned, 1);
    const copied = readSafetensors(big.subarray(1)).tensors.get('x')!.data as Float32Array;
    expect(copied.buffer).not.toBe(big.buffer);
    expect(copied[0]).toBe(1);
  });
});

describe('safetensors reader validation', () => {
  it('rejects files shorter than the length prefix', () => {
    for (let n = 0; n < 8; n++)
      expectMalformed(new Uint8Array(n), `file is ${n} bytes long, shorter than the 8-byte`);
  });

  it('rejects a header length past the end of the file', () => {
    expectMalformed(build('{}', [], 3n), 'header length 3 (bytes 0 to 8 of the file) runs past the end');
    expectMalformed(build('{}', [], 1000n), 'only 2 bytes follow the length prefix');
  });

  it('rejects a header length over the bound, without reading or allocating it', () => {
    expectMalformed(build('{}', [], 100_000_001n), 'header length 100000001');
    expectMalformed(build('{}', [], 2n ** 32n), 'over the limit of 100000000 bytes');
    expectMalformed(build('{}', [], 2n ** 53n + 1n), 'header length 9007199254740993');
    expectMalformed(build('{}', [], 2n ** 64n - 1n), 'header length 18446744073709551615');
  });

  it('rejects a header that is not UTF-8', () => {
    const file = build('{"a\u00e9":{}}');
    file[11] = 0xff; // inside the name, replacing the first byte of é
    expectMalformed(file, 'is not valid UTF-8');
  });

  it('rejects a header that is not JSON, or starts with a byte order mark', () => {
    expectMalformed(build('{'), 'is not valid JSON');
    expectMalformed(build(''), 'is not valid JSON');
    expectMalformed(build('{"a":1,}'), 'header (8 bytes at file offset 8) is not valid JSON');
    expectMalformed(build('\ufeff{}'), 'is not valid JSON');
  });

  it('rejects a header that is not a JSON object', () => {
    expectMalformed(build('[]'), 'header: expected a JSON object, got an array of length 0');
    expectMalformed(build('null'), 'expected a JSON object, got null');
    expectMalformed(build('42'), 'expected a JSON object, got 42');
    expectMalformed(build('"x"'), 'expected a JSON object, got "x"');
  });

  it('rejects a JSON nesting bomb before parsing it, but not brackets inside strings', () => {
    expectMalformed(build(`{"a":${'['.repeat(1_000_000)}`), 'nests deeper than 64 levels at file offset 76');
    expectMalformed(build(`{"a":${'{"b":'.repeat(100)}1${'}'.repeat(100)}}`), 'nests deeper than 64');
    const name = `[{"\\"${'['.repeat(200)}`;
    const file = build({ [name]: f32Entry(0, 1) }, [0, 0, 0, 0]);
    expect(readSafetensors(file).tensors.get(name)!.data).toEqual(Float32Array.of(0));
  });

  it('rejects entries that are not objects', () => {
    expectMalformed(
      build({ a: 5 }),
      'tensor "a": expected an object with dtype, shape and data_offsets, got 5',
    );
    expectMalformed(build({ a: null }), 'tensor "a": expected an object');
    expectMalformed(build({ a: [1, 2] }), 'got an array of length 2');
    expectMalformed(build({ a: 'F32' }), 'got "F32"');
  });

  it('rejects entries missing a field', () => {
    const { dtype, shape, data_offsets } = f32Entry(0, 1);
    expectMalformed(build({ a: { shape, data_offsets } }, [0, 0, 0, 0]), 'tensor "a": missing "dtype"');
    expectMalformed(build({ a: { dtype, data_offsets } }, [0, 0, 0, 0]), 'tensor "a": missing "shape"');
    expectMalformed(build({ a: { dtype, shape } }, [0, 0, 0, 0]), 'tensor "a": missing "data_offsets"');
    // A field under "__proto__" is not a field.
    expectMalformed(
      build(`{"a":{"dtype":"F32","data_offsets":[0,4],"__proto__":{"shape":[1]}}}`, [0, 0, 0, 0]),
      'missing "shape"',
    );
  });

  it('rejects fields of the wrong JSON type', () => {
    const d = [0, 0, 0, 0];
    expectMalformed(
      build({ a: { ...f32Entry(0, 1), dtype: 4 } }, d),
      'tensor "a": dtype: expected a string, got 4',
    );
    expectMalformed(build({ a: { ...f32Entry(0, 1), shape: '1' } }, d), 'shape: expected an array, got "1"');
    expectMalformed(
      build({ a: { ...f32Entry(0, 1), shape: null } }, d),
      'shape: expected an array, got null',
    );
    expectMalformed(
      build({ a: { ...f32Entry(0, 1), data_offsets: { 0: 0, 1: 4 } } }, d),
      'data_offsets: expected [begin, end], got an object',
    );
    expectMalformed(
      build({ a: { ...f32Entry(0, 1), data_offsets: [0, 4, 8] } }, d),
      'data_offsets: expected [begin, end], got an array of length 3',
    );
  });

  it('rejects unknown dtypes, naming them and the supported ones', () => {
    for (const dtype of ['F64', 'f32', 'U8', '__proto__', 'constructor', '']) {
      expectMalformed(
        build({ a: { ...f32Entry(0, 1), dtype } }, [0, 0, 0, 0]),
        `tensor "a": dtype ${JSON.stringify(dtype)} is not supported; supported dtypes: F32, F16, BF16, I32, I64`,
      );
    }
  });

  it('rejects shape entries that are not non-negative safe integers', () => {
    for (const bad of [-1, 1.5, '2', null, true, 2 ** 53, 1e300]) {
      expectMalformed(
        build({ a: { ...f32Entry(0, 1), shape: [1, bad] } }, [0, 0, 0, 0]),
        `tensor "a": shape[1]: expected a non-negative integer, got`,
      );
    }
  });

  it('rejects a rank over 8', () => {
    expectMalformed(
      build({ a: { ...f32Entry(0, 1), shape: Array(9).fill(1) } }, [0, 0, 0, 0]),
      'tensor "a": shape: rank 9 is over the limit of 8',
    );
    // rank 8 is fine
    const ok = build({ a: { ...f32Entry(0, 1), shape: Array(8).fill(1) } }, [0, 0, 0, 0]);
    expect(readSafetensors(ok).tensors.get('a')!.shape).toEqual(Array(8).fill(1));
  });

  it('rejects a shape whose product overflows 2^53, and accepts a huge one with a zero extent', () => {
    expectMalformed(
      build({ a: { dtype: 'F32', shape: [2 ** 26, 2 ** 26, 2 ** 26], data_offsets: [0, 4] } }, [0, 0, 0, 0]),
      'shape [67108864, 67108864, 67108864]: 302231454903657293676544 elements is more than 2^53 - 1',
    );
    const zero = build({ a: { dtype: 'F32', shape: [2 ** 52, 0, 2 ** 52], data_offsets: [0, 0] } });
    expect(readSafetensors(zero).tensors.get('a')!.data).toEqual(new Float32Array(0));
  });

  it('rejects data_offsets that are not two non-negative safe integers', () => {
    for (const bad of [
      [-4, 0],
      [0, 4.5],
      ['0', 4],
      [0, null],
      [2 ** 53, 2 ** 53 + 4],
    ]) {
      expectMalformed(
        build({ a: { ...f32Entry(0, 1), data_offsets: bad } }, [0, 0, 0, 0]),
        'tensor "a": data_offsets: ',
      );
    }
    expectMalformed(
      build({ a: { ...f32Entry(0, 1), data_offsets: [0, null] } }, [0, 0, 0, 0]),
      'data_offsets: end must be a non-negative integer, got null',
    );
  });

  it('rejects begin after end, and end past the data buffer', () => {
    expectMalformed(
      build({ a: { dtype: 'F32', shape: [0], data_offsets: [4, 0] } }, [0, 0, 0, 0]),
      'tensor "a": data_offsets [4, 0]: begin is after end',
    );
    const header = { a: f32Entry(0, 2) };
    const at = 8 + JSON.stringify(header).length;
    expectMalformed(
      build(header, [0, 0, 0, 0, 0, 0, 0]),
      `tensor "a": data_offsets [0, 8]: end is past the end of the data buffer (7 bytes, starting at file offset ${at})`,
    );
  });

  it('rejects a byte span that disagrees with shape and dtype', () => {
    expectMalformed(
      build({ a: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, Array(8).fill(0)),
      'tensor "a": data_offsets [0, 8] span 8 bytes, but shape [3] of F32 needs 3 x 4 = 12 bytes',
    );
    expectMalformed(
      build({ a: { dtype: 'I64', shape: [], data_offsets: [0, 4] } }, Array(8).fill(0)),
      'shape [] of I64 needs 1 x 8 = 8 bytes',
    );
  });

  it('rejects overlapping tensors, but not empty tensors inside others or gaps', () => {
    expectMalformed(
      build({ a: f32Entry(0, 2), b: f32Entry(4, 2) }, Array(12).fill(0)),
      'tensor "b" (data_offsets [4, 12]) overlaps tensor "a" (data_offsets [0, 8])',
    );
    expectMalformed(
      build({ b: f32Entry(4, 2), a: f32Entry(0, 2) }, Array(12).fill(0)),
      'overlaps tensor "a"',
    );
    expectMalformed(build({ a: f32Entry(0, 2), b: f32Entry(0, 2) }, Array(8).fill(0)), 'overlaps');
    const ok = build({ a: f32Entry(0, 2), e: f32Entry(4, 0), g: f32Entry(12, 1) }, Array(16).fill(0));
    expect([...readSafetensors(ok).tensors.keys()]).toEqual(['a', 'e', 'g']);
  });

  it('rejects __metadata__ that is not an object of strings', () => {
    expectMalformed(
      build({ __metadata__: 'x' }),
      'header: __metadata__ must be an object of strings, got "x"',
    );
    expectMalformed(build({ __metadata__: [] }), '__metadata__ must be an object of strings, got an array');
    expectMalformed(build({ __metadata__: null }), 'got null');
    expectMalformed(build({ __metadata__: { k: 1 } }), 'header: __metadata__["k"] must be a string, got 1');
    expectMalformed(
      build({ __metadata__: { k: { v: 'x' } } }),
      '__metadata__["k"] must be a string, got an object',
    );
  });

  it('reads __proto__ names as plain names, polluting nothing', () => {
    const file = build(
      '{"__metadata__":{"__proto__":"meta"},"__proto__":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}',
      le(4, [0x3f800000]),
    );
    const { tensors, metadata } = readSafetensors(file);
    expect(tensors.get('__proto__')!.data).toEqual(Float32Array.of(1));
    expect(Object.hasOwn(metadata, '__proto__')).toBe(true);
    expect(Object.getPrototypeOf(metadata)).toBe(Object.prototype);
    expect(Object.entries(metadata)).toEqual([['__proto__', 'meta']]);
    expect(({} as Record<string, unknown>).dtype).toBeUndefined();
  });

  it('keeps long hostile names short in messages', () => {
    const name = 'n'.repeat(100_000);
    let message = '';
    try {
      readSafetensors(build({ [name]: 5 }));
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toContain('nnn..."');
    expect(message.length).toBeLessThan(300);
  });

  it('refuses an argument that is not a Uint8Array', () => {
    expectError(
      () => readSafetensors([0, 0] as unknown as Uint8Array),
      'invalid-argument',
      'bytes: expected a Uint8Array',
    );
  });
});

describe('safetensors writer validation', () => {
  const good = (): HostTensorInput => ({ name: 'a', dtype: 'f32', shape: [2, 3], data: new Float32Array(6) });
  const expectInvalid = (tensors: unknown[], fragment: string, metadata?: unknown) =>
    expectError(
      () => writeSafetensors(tensors as HostTensorInput[], metadata as Record<string, string>),
      'invalid-argument',
      fragment,
    );

  it('rejects unknown dtypes', () => {
    expectInvalid(
      [{ ...good(), dtype: 'f64' }],
      'tensor "a": dtype: expected one of f32, f16, bf16, i32, i64, got "f64"',
    );
    expectInvalid([{ ...good(), dtype: 'F32' }], 'got "F32"');
  });

  it('rejects data of the wrong length or type', () => {
    expectInvalid(
      [{ ...good(), data: new Float32Array(5) }],
      'tensor "a": data: shape [2, 3] needs 6 elements, got 5',
    );
    expectInvalid(
      [{ ...good(), dtype: 'i32' }],
      'data: a i32 tensor needs Int32Array data, got Float32Array',
    );
    expectInvalid(
      [{ ...good(), dtype: 'i64', data: new Int32Array(6) }],
      'needs BigInt64Array data, got Int32Array',
    );
    expectInvalid([{ ...good(), data: [0, 0, 0, 0, 0, 0] }], 'needs Float32Array data, got Array');
  });

  it('rejects bad shapes', () => {
    expectInvalid(
      [{ ...good(), shape: [-2, -3] }],
      'tensor "a": shape[0]: expected a non-negative integer, got -2',
    );
    expectInvalid([{ ...good(), shape: [6.5] }], 'shape[0]: expected a non-negative integer, got 6.5');
    expectInvalid([{ ...good(), shape: Array(9).fill(1) }], 'shape: rank 9 is over the limit of 8');
    expectInvalid([{ ...good(), shape: '6' }], 'shape: expected an array');
  });

  it('rejects duplicate, reserved and non-string names', () => {
    expectInvalid([good(), good()], 'tensor "a": the name is used by an earlier tensor');
    expectInvalid([{ ...good(), name: '__metadata__' }], 'the name __metadata__ is reserved');
    expectInvalid([{ ...good(), name: 7 }], 'name: expected a string, got 7');
    expectInvalid([null], 'expected an object, got null');
  });

  it('rejects metadata that is not an object of strings', () => {
    expectInvalid([good()], 'metadata["k"]: expected a string, got 1', { k: 1 });
    expectInvalid([good()], 'metadata: expected an object of strings, got "x"', 'x');
  });
});

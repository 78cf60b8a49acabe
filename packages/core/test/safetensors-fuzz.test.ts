import { seededUniform } from '@webattn/reference';
import { expect, it } from 'vitest';
import { WebAttnError } from '../src/errors.js';
import {
  HOST_DTYPES,
  type HostTensorInput,
  readSafetensors,
  writeSafetensors,
} from '../src/safetensors/index.js';

// Seeded, so that a failing case can be replayed.
const random = seededUniform(0x5afe7e45);
const int = (n: number) => Math.floor(random() * n);
const pick = <T>(items: readonly T[]): T => items[int(items.length)]!;

const VALID: HostTensorInput[] = [
  { name: 'a', dtype: 'f32', shape: [2, 3], data: Float32Array.from({ length: 6 }, (_, i) => i - 2.5) },
  { name: 'b', dtype: 'f16', shape: [3], data: Float32Array.of(1, -0.5, 65504) },
  { name: 'c', dtype: 'bf16', shape: [2, 2], data: Float32Array.of(1, 2, 3, 4) },
  { name: 'd', dtype: 'i32', shape: [], data: Int32Array.of(-9) },
  { name: 'e', dtype: 'i64', shape: [2], data: BigInt64Array.of(2n ** 40n, -1n) },
  { name: 'f', dtype: 'f32', shape: [0, 4], data: new Float32Array(0) },
];
const BASE = writeSafetensors(VALID, { format: 'pt', who: 'fuzz' });

const TYPED = {
  f32: Float32Array,
  f16: Float32Array,
  bf16: Float32Array,
  i32: Int32Array,
  i64: BigInt64Array,
};

let parsed = 0;
let rejected = 0;

/**
 * Reads `bytes`: either it parses and every tensor is consistent (and no larger than the file could
 * justify), or it throws a WebAttnError. Anything else fails the test with the case that caused it.
 */
function probe(bytes: Uint8Array, what: string): void {
  let result: ReturnType<typeof readSafetensors>;
  try {
    result = readSafetensors(bytes);
  } catch (error) {
    if (error instanceof WebAttnError && error.code === 'malformed-file') {
      rejected++;
      return;
    }
    throw new Error(`${what}: threw something other than a malformed-file WebAttnError: ${String(error)}`);
  }
  parsed++;
  let allocated = 0;
  for (const [name, t] of result.tensors) {
    const size = t.shape.reduce((p, d) => p * d, 1);
    const ok =
      t.name === name &&
      HOST_DTYPES.includes(t.dtype) &&
      t.shape.length <= 8 &&
      t.shape.every((d) => Number.isSafeInteger(d) && d >= 0) &&
      t.data instanceof TYPED[t.dtype] &&
      t.data.length === size;
    if (!ok) throw new Error(`${what}: tensor ${JSON.stringify(name)} is inconsistent`);
    allocated += t.data.byteLength;
  }
  for (const v of Object.values(result.metadata))
    if (typeof v !== 'string') throw new Error(`${what}: metadata`);
  // f16 and bf16 widen to f32: at most twice the bytes of the file.
  if (allocated > 2 * bytes.length)
    throw new Error(`${what}: ${allocated} bytes allocated for a ${bytes.length}-byte file`);
}

function headerLength(file: Uint8Array): number {
  return Number(new DataView(file.buffer, file.byteOffset).getBigUint64(0, true));
}

/** `file` with its header replaced by `text`, keeping the data buffer. */
function withHeader(file: Uint8Array, text: string): Uint8Array {
  const json = new TextEncoder().encode(text);
  const data = file.subarray(8 + headerLength(file));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

/** A random JSON value of the kinds a header field might wrongly hold. */
function junk(): unknown {
  return pick<() => unknown>([
    () => int(100),
    () => -int(100),
    () => int(2 ** 31) * 2 ** 22,
    () => random() * 10,
    () => String(int(10)),
    () => null,
    () => true,
    () => [],
    () => ({}),
    () => [int(50), int(50)],
    () => [int(4), int(4), int(4)],
    () => pick(['F32', 'F16', 'BF16', 'I32', 'I64', 'F64', 'U8', '__proto__', '']),
  ])();
}

/** Random edits of the parsed header of BASE: offsets, shapes and dtypes changed or swapped, fields dropped. */
function mutateJson(): string {
  const header = JSON.parse(new TextDecoder().decode(BASE.subarray(8, 8 + headerLength(BASE)))) as Record<
    string,
    Record<string, unknown>
  >;
  const names = Object.keys(header).filter((k) => k !== '__metadata__');
  const edits = 1 + int(3);
  for (let i = 0; i < edits; i++) {
    const entry = header[pick(names)];
    const other = header[pick(names)];
    // An earlier edit may have replaced an entry with a non-object: leave that one alone.
    const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null;
    if (!isObject(entry) || !isObject(other)) continue;
    const field = pick(['dtype', 'shape', 'data_offsets']);
    switch (int(8)) {
      case 0: // swap a field with another tensor's
        [entry[field], other[field]] = [other[field], entry[field]];
        break;
      case 1:
        entry[field] = junk();
        break;
      case 2:
        delete entry[field];
        break;
      case 3: {
        // nudge an offset
        const offsets = entry.data_offsets as number[];
        if (Array.isArray(offsets)) offsets[int(2)] = (offsets[int(2)] ?? 0) + int(17) - 8;
        break;
      }
      case 4: {
        const shape = Array.from({ length: int(11) }, () => (random() < 0.8 ? int(5) : (junk() as number)));
        entry.shape = shape;
        break;
      }
      case 5:
        entry.dtype = pick(['F32', 'F16', 'BF16', 'I32', 'I64']);
        break;
      case 6:
        (header as Record<string, unknown>).__metadata__ = random() < 0.5 ? junk() : { k: junk() };
        break;
      default:
        header[pick(names)] = junk() as Record<string, unknown>;
    }
  }
  return JSON.stringify(header);
}

it('fuzz: random, truncated, mutated and oversized files parse consistently or raise malformed-file, fast', () => {
  const started = performance.now();

  // (a) random bytes, raw and behind a length prefix that fits (so that the JSON path runs)
  for (let i = 0; i < 2000; i++) {
    const bytes = Uint8Array.from({ length: int(300) }, () => int(256));
    if (i % 2 && bytes.length >= 8)
      new DataView(bytes.buffer).setBigUint64(0, BigInt(int(bytes.length - 7)), true);
    probe(bytes, `random bytes #${i}`);
  }

  // (b) every truncation of a valid file, also read at an odd byte offset
  for (let n = 0; n <= BASE.length; n++) {
    probe(BASE.subarray(0, n), `truncated to ${n}`);
    const shifted = new Uint8Array(n + 1);
    shifted.set(BASE.subarray(0, n), 1);
    probe(shifted.subarray(1), `truncated to ${n}, odd offset`);
  }

  // (c1) random byte flips in the length prefix and the header
  const headerEnd = 8 + headerLength(BASE);
  for (let i = 0; i < 5000; i++) {
    const bytes = BASE.slice();
    const flips = 1 + int(4);
    for (let f = 0; f < flips; f++) {
      const at = random() < 0.1 ? int(8) : 8 + int(headerEnd - 8);
      bytes[at] =
        random() < 0.5 ? int(256) : pick([0x22, 0x5b, 0x5d, 0x7b, 0x7d, 0x2c, 0x30, 0x39, 0x2d, 0x5c]);
    }
    probe(bytes, `byte flips #${i}`);
  }

  // (c2) structured mutations of the header JSON
  for (let i = 0; i < 5000; i++) probe(withHeader(BASE, mutateJson()), `JSON mutation #${i}`);

  // (d) length prefixes claiming huge (or just too large) headers
  const claims = [
    2n ** 64n - 1n,
    2n ** 63n,
    2n ** 53n + 1n,
    2n ** 53n,
    2n ** 32n,
    2n ** 32n - 1n,
    100_000_001n,
  ];
  for (let i = 0; i < 200; i++) {
    const claim =
      i < claims.length
        ? claims[i]!
        : ((BigInt(int(2 ** 32)) << 32n) | BigInt(int(2 ** 32))) >> BigInt(int(64));
    const bytes = BASE.slice();
    new DataView(bytes.buffer).setBigUint64(0, claim, true);
    probe(bytes, `length claim ${claim}`);
  }
  for (let n = BASE.length - 7; n < BASE.length + 8; n++) {
    const bytes = BASE.slice();
    new DataView(bytes.buffer).setBigUint64(0, BigInt(n), true);
    probe(bytes, `length claim ${n}`);
  }

  const elapsed = performance.now() - started;
  // Both outcomes must be exercised, or the fuzzer is not reaching the interesting code.
  expect(parsed).toBeGreaterThan(100);
  expect(rejected).toBeGreaterThan(5000);
  expect(parsed + rejected).toBeGreaterThan(8000);
  expect(elapsed).toBeLessThan(5000);
});

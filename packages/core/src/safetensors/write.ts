/**
 * Writing host tensors as a safetensors file that the reference implementation (and readSafetensors)
 * accepts.
 */
import { WebAttnError } from '../errors.js';
import { toF16Bits } from '../f16.js';
import { toBf16Bits } from './bf16.js';
import { FILE_DTYPE, HOST_DTYPES, type HostDtype, isHostDtype, itemSize } from './dtypes.js';
import { METADATA_KEY } from './header.js';
import { checkedShapeSize, describe, quoteName } from './shape.js';

/** A tensor to write: a {@link HostTensor}, or anything shaped like one. */
export interface HostTensorInput {
  /** The header key; unique within a file, and not `__metadata__`. */
  readonly name: string;
  /** The dtype to store; f16 and bf16 round the f32 values to nearest even. */
  readonly dtype: HostDtype;
  /** Extents, outermost first; `[]` is a scalar. */
  readonly shape: readonly number[];
  /** Float32Array for f32, f16 and bf16; Int32Array for i32; BigInt64Array for i64. */
  readonly data: Float32Array | Int32Array | BigInt64Array;
}

/** A checked input tensor and the bytes it will occupy in the file. */
interface Planned {
  tensor: HostTensorInput;
  bytes: Uint8Array;
  begin: number;
}

/**
 * Serialises tensors, and optional metadata strings, as a safetensors file.
 *
 * The output is deterministic: the header lists tensors in iteration order (after `__metadata__`,
 * which is written when it has entries), and the data buffer holds them without gaps, grouped by
 * element size, largest first (i64, then 4-byte, then 2-byte), in iteration order within a group.
 * That grouping, as in the reference implementation, aligns every tensor to its element size,
 * since the header is padded with spaces to a multiple of 8 bytes.
 *
 * Invalid input (unknown dtype, a data array of the wrong type or length, a bad shape, a duplicate
 * or reserved name, non-string metadata) raises a {@link WebAttnError} with code 'invalid-argument'.
 */
export function writeSafetensors(
  tensors: Iterable<HostTensorInput>,
  metadata?: Readonly<Record<string, string>>,
): Uint8Array {
  const planned: Planned[] = [];
  const names = new Set<string>();
  for (const tensor of tensors) {
    planned.push({ tensor, bytes: encodeTensor(tensor, names), begin: 0 });
  }

  // Stable sort: largest element size first keeps every tensor naturally aligned with no padding.
  const layout = [...planned].sort((a, b) => itemSize(b.tensor.dtype) - itemSize(a.tensor.dtype));
  let dataLength = 0;
  for (const p of layout) {
    p.begin = dataLength;
    dataLength += p.bytes.length;
  }

  // The header is assembled as text, not with JSON.stringify of one object: an object would move
  // integer-like names first and turn a "__proto__" name into a prototype assignment.
  const fields: string[] = [];
  const metaPairs = metadataPairs(metadata);
  if (metaPairs.length > 0) {
    const body = metaPairs.map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`).join(',');
    fields.push(`${JSON.stringify(METADATA_KEY)}:{${body}}`);
  }
  for (const { tensor, bytes, begin } of planned) {
    const info = `{"dtype":"${FILE_DTYPE[tensor.dtype]}","shape":[${tensor.shape.join(',')}],"data_offsets":[${begin},${begin + bytes.length}]}`;
    fields.push(`${JSON.stringify(tensor.name)}:${info}`);
  }
  const json = new TextEncoder().encode(`{${fields.join(',')}}`);
  const headerLength = Math.ceil(json.length / 8) * 8;

  const out = new Uint8Array(8 + headerLength + dataLength);
  const view = new DataView(out.buffer);
  view.setUint32(0, headerLength, true); // the high half of the u64 stays 0
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + headerLength); // spaces: JSON whitespace
  for (const { bytes, begin } of planned) out.set(bytes, 8 + headerLength + begin);
  return out;
}

/** Checks one input tensor and returns its little-endian bytes; records its name in `names`. */
function encodeTensor(tensor: HostTensorInput, names: Set<string>): Uint8Array {
  const label = typeof tensor?.name === 'string' ? `tensor ${quoteName(tensor.name)}` : 'tensor';
  const fail = (message: string): never => {
    throw new WebAttnError('invalid-argument', `writeSafetensors: ${label}: ${message}`);
  };
  if (typeof tensor !== 'object' || tensor === null)
    return fail(`expected an object, got ${describe(tensor)}`);
  const { name, dtype, shape, data } = tensor;
  if (typeof name !== 'string') return fail(`name: expected a string, got ${describe(name)}`);
  if (name === METADATA_KEY) return fail(`the name ${METADATA_KEY} is reserved for metadata`);
  if (names.has(name)) return fail('the name is used by an earlier tensor');
  names.add(name);
  if (!isHostDtype(dtype)) {
    return fail(`dtype: expected one of ${HOST_DTYPES.join(', ')}, got ${describe(dtype)}`);
  }
  const size = checkedShapeSize(shape, fail);
  const expectedType = dtype === 'i32' ? Int32Array : dtype === 'i64' ? BigInt64Array : Float32Array;
  if (!(data instanceof expectedType)) {
    return fail(`data: a ${dtype} tensor needs ${expectedType.name} data, got ${typeName(data)}`);
  }
  if (data.length !== size) {
    return fail(`data: shape [${shape.join(', ')}] needs ${size} elements, got ${data.length}`);
  }
  if (dtype === 'f16') return asBytes(toF16Bits(data as Float32Array));
  if (dtype === 'bf16') return asBytes(toBf16Bits(data as Float32Array));
  return asBytes(data);
}

/** The bytes of a typed array (little-endian on every host WebGPU runs on). */
function asBytes(data: Float32Array | Int32Array | BigInt64Array | Uint16Array): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

function typeName(value: unknown): string {
  if (typeof value === 'object' && value !== null) return value.constructor?.name ?? 'an object';
  return describe(value);
}

/** Metadata pairs in insertion order, checked to be strings. */
function metadataPairs(metadata: Readonly<Record<string, string>> | undefined): [string, string][] {
  if (metadata === undefined) return [];
  if (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata)) {
    throw new WebAttnError(
      'invalid-argument',
      `writeSafetensors: metadata: expected an object of strings, got ${describe(metadata)}`,
    );
  }
  const pairs = Object.entries(metadata);
  for (const [key, value] of pairs) {
    if (typeof value !== 'string') {
      throw new WebAttnError(
        'invalid-argument',
        `writeSafetensors: metadata[${quoteName(key)}]: expected a string, got ${describe(value)}`,
      );
    }
  }
  return pairs;
}

/**
 * Options of the chunkwise lightning attention and their validation: every argument is checked on
 * the host, with a {@link WebAttnError} naming it, before anything is dispatched. The packed-sequence
 * semantics follow the reference (`@webattn/reference`'s `lightningAttention`): with `cuSeqlens`,
 * batch is 1 and the sequences lie one after the other along the token axis.
 */
import { check, type Dtype, type Gpu, pickTier, type Tensor, type Tier } from '@webattn/core';
import { decayFromSlopes } from '../slopes.js';

/** Chunk lengths the chunkwise kernels are generated for. */
export const LIGHTNING_CHUNK_SIZES = [32, 64, 128] as const;

/** Options of {@link lightningAttention}. */
export interface LightningAttentionOptions {
  /** Per query head decay `λ_h`, `[hq]`, each in [0, 1]. Give exactly one of `decays` and `slopes`. */
  decays?: ArrayLike<number>;
  /** Per query head slopes, `[hq]`, each finite and >= 0: `λ_h = exp(-slope_h)` (TransnormerLLM). */
  slopes?: ArrayLike<number>;
  /** Multiplies q·k and q·state: fla's `scale`, `1 / sqrt(dk)` by default; TransnormerLLM uses 1. */
  scale?: number;
  /** The state before each sequence's first token, f32 `[sequences, hq, dk, dv]`; zeros when absent. */
  initialState?: Tensor;
  /**
   * fla's `cu_seqlens`: `sequences + 1` cumulative lengths from 0 to n. With it batch must be 1 and
   * each sequence has its own state, reset at its start to its initial state.
   */
  cuSeqlens?: ArrayLike<number>;
  /**
   * Tokens per chunk: 32, 64 or 128. By default 64, or 128 where the per-chunk states (f32
   * `chunks x hq x dk x dv`) would not fit two bindings at 64.
   */
  chunkSize?: number;
  /**
   * The most bytes of per-chunk states one binding may hold; the device's
   * `maxStorageBufferBindingSize` by default. States larger than that are split, at a chunk
   * boundary, over two bindings. A lower value exercises the split on small inputs (tests); it
   * must hold one chunk's states (`hq x dk x dv x 4` bytes).
   */
  stateBindingBytes?: number;
  /** Kernel tier; it fixes the storage dtype (f32 for portable and subgroups, f16 otherwise). The fastest for q's dtype by default. */
  tier?: Tier;
  /**
   * Scale q and k to unit length per token and head before the op (the seed's f16 overflow
   * mitigation; the reference's `l2Normalize`, eps 1e-12). It changes the result; the backward
   * differentiates through it.
   */
  normalizeQk?: boolean;
  /**
   * In f16, raise a WebAttnError when an output leaves f16's range instead of returning inf/NaN.
   * It reads one flag back, so it waits for the GPU; true by default for f16 tensors (no effect on f32).
   */
  checkFinite?: boolean;
}

/** One sequence along the flattened batch-and-token axis. */
export interface LightningSpan {
  /** First token. */
  start: number;
  /** Tokens. */
  length: number;
}

/** A checked call: sizes, decays, sequences and the chunk table the kernels read. */
export interface LightningPlan {
  /** Batch of the dense call (1 when packed). */
  batch: number;
  /** Tokens per batch entry (the packed total with cuSeqlens). */
  n: number;
  /** Query heads. */
  hq: number;
  /** Key/value heads; hq is a multiple. */
  hkv: number;
  /** Query heads per key/value head. */
  group: number;
  /** Head dim of q and k. */
  dk: number;
  /** Head dim of v and o. */
  dv: number;
  /** Storage dtype of q, k, v, o. */
  dtype: Dtype;
  /** Kernel tier. */
  tier: Tier;
  /** The scale, defaulted. */
  scale: number;
  /** λ_h per query head. */
  decays: Float32Array;
  /** The sequences. */
  spans: LightningSpan[];
  /** Tokens per chunk. */
  chunkSize: number;
  /** Chunks over all sequences. */
  chunks: number;
  /**
   * Chunks whose states the first binding holds; `chunks` when one binding holds them all, else the
   * states of the later chunks go to a second binding.
   */
  stateSplitChunk: number;
  /**
   * u32 table: per sequence `[firstChunk, chunkCount]`, then per chunk `[start, length]`, then the
   * f32 bits of each head's decay.
   */
  table: Uint32Array;
  /** Where the chunk entries of `table` start, in words. */
  chunkTable: number;
  /** Where the decays' bits in `table` start, in words. */
  decayTable: number;
  /** Whether to normalise q and k. */
  normalizeQk: boolean;
  /** Whether to check f16 outputs for overflow. */
  checkFinite: boolean;
}

/** Throws unless `t` has exactly `shape`. */
export function checkShape(op: string, name: string, t: Tensor, shape: readonly number[]): void {
  check(
    t.shape.length === shape.length && t.shape.every((e, i) => e === shape[i]),
    'shape-mismatch',
    () => `${op}: ${name}: expected shape [${shape.join(', ')}], got [${t.shape.join(', ')}]`,
  );
}

/** Throws unless `t` has `dtype`. */
export function checkDtype(op: string, name: string, t: Tensor, dtype: Dtype, why: string): void {
  check(
    t.dtype === dtype,
    'dtype-mismatch',
    () => `${op}: ${name}: expected dtype ${dtype} (${why}), got ${t.dtype}`,
  );
}

/** Throws unless `t` belongs to `gpu` and is alive. */
export function checkTensor(op: string, name: string, t: unknown, gpu: Gpu): asserts t is Tensor {
  const tensor = t as Tensor | undefined;
  check(
    tensor !== null && typeof tensor === 'object' && 'shape' in tensor && 'dtype' in tensor,
    'invalid-argument',
    () => `${op}: ${name}: expected a Tensor, got ${String(t)}`,
  );
  check(!tensor.disposed, 'disposed', () => `${op}: ${name}: the tensor was disposed`);
  check(tensor.gpu === gpu, 'invalid-argument', () => `${op}: ${name}: the tensor belongs to another Gpu`);
}

/**
 * The per-head decays from `decays` or `slopes` (exactly one), checked: `[hq]`, each decay in [0, 1],
 * each slope finite and >= 0.
 */
export function resolveDecays(
  op: string,
  options: { decays?: ArrayLike<number>; slopes?: ArrayLike<number> },
  hq: number,
): Float32Array {
  const { decays, slopes } = options;
  check(
    (decays === undefined) !== (slopes === undefined),
    'invalid-argument',
    () =>
      `${op}: expected exactly one of decays and slopes, got ${decays === undefined ? 'neither' : 'both'}`,
  );
  const name = decays !== undefined ? 'decays' : 'slopes';
  const values = (decays ?? slopes) as ArrayLike<number>;
  check(
    typeof values === 'object' && values !== null && typeof values.length === 'number',
    'invalid-argument',
    () => `${op}: ${name}: expected an array of ${hq} numbers, got ${String(values)}`,
  );
  check(
    values.length === hq,
    'shape-mismatch',
    () => `${op}: ${name}: expected ${hq} values (one per query head), got ${values.length}`,
  );
  for (let h = 0; h < hq; h++) {
    const x = values[h]!;
    // Written so that NaN fails too.
    const ok = decays !== undefined ? x >= 0 && x <= 1 : x >= 0 && Number.isFinite(x);
    check(
      ok,
      'invalid-argument',
      () =>
        `${op}: ${name}[${h}]: expected ${decays !== undefined ? 'a value in [0, 1]' : 'a finite value >= 0'}, got ${x}`,
    );
  }
  return decays !== undefined ? Float32Array.from(values) : decayFromSlopes(Float32Array.from(values));
}

/** The scale, defaulted to `1 / sqrt(dk)` and checked finite. */
export function resolveScale(op: string, scale: number | undefined, dk: number): number {
  const s = scale ?? 1 / Math.sqrt(dk);
  check(
    typeof s === 'number' && Number.isFinite(s),
    'invalid-argument',
    () => `${op}: scale: expected a finite number, got ${s}`,
  );
  return s;
}

function resolveSpans(op: string, batch: number, n: number, cuSeqlens?: ArrayLike<number>): LightningSpan[] {
  if (cuSeqlens === undefined) return Array.from({ length: batch }, (_, b) => ({ start: b * n, length: n }));
  check(
    batch === 1,
    'invalid-argument',
    () => `${op}: cuSeqlens: expected batch 1 for packed sequences, got batch ${batch}`,
  );
  check(
    cuSeqlens.length >= 1 && cuSeqlens[0] === 0,
    'invalid-argument',
    () => `${op}: cuSeqlens: expected to start with 0, got [${Array.from(cuSeqlens).slice(0, 4).join(', ')}]`,
  );
  const spans: LightningSpan[] = [];
  for (let s = 1; s < cuSeqlens.length; s++) {
    const [start, end] = [cuSeqlens[s - 1]!, cuSeqlens[s]!];
    check(
      Number.isInteger(end) && end >= start,
      'invalid-argument',
      () => `${op}: cuSeqlens[${s}]: expected a non-decreasing integer, got ${end} after ${start}`,
    );
    spans.push({ start, length: end - start });
  }
  const total = cuSeqlens[cuSeqlens.length - 1];
  check(total === n, 'shape-mismatch', () => `${op}: cuSeqlens: expected to end at n (${n}), got ${total}`);
  return spans;
}

/** The table of {@link LightningPlan}: sequences, chunks, then the decays' bits. */
function chunkTableOf(spans: readonly LightningSpan[], chunkSize: number, decays: Float32Array) {
  const counts = spans.map((s) => Math.ceil(s.length / chunkSize));
  const chunks = counts.reduce((a, b) => a + b, 0);
  const decayTable = 2 * spans.length + 2 * chunks;
  const table = new Uint32Array(decayTable + decays.length);
  table.set(new Uint32Array(decays.buffer, decays.byteOffset, decays.length), decayTable);
  let chunk = 0;
  spans.forEach((span, s) => {
    table[2 * s] = chunk;
    table[2 * s + 1] = counts[s]!;
    for (let c = 0; c < counts[s]!; c++, chunk++) {
      const at = 2 * spans.length + 2 * chunk;
      table[at] = span.start + c * chunkSize;
      table[at + 1] = Math.min(chunkSize, span.length - c * chunkSize);
    }
  });
  return { chunks, table, chunkTable: 2 * spans.length, decayTable };
}

/** Checks q `[b, n, hq, dk]`, k `[b, n, hkv, dk]`, v `[b, n, hkv, dv]`: ranks, agreement, dtypes, heads. */
export function checkQkv(op: string, gpu: Gpu, q: Tensor, k: Tensor, v: Tensor) {
  checkTensor(op, 'q', q, gpu);
  checkTensor(op, 'k', k, gpu);
  checkTensor(op, 'v', v, gpu);
  for (const [name, t] of [
    ['q', q],
    ['k', k],
    ['v', v],
  ] as const) {
    check(
      t.shape.length === 4,
      'shape-mismatch',
      () => `${op}: ${name}: expected rank 4 [batch, n, heads, dim], got [${t.shape.join(', ')}]`,
    );
  }
  const [batch, n, hq, dk] = q.shape as [number, number, number, number];
  const [hkv, dv] = [k.shape[2]!, v.shape[3]!];
  check(
    hq >= 1 && dk >= 1 && dv >= 1,
    'shape-mismatch',
    () => `${op}: q: expected heads and dims >= 1, got [${q.shape.join(', ')}]`,
  );
  checkShape(op, 'k', k, [batch, n, hkv, dk]);
  checkShape(op, 'v', v, [batch, n, hkv, dv]);
  check(
    hkv >= 1,
    'shape-mismatch',
    () => `${op}: k: expected at least one head, got [${k.shape.join(', ')}]`,
  );
  check(
    hq % hkv === 0,
    'heads-not-divisible',
    () => `${op}: q has ${hq} heads, not a multiple of k's and v's ${hkv}`,
  );
  checkDtype(op, 'k', k, q.dtype, "q's");
  checkDtype(op, 'v', v, q.dtype, "q's");
  return { batch, n, hq, hkv, dk, dv, group: hq / hkv };
}

/** Checks a chunk size and that the output kernel's workgroup memory fits this device. */
function checkChunkSize(op: string, gpu: Gpu, c: number): number {
  check(
    (LIGHTNING_CHUNK_SIZES as readonly number[]).includes(c),
    'invalid-argument',
    () => `${op}: chunkSize: expected one of ${LIGHTNING_CHUNK_SIZES.join(', ')}, got ${c}`,
  );
  const bytes = chunkOutputSharedBytes(c);
  const limit = gpu.caps.limits.maxComputeWorkgroupStorageSize;
  check(
    bytes <= limit,
    'limit-exceeded',
    () => `${op}: chunkSize: ${c} needs ${bytes} bytes of workgroup memory, this device allows ${limit}`,
  );
  return c;
}

/** Chunks of a call at a chunk size. */
function chunksAt(spans: readonly LightningSpan[], chunkSize: number): number {
  return spans.reduce((sum, s) => sum + Math.ceil(s.length / chunkSize), 0);
}

/** Bindings the per-chunk states may span (see `stateAccessWgsl` in scan.wgsl.ts). */
const STATE_BINDINGS = 2;

/**
 * The most bytes of states one binding may hold: the caller's `stateBindingBytes`, checked, else
 * the device's limit.
 */
function resolveStateBinding(op: string, gpu: Gpu, bytes: number | undefined, chunkBytes: number): number {
  const limit = gpu.caps.limits.maxStorageBufferBindingSize;
  if (bytes === undefined) return limit;
  check(
    Number.isInteger(bytes) && bytes >= chunkBytes && bytes <= limit,
    'invalid-argument',
    () =>
      `${op}: stateBindingBytes: expected an integer from one chunk's states (${chunkBytes}) to this device's maxStorageBufferBindingSize (${limit}), got ${bytes}`,
  );
  return bytes;
}

/**
 * The chunk size: the caller's, else 64, or 128 where the states at 64 would not fit the bindings
 * and chunk 128's workgroup memory fits the device.
 */
function resolveChunkSize(
  op: string,
  gpu: Gpu,
  chunkSize: number | undefined,
  spans: readonly LightningSpan[],
  chunksPerBinding: number,
): number {
  if (chunkSize !== undefined) return checkChunkSize(op, gpu, chunkSize);
  const roomy = chunkOutputSharedBytes(128) <= gpu.caps.limits.maxComputeWorkgroupStorageSize;
  if (roomy && chunksAt(spans, 64) > STATE_BINDINGS * chunksPerBinding) return 128;
  return checkChunkSize(op, gpu, 64);
}

/** Workgroup memory of the chunk output kernel for a chunk size, in bytes. */
export function chunkOutputSharedBytes(chunkSize: number): number {
  return 4 * (32 * 16 + Math.max(chunkSize * 16, 1024) + 32 * chunkSize);
}

/**
 * Checks every argument of a lightning call and plans it.
 *
 * @throws WebAttnError naming the argument, the expected and the actual value.
 */
export function planLightning(
  op: string,
  gpu: Gpu,
  q: Tensor,
  k: Tensor,
  v: Tensor,
  options: LightningAttentionOptions,
): LightningPlan {
  check(
    typeof options === 'object' && options !== null,
    'invalid-argument',
    () => `${op}: options: expected an object with decays or slopes, got ${String(options)}`,
  );
  const shape = checkQkv(op, gpu, q, k, v);
  const tier = pickTier(gpu.caps, q.dtype, options.tier, op);
  const decays = resolveDecays(op, options, shape.hq);
  const scale = resolveScale(op, options.scale, shape.dk);
  const spans = resolveSpans(op, shape.batch, shape.n, options.cuSeqlens);
  const chunkBytes = shape.hq * shape.dk * shape.dv * 4;
  const bindingBytes = resolveStateBinding(op, gpu, options.stateBindingBytes, chunkBytes);
  const chunksPerBinding = Math.floor(bindingBytes / chunkBytes);
  check(
    chunksPerBinding >= 1,
    'limit-exceeded',
    () =>
      `${op}: one chunk's states take ${chunkBytes} bytes (${shape.hq} heads x ${shape.dk} x ${shape.dv} f32), over this device's maxStorageBufferBindingSize (${bindingBytes})`,
  );
  const chunkSize = resolveChunkSize(op, gpu, options.chunkSize, spans, chunksPerBinding);
  if (options.initialState !== undefined) {
    checkTensor(op, 'initialState', options.initialState, gpu);
    checkShape(op, 'initialState', options.initialState, [spans.length, shape.hq, shape.dk, shape.dv]);
    checkDtype(op, 'initialState', options.initialState, 'f32', 'states are kept in f32');
  }
  const { chunks, table, chunkTable, decayTable } = chunkTableOf(spans, chunkSize, decays);
  check(
    chunks <= STATE_BINDINGS * chunksPerBinding,
    'limit-exceeded',
    () =>
      `${op}: the per-chunk states need ${chunks * chunkBytes} bytes (${chunks} chunks x ${shape.hq} heads x ${shape.dk} x ${shape.dv} f32), over ${STATE_BINDINGS} bindings of ${bindingBytes} bytes (maxStorageBufferBindingSize); use a larger chunkSize or fewer tokens per call`,
  );
  return {
    ...shape,
    dtype: q.dtype,
    tier,
    scale,
    decays,
    spans,
    chunkSize,
    chunks,
    stateSplitChunk: Math.min(chunks, chunksPerBinding),
    table,
    chunkTable,
    decayTable,
    normalizeQk: options.normalizeQk === true,
    checkFinite: q.dtype === 'f16' && options.checkFinite !== false,
  };
}

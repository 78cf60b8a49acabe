/**
 * The masked linear attention's options, checked shapes and saved context: q `[b, n, hq, dk]`,
 * k `[b, n, hkv, dk]`, v `[b, n, hkv, dv]`, mask `[1|b, 1|hq, n, n]`, all of one dtype.
 */
import { check, type Dtype, type Gpu, pickTier, type Tensor, type Tier, WebAttnError } from '@webattn/core';

/**
 * How the masked linear attention is computed. `naive` materialises `(Q Kᵀ) ⊙ M` (and, backward,
 * `Q Kᵀ` and `dO Vᵀ`) in `[b, hq, n, n]` f32 buffers; `blocked` tiles the queries and the keys so no
 * more than a tile of it exists at a time; `fused` is the fastest kernel of the tier (tensor cores on
 * `subgroup-matrix`, the blocked kernel elsewhere).
 */
export type MaskedImplementation = 'naive' | 'blocked' | 'fused';

/** Every {@link MaskedImplementation}, for validation and benches. */
export const MASKED_IMPLEMENTATIONS: readonly MaskedImplementation[] = ['naive', 'blocked', 'fused'];

/** Options of {@link maskedLinearAttention}. */
export interface MaskedLinearAttentionOptions {
  /** Multiplies `Q Kᵀ`. Default 1: the seed applies no scale (pass `dk ** -0.5` for fla's default). */
  scale?: number;
  /** Which kernels run; `fused` by default. */
  implementation?: MaskedImplementation;
  /** Kernel tier; the fastest for the tensors' dtype by default (`f16` tensors need `f16` or `subgroup-matrix`). */
  tier?: Tier;
  /**
   * Whether to check f16 outputs for inf/NaN (one 4-byte readback, so a GPU sync) and throw a
   * `WebAttnError` with code `limit-exceeded` instead of returning them. Default true for f16, and
   * never done for f32 (whose range the f32 accumulation cannot overflow at realistic sizes).
   */
  checkFinite?: boolean;
}

/** The checked sizes of a masked call. */
export interface MaskedShape {
  /** Sequences. */
  batch: number;
  /** Tokens per sequence (queries and keys alike). */
  n: number;
  /** Query heads. */
  hq: number;
  /** Key and value heads; hq is a multiple of it. */
  hkv: number;
  /** Query heads per kv head. */
  group: number;
  /** Head dimension of q and k. */
  dk: number;
  /** Head dimension of v and o. */
  dv: number;
  /** 1 or batch. */
  maskBatch: number;
  /** 1 or hq. */
  maskHeads: number;
  /** Storage dtype of every input and output. */
  dtype: Dtype;
}

/** What {@link maskedLinearAttentionBackward} needs: the inputs (kept alive by the caller) and how the forward ran. */
export interface MaskedLinearAttentionContext {
  /** The device the forward ran on. */
  gpu: Gpu;
  /** The forward's inputs, which the backward reads again. */
  q: Tensor;
  k: Tensor;
  v: Tensor;
  mask: Tensor;
  /** Checked sizes. */
  shape: MaskedShape;
  /** The resolved options. */
  scale: number;
  implementation: MaskedImplementation;
  tier: Tier;
  /** Whether f16 gradients are checked for inf/NaN too. */
  checkFinite: boolean;
}

/** Output of {@link maskedLinearAttention}; the caller owns `o`. */
export interface MaskedLinearAttentionResult {
  /** `[b, n, hq, dv]`, q's dtype. */
  o: Tensor;
  /** For the backward. */
  ctx: MaskedLinearAttentionContext;
}

/** Gradients from {@link maskedLinearAttentionBackward}, each shaped and typed like its input; the caller owns them. */
export interface MaskedLinearAttentionGradients {
  /** Gradient of q. */
  dq: Tensor;
  /** Summed over the query heads of each GQA group. */
  dk: Tensor;
  /** Summed over the query heads of each GQA group. */
  dv: Tensor;
  /** `[maskBatch, maskHeads, n, n]`, summed over the batch and heads the mask broadcasts over. */
  dm: Tensor;
}

const shapeText = (s: readonly number[]) => `[${s.join(', ')}]`;

function expectShape(name: string, t: Tensor, want: readonly number[]): void {
  check(
    t.shape.length === want.length && t.shape.every((x, i) => x === want[i]),
    'shape-mismatch',
    () => `${name}: expected shape ${shapeText(want)}, got ${shapeText(t.shape)}`,
  );
}

function expectDtype(name: string, t: Tensor, dtype: Dtype): void {
  check(t.dtype === dtype, 'dtype-mismatch', () => `${name}: expected dtype ${dtype} (q's), got ${t.dtype}`);
}

/** Checks q, k, v and the mask against each other and returns the sizes. */
export function maskedShape(op: string, q: Tensor, k: Tensor, v: Tensor, mask: Tensor): MaskedShape {
  check(
    q.shape.length === 4,
    'shape-mismatch',
    () => `${op}: q: expected rank 4 [batch, n, hq, dk], got ${shapeText(q.shape)}`,
  );
  const [batch, n, hq, dk] = q.shape as [number, number, number, number];
  check(n >= 1, 'shape-mismatch', () => `${op}: q: expected at least 1 token, got n = ${n}`);
  check(batch >= 1, 'shape-mismatch', () => `${op}: q: expected batch >= 1, got ${batch}`);
  check(
    dk >= 1 && hq >= 1,
    'shape-mismatch',
    () => `${op}: q: expected hq, dk >= 1, got ${shapeText(q.shape)}`,
  );
  check(
    k.shape.length === 4,
    'shape-mismatch',
    () => `${op}: k: expected rank 4 [batch, n, hkv, dk], got ${shapeText(k.shape)}`,
  );
  const hkv = k.shape[2]!;
  check(hkv >= 1, 'shape-mismatch', () => `${op}: k: expected at least one head, got ${shapeText(k.shape)}`);
  if (hq % hkv !== 0) {
    throw new WebAttnError(
      'heads-not-divisible',
      `${op}: q's heads (${hq}) must be a multiple of k's heads (${hkv})`,
    );
  }
  expectShape(`${op}: k`, k, [batch, n, hkv, dk]);
  check(
    v.shape.length === 4 && v.shape[3]! >= 1,
    'shape-mismatch',
    () => `${op}: v: expected rank 4 [batch, n, hkv, dv], got ${shapeText(v.shape)}`,
  );
  const dv = v.shape[3]!;
  expectShape(`${op}: v`, v, [batch, n, hkv, dv]);
  check(
    mask.shape.length === 4,
    'shape-mismatch',
    () => `${op}: mask: expected rank 4 [1|batch, 1|hq, n, n], got ${shapeText(mask.shape)}`,
  );
  const [maskBatch, maskHeads] = mask.shape as [number, number];
  check(
    maskBatch === 1 || maskBatch === batch,
    'shape-mismatch',
    () =>
      `${op}: mask: dim 0 must be 1 or batch (${batch}), got ${maskBatch} (shape ${shapeText(mask.shape)})`,
  );
  check(
    maskHeads === 1 || maskHeads === hq,
    'shape-mismatch',
    () => `${op}: mask: dim 1 must be 1 or hq (${hq}), got ${maskHeads} (shape ${shapeText(mask.shape)})`,
  );
  expectShape(`${op}: mask`, mask, [maskBatch, maskHeads, n, n]);
  for (const [name, t] of [
    ['k', k],
    ['v', v],
    ['mask', mask],
  ] as const) {
    expectDtype(`${op}: ${name}`, t, q.dtype);
  }
  return { batch, n, hq, hkv, group: hq / hkv, dk, dv, maskBatch, maskHeads, dtype: q.dtype };
}

/** Checks the options and resolves the defaults. */
export function resolveMaskedOptions(
  gpu: Gpu,
  op: string,
  dtype: Dtype,
  options: MaskedLinearAttentionOptions,
): { scale: number; implementation: MaskedImplementation; tier: Tier; checkFinite: boolean } {
  const scale = options.scale ?? 1;
  check(
    typeof scale === 'number' && Number.isFinite(scale),
    'invalid-argument',
    () => `${op}: scale: expected a finite number, got ${String(options.scale)}`,
  );
  const implementation = options.implementation ?? 'fused';
  check(
    MASKED_IMPLEMENTATIONS.includes(implementation),
    'invalid-argument',
    () =>
      `${op}: implementation: expected one of ${MASKED_IMPLEMENTATIONS.join(', ')}, got ${JSON.stringify(options.implementation)}`,
  );
  const tier = pickTier(gpu.caps, dtype, options.tier, op);
  return { scale, implementation, tier, checkFinite: (options.checkFinite ?? true) && dtype === 'f16' };
}

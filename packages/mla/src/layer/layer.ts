/**
 * The MLA attention layer in the absorbed form (MLA spec §2): hidden states in, hidden states out,
 * over a paged latent cache. Per call: c_q = RMSNorm(q_a_proj x) (or x), q_nope and q_pe from the
 * split q_b_proj, the latent query `W_UK[h]ᵀ q_nope` in a second step (cheaper than the merged
 * matrix, spec §2), RoPE on q_pe; `[c | k_pe] = kv_a_proj_with_mqa x`, c_kv = RMSNorm(c), RoPE on
 * k_pe, appended to each sequence's pages; the absorbed attention; o_proj.
 */
import { check, type Dtype, dispatch, type Gpu, matmul, memoizeWgsl, Tensor, type Tier } from '@webattn/core';
import type { MlaAttentionOptions } from '../attention/attention.js';
import type { MlaCache } from '../cache/cache.js';
import { mlaAttentionPaged } from '../cache/paged-attention.js';
import { MLA_LAYER_PARAMS, MLA_LAYER_WORKGROUP, mlaQueryLatentWgsl } from './layer.wgsl.js';
import { mlaProjections } from './projections.js';

// Each kernel's WGSL is written once per configuration (see memoizeWgsl).
const mlaQueryLatentCode = memoizeWgsl(mlaQueryLatentWgsl);

/** Sizes of one MLA layer, named as in the HF configs. */
export interface MlaLayerDims {
  /** `hidden_size`. */
  hiddenSize: number;
  /** `num_attention_heads`. */
  heads: number;
  /** `q_lora_rank`; absent when queries come straight from `q_proj` (DeepSeek-V2-Lite). */
  qLoraRank?: number;
  /** `kv_lora_rank`, r. */
  kvLoraRank: number;
  /** `qk_nope_head_dim`. */
  qkNopeHeadDim: number;
  /** `qk_rope_head_dim`. */
  qkRopeHeadDim: number;
  /** `v_head_dim`. */
  vHeadDim: number;
}

/** One layer's weights in the HF layouts (`[out, in]`, head-major rows), as host arrays. */
export interface MlaLayerWeights {
  /** `q_a_proj`, `[qLoraRank, hiddenSize]`, with `qLoraRank`. */
  qAProj?: ArrayLike<number>;
  /** `q_a_layernorm`, `[qLoraRank]`, with `qLoraRank`. */
  qALayernorm?: ArrayLike<number>;
  /** `q_b_proj`, `[heads · (nope + rope), qLoraRank]`, with `qLoraRank`. */
  qBProj?: ArrayLike<number>;
  /** `q_proj`, `[heads · (nope + rope), hiddenSize]`, without `qLoraRank`. */
  qProj?: ArrayLike<number>;
  /** `kv_a_proj_with_mqa`, `[kvLoraRank + rope, hiddenSize]`. */
  kvAProjWithMqa: ArrayLike<number>;
  /** `kv_a_layernorm`, `[kvLoraRank]`. */
  kvALayernorm: ArrayLike<number>;
  /** `kv_b_proj`, `[heads · (nope + v), kvLoraRank]`: W_UK rows, then W_UV rows, per head. */
  kvBProj: ArrayLike<number>;
  /** `o_proj`, `[hiddenSize, heads · v]`. */
  oProj: ArrayLike<number>;
}

/** The absorbed weights on the GPU, from {@link absorbMla}. */
export interface MlaAbsorbedLayerWeights {
  qAProj?: Tensor;
  qALayernorm?: Tensor;
  /** The nope rows of q_b_proj (or q_proj), `[heads · nope, queryInput]`. */
  qNopeProj: Tensor;
  /** The rope rows, `[heads · rope, queryInput]`. */
  qRopeProj: Tensor;
  /** W_UK, `[heads, nope, kvLoraRank]`. */
  wUk: Tensor;
  /** W_UV transposed per head, `[heads, kvLoraRank, v]`: the attention's `wUv`. */
  wUv: Tensor;
  kvAProjWithMqa: Tensor;
  kvALayernorm: Tensor;
  oProj: Tensor;
}

/** Rotary embedding of the layer: pair layout and, per sequence length, the rates and magnitude. */
export interface MlaLayerRope {
  style: 'rotate-half' | 'interleaved';
  /**
   * Rates (`qkRopeHeadDim / 2`) and the magnitude of cos and sin for a sequence of `length` tokens:
   * `@webattn/reference`'s `ropeFrequencies(dr, rope, length)` computes them for LongRoPE and YaRN.
   */
  frequencies(length: number): { invFreq: ArrayLike<number>; magnitude: number };
}

/** Configuration of {@link MlaAttention}. */
export interface MlaLayerConfig {
  dims: MlaLayerDims;
  rope: MlaLayerRope;
  /** Softmax scale; `(nope + rope) ** -0.5` by default (YaRN models pass their mscale-corrected one). */
  scale?: number;
  /** Epsilon of q_a_layernorm and kv_a_layernorm; 1e-6 by default. */
  normEps?: number;
  /** Storage dtype of weights and activations; f32 by default. */
  dtype?: Dtype;
  /** Kernel tier of the attention and matmuls. */
  tier?: Tier;
}

/**
 * The per-token (cos, sin) pairs {@link mlaRopeWgsl} reads, magnitude included, computed in f64 on
 * the host: token j of sequence i (packed in order) sits at position `prefixes[i] + j` and turns at
 * the rates of its sequence's new length `prefixes[i] + newLengths[i]`. `[Σ newLengths · dr / 2, 2]`
 * values (at least one pair, so the table can always be bound).
 */
export function mlaRopeTable(
  rope: MlaLayerRope,
  dr: number,
  prefixes: readonly number[],
  newLengths: readonly number[],
): Float32Array {
  const half = dr / 2;
  const tokens = newLengths.reduce((a, n) => a + n, 0);
  const table = new Float32Array(Math.max(1, tokens * half) * 2);
  let t = 0;
  for (const [i, n] of newLengths.entries()) {
    const { invFreq, magnitude } = rope.frequencies(prefixes[i]! + n);
    for (let j = 0; j < n; j++, t++) {
      const position = prefixes[i]! + j;
      for (let k = 0; k < half; k++) {
        const angle = position * invFreq[k]!;
        table[(t * half + k) * 2] = Math.cos(angle) * magnitude;
        table[(t * half + k) * 2 + 1] = Math.sin(angle) * magnitude;
      }
    }
  }
  return table;
}

function hostCheck(
  name: string,
  a: ArrayLike<number> | undefined,
  rows: number,
  cols: number,
): ArrayLike<number> {
  check(
    a !== undefined,
    'invalid-argument',
    () => `absorbMla: weights.${name}: required by these dims, missing`,
  );
  check(
    a.length === rows * cols,
    'shape-mismatch',
    () => `absorbMla: weights.${name}: expected ${rows} x ${cols} = ${rows * cols} values, got ${a.length}`,
  );
  return a;
}

/**
 * Splits the HF weights into the absorbed form (spec §2, "train2test") and uploads them: q_b_proj's
 * nope and rope rows apart, kv_b_proj's W_UK kept for the two-step latent query, W_UV transposed
 * per head for the attention's epilogue. Copies only, so exact.
 *
 * @throws WebAttnError naming the weight whose size does not fit the dims.
 */
export function absorbMla(
  gpu: Gpu,
  weights: MlaLayerWeights,
  config: MlaLayerConfig,
): MlaAbsorbedLayerWeights {
  const {
    hiddenSize: H,
    heads,
    qLoraRank,
    kvLoraRank: r,
    qkNopeHeadDim: dn,
    qkRopeHeadDim: dr,
    vHeadDim: dv,
  } = config.dims;
  const dtype = config.dtype ?? 'f32';
  const input = qLoraRank ?? H;
  const qUp = qLoraRank
    ? hostCheck('qBProj', weights.qBProj, heads * (dn + dr), qLoraRank)
    : hostCheck('qProj', weights.qProj, heads * (dn + dr), H);
  const kvA = hostCheck('kvAProjWithMqa', weights.kvAProjWithMqa, r + dr, H);
  const kvNorm = hostCheck('kvALayernorm', weights.kvALayernorm, 1, r);
  const kvB = hostCheck('kvBProj', weights.kvBProj, heads * (dn + dv), r);
  const oProj = hostCheck('oProj', weights.oProj, H, heads * dv);
  const qNope = new Float32Array(heads * dn * input);
  const qRope = new Float32Array(heads * dr * input);
  for (let h = 0; h < heads; h++) {
    for (let row = 0; row < dn + dr; row++) {
      const from = (h * (dn + dr) + row) * input;
      const [target, to] = row < dn ? [qNope, (h * dn + row) * input] : [qRope, (h * dr + row - dn) * input];
      for (let c = 0; c < input; c++) target[to + c] = qUp[from + c]!;
    }
  }
  const wUk = new Float32Array(heads * dn * r);
  const wUv = new Float32Array(heads * r * dv);
  for (let h = 0; h < heads; h++) {
    for (let k = 0; k < r; k++) {
      for (let d = 0; d < dn; d++) wUk[(h * dn + d) * r + k] = kvB[(h * (dn + dv) + d) * r + k]!;
      for (let d = 0; d < dv; d++) wUv[(h * r + k) * dv + d] = kvB[(h * (dn + dv) + dn + d) * r + k]!;
    }
  }
  const up = (a: ArrayLike<number>, shape: number[]) => Tensor.from(gpu, Float32Array.from(a), shape, dtype);
  const out: MlaAbsorbedLayerWeights = {
    qNopeProj: up(qNope, [heads * dn, input]),
    qRopeProj: up(qRope, [heads * dr, input]),
    wUk: up(wUk, [heads, dn, r]),
    wUv: up(wUv, [heads, r, dv]),
    kvAProjWithMqa: up(kvA, [r + dr, H]),
    kvALayernorm: up(kvNorm, [r]),
    oProj: up(oProj, [H, heads * dv]),
  };
  if (qLoraRank) {
    out.qAProj = up(hostCheck('qAProj', weights.qAProj, qLoraRank, H), [qLoraRank, H]);
    out.qALayernorm = up(hostCheck('qALayernorm', weights.qALayernorm, 1, qLoraRank), [qLoraRank]);
  }
  return out;
}

/**
 * The MLA attention layer over a paged latent cache: {@link MlaAttention.forward} takes the new
 * tokens of a batch of sequences (all of a prompt, one per decode step, or a chunk), appends their
 * latent and rope key to the cache, and returns the attention output after o_proj.
 */
export class MlaAttention {
  /** The absorbed weights on the GPU. */
  readonly weights: MlaAbsorbedLayerWeights;

  constructor(
    readonly gpu: Gpu,
    weights: MlaLayerWeights,
    readonly config: MlaLayerConfig,
  ) {
    this.weights = absorbMla(gpu, weights, config);
  }

  private async kernel(label: string, code: string, buffers: Tensor[], tokens: number, workgroups: number) {
    await dispatch(this.gpu, {
      label,
      code,
      buffers,
      params: { layout: MLA_LAYER_PARAMS, values: { tokens, eps: this.config.normEps ?? 1e-6 } },
      workgroups,
    });
  }

  private async mm(a: Tensor, b: Tensor): Promise<Tensor> {
    return matmul(this.gpu, a, b, { transposeB: true, ...(this.config.tier && { tier: this.config.tier }) });
  }

  /**
   * One layer call. `hidden` `[T, hiddenSize]` holds `newLengths[i]` tokens of sequence `ids[i]`,
   * packed in order; they are appended to `cache` and attend to everything before them and
   * themselves (causal, aligned to each sequence's end). Returns `[T, hiddenSize]`.
   *
   * @throws WebAttnError for a hidden state of the wrong shape or dtype, or bad ids and lengths.
   */
  async forward(
    hidden: Tensor,
    cache: MlaCache,
    ids: readonly number[],
    newLengths: readonly number[],
  ): Promise<Tensor> {
    const { dims, rope } = this.config;
    const { hiddenSize: H, heads, kvLoraRank: r, qkNopeHeadDim: dn, qkRopeHeadDim: dr, vHeadDim: dv } = dims;
    const dtype = this.config.dtype ?? 'f32';
    const op = 'MlaAttention.forward';
    check(
      ids.length === newLengths.length,
      'shape-mismatch',
      () => `${op}: newLengths: expected one per id (${ids.length}), got ${newLengths.length}`,
    );
    for (const [i, n] of newLengths.entries()) {
      check(
        Number.isSafeInteger(n) && n >= 0,
        'invalid-argument',
        () => `${op}: newLengths[${i}]: expected a non-negative integer, got ${n}`,
      );
    }
    const T = newLengths.reduce((a, n) => a + n, 0);
    check(
      hidden.shape.length === 2 && hidden.shape[0] === T && hidden.shape[1] === H,
      'shape-mismatch',
      () =>
        `${op}: hidden: expected shape [Σ newLengths, hiddenSize] = [${T}, ${H}], got [${hidden.shape.join(', ')}]`,
    );
    check(
      hidden.dtype === dtype,
      'dtype-mismatch',
      () => `${op}: hidden: expected dtype ${dtype}, got ${hidden.dtype}`,
    );
    check(
      cache.r === r && cache.dr === dr && cache.dtype === dtype,
      'shape-mismatch',
      () =>
        `${op}: cache: expected r = ${r}, dr = ${dr}, dtype ${dtype}, got r = ${cache.r}, dr = ${cache.dr}, ${cache.dtype}`,
    );
    const prefixes = ids.map((id) => cache.length(id));
    if (T === 0) return Tensor.empty(this.gpu, [0, H], dtype);
    const w = this.weights;
    const wg = (n: number) => Math.ceil(n / MLA_LAYER_WORKGROUP);
    const table = mlaRopeTable(rope, dr, prefixes, newLengths);
    using cs = Tensor.from(this.gpu, table, [table.length]);
    const owned: Tensor[] = [];
    const keep = <X extends Tensor>(x: X): X => {
      owned.push(x);
      return x;
    };
    try {
      const { qNope, qPe, cKv, kPe } = await mlaProjections(this.gpu, w, this.config, hidden, cs);
      for (const x of [qNope, qPe, cKv, kPe]) keep(x);
      const qLatent = keep(Tensor.empty(this.gpu, [T, heads, r], dtype));
      await this.kernel(
        'mla q latent',
        mlaQueryLatentCode({ dtype, heads, dn, r }),
        [qNope, w.wUk, qLatent],
        T,
        wg(T * heads * r),
      );
      if (T > 0) await cache.appendPacked(ids, cKv, kPe, newLengths);
      // Attention: one call when every sequence adds as many tokens, else one per sequence.
      const options: MlaAttentionOptions = {
        scale: this.config.scale ?? (dn + dr) ** -0.5,
        ...(this.config.tier && { tier: this.config.tier }),
      };
      const o = keep(Tensor.empty(this.gpu, [T, heads * dv], dtype));
      const bytes = dtype === 'f16' ? 2 : 4;
      if (T > 0 && newLengths.every((n) => n === newLengths[0])) {
        const nq = newLengths[0]!;
        const qView = Tensor.wrap(this.gpu, qLatent.buffer, [ids.length, nq, heads, r], dtype);
        const pView = Tensor.wrap(this.gpu, qPe.buffer, [ids.length, nq, heads, dr], dtype);
        using out = await mlaAttentionPaged(this.gpu, qView, pView, cache, ids, w.wUv, options);
        this.gpu.encoder().copyBufferToBuffer(out.buffer, 0, o.buffer, 0, T * heads * dv * bytes);
      } else {
        let start = 0;
        for (const [i, n] of newLengths.entries()) {
          if (n > 0) {
            using q1 = Tensor.empty(this.gpu, [1, n, heads, r], dtype);
            using p1 = Tensor.empty(this.gpu, [1, n, heads, dr], dtype);
            const enc = this.gpu.encoder();
            enc.copyBufferToBuffer(
              qLatent.buffer,
              start * heads * r * bytes,
              q1.buffer,
              0,
              n * heads * r * bytes,
            );
            if (dr > 0) {
              enc.copyBufferToBuffer(
                qPe.buffer,
                start * heads * dr * bytes,
                p1.buffer,
                0,
                n * heads * dr * bytes,
              );
            }
            using out = await mlaAttentionPaged(this.gpu, q1, p1, cache, [ids[i]!], w.wUv, options);
            this.gpu
              .encoder()
              .copyBufferToBuffer(
                out.buffer,
                0,
                o.buffer,
                start * heads * dv * bytes,
                n * heads * dv * bytes,
              );
          }
          start += n;
        }
      }
      return await this.mm(o, w.oProj);
    } finally {
      for (const x of owned) x.dispose();
    }
  }

  /** Frees the weights. */
  dispose(): void {
    for (const x of Object.values(this.weights)) (x as Tensor).dispose();
  }
}

/**
 * The unabsorbed ("eager") MLA layer, what MiniCPM3's original attention does, as the baseline of
 * the generation table: the per-head keys and values are expanded from each new token's latent with
 * kv_b_proj and appended to a dense standard K/V cache, then plain multi-head attention (core's flash
 * attention) runs over it, then o_proj. The query side, kv_a_proj_with_mqa, the norms and the rope
 * come from mlaProjections, the code the absorbed layer runs, so the two columns differ only where
 * absorption differs.
 */
import { check, dispatch, flashAttention, type Gpu, matmul, Tensor } from '@webattn/core';
import {
  absorbMla,
  type MlaAbsorbedLayerWeights,
  type MlaLayerConfig,
  type MlaLayerWeights,
  type MlaProjections,
  mlaProjections,
  mlaRopeTable,
} from '@webattn/mla';
import {
  HEAD_CONCAT_PARAMS,
  HEAD_CONCAT_WORKGROUP,
  type HeadSlice,
  headConcatWgsl,
} from './mla-eager-layer.wgsl.js';

/** The dense cache's room: `batch` sequences that grow together, `maxLength` tokens each. */
export interface EagerCacheShape {
  batch: number;
  maxLength: number;
}

/** Where {@link headConcatWgsl} writes: token j of sequence s to row `s · sequenceRows + start + j`. */
interface RowPlacement {
  perSequence: number;
  sequenceRows: number;
  start: number;
}

/** The eager MLA layer over its own dense K/V cache; see the module documentation. */
export class EagerMlaLayer {
  /** Keys `[batch, maxLength, heads, nope + rope]`; rows past {@link length} are never read. */
  readonly k: Tensor;
  /** Values `[batch, maxLength, heads, v]`. */
  readonly v: Tensor;
  private held = 0;
  private readonly weights: Omit<MlaAbsorbedLayerWeights, 'wUk' | 'wUv'>;
  /** kv_b_proj as HF stores it, `[heads · (nope + v), kvLoraRank]`: k_nope rows, then v rows, per head. */
  private readonly kvBProj: Tensor;

  constructor(
    readonly gpu: Gpu,
    weights: MlaLayerWeights,
    readonly config: MlaLayerConfig,
    readonly cache: EagerCacheShape,
  ) {
    const { heads, kvLoraRank: r, qkNopeHeadDim: dn, qkRopeHeadDim: dr, vHeadDim: dv } = config.dims;
    const dtype = config.dtype ?? 'f32';
    check(
      dr > 0,
      'invalid-argument',
      () =>
        `EagerMlaLayer: config.dims.qkRopeHeadDim: expected > 0 (MiniCPM3 and DeepSeek rotate 32 or 64), got ${dr}`,
    );
    // absorbMla checks and uploads the weights; its q split only permutes q_b_proj's rows (the same
    // FLOPs as HF's one matmul then split). Eager attention does not absorb kv_b_proj: W_UK and W_UV go.
    const { wUk, wUv, ...rest } = absorbMla(gpu, weights, config);
    wUk.dispose();
    wUv.dispose();
    this.weights = rest;
    this.kvBProj = Tensor.from(gpu, Float32Array.from(weights.kvBProj), [heads * (dn + dv), r], dtype);
    this.k = Tensor.empty(gpu, [cache.batch, cache.maxLength, heads, dn + dr], dtype);
    this.v = Tensor.empty(gpu, [cache.batch, cache.maxLength, heads, dv], dtype);
  }

  /** Tokens every sequence holds. */
  get length(): number {
    return this.held;
  }

  /** Empties every sequence (the rows stay allocated for the next generation). */
  reset(): void {
    this.held = 0;
  }

  private mm(a: Tensor, b: Tensor): Promise<Tensor> {
    return matmul(this.gpu, a, b, { transposeB: true, ...(this.config.tier && { tier: this.config.tier }) });
  }

  /** `y` rows of `[a | b]` per head: see {@link headConcatWgsl}. */
  private async concat(
    tokens: number,
    y: Tensor,
    at: RowPlacement,
    a: [Tensor, HeadSlice],
    b?: [Tensor, HeadSlice],
  ) {
    const { heads } = this.config.dims;
    const width = a[1].width + (b?.[1].width ?? 0);
    await dispatch(this.gpu, {
      label: 'eager mla head concat',
      code: headConcatWgsl({ dtype: y.dtype, heads, a: a[1], ...(b && { b: b[1] }) }),
      buffers: b ? [a[0], b[0], y] : [a[0], y],
      params: { layout: HEAD_CONCAT_PARAMS, values: { tokens, ...at } },
      workgroups: Math.ceil((tokens * heads * width) / HEAD_CONCAT_WORKGROUP),
    });
  }

  /**
   * One call: `hidden` `[batch · perSequence, hiddenSize]` holds `perSequence` new tokens of each
   * sequence, packed sequence-major; their keys and values join the cache and they attend causally
   * to everything before them and themselves. Returns `[batch · perSequence, hiddenSize]`.
   *
   * @throws WebAttnError when the new tokens do not fit the cache or `hidden` has the wrong shape.
   */
  async forward(hidden: Tensor, perSequence: number): Promise<Tensor> {
    const { hiddenSize: H, heads, qkRopeHeadDim: dr, vHeadDim: dv } = this.config.dims;
    const dtype = this.config.dtype ?? 'f32';
    const { batch, maxLength } = this.cache;
    const op = 'EagerMlaLayer.forward';
    check(
      Number.isSafeInteger(perSequence) && perSequence >= 1 && this.held + perSequence <= maxLength,
      'invalid-argument',
      () =>
        `${op}: perSequence: expected 1 to ${maxLength - this.held} (room left in the cache), got ${perSequence}`,
    );
    const T = batch * perSequence;
    check(
      hidden.shape.join() === [T, H].join() && hidden.dtype === dtype,
      'shape-mismatch',
      () => `${op}: hidden: expected [${T}, ${H}] ${dtype}, got [${hidden.shape.join(', ')}] ${hidden.dtype}`,
    );
    const table = mlaRopeTable(
      this.config.rope,
      dr,
      Array.from({ length: batch }, () => this.held),
      Array.from({ length: batch }, () => perSequence),
    );
    using cs = Tensor.from(this.gpu, table, [table.length]);
    const p = await mlaProjections(this.gpu, this.weights, this.config, hidden, cs);
    using _qNope = p.qNope;
    using _qPe = p.qPe;
    using _cKv = p.cKv;
    using _kPe = p.kPe;
    using q = await this.queries(p, T);
    await this.appendKeysValues(p, T, perSequence);
    this.held += perSequence;
    using o = await this.attend(q, perSequence);
    return await this.mm(Tensor.wrap(this.gpu, o.buffer, [T, heads * dv], dtype), this.weights.oProj);
  }

  /** The standard query `[tokens, heads, nope + rope]`: q_nope and the rotated q_pe per head, side by side. */
  private async queries(p: MlaProjections, T: number): Promise<Tensor> {
    const { heads, qkNopeHeadDim: dn, qkRopeHeadDim: dr } = this.config.dims;
    const dtype = this.config.dtype ?? 'f32';
    const q = Tensor.empty(this.gpu, [T, heads, dn + dr], dtype);
    await this.concat(
      T,
      q,
      { perSequence: T, sequenceRows: T, start: 0 },
      [p.qNope, { width: dn, rowStride: heads * dn, offset: 0, headStride: dn }],
      [p.qPe, { width: dr, rowStride: heads * dr, offset: 0, headStride: dr }],
    );
    return q;
  }

  /**
   * Appends the new tokens' keys and values at row {@link length} of each sequence: k_nope and v per
   * head from kv_b_proj of c_kv, beside the rotated k_pe every head shares.
   */
  private async appendKeysValues(p: MlaProjections, T: number, perSequence: number): Promise<void> {
    const { heads, qkNopeHeadDim: dn, qkRopeHeadDim: dr, vHeadDim: dv } = this.config.dims;
    using kvb = await this.mm(p.cKv, this.kvBProj);
    const rows = heads * (dn + dv);
    const at = { perSequence, sequenceRows: this.cache.maxLength, start: this.held };
    await this.concat(
      T,
      this.k,
      at,
      [kvb, { width: dn, rowStride: rows, offset: 0, headStride: dn + dv }],
      [p.kPe, { width: dr, rowStride: dr, offset: 0, headStride: 0 }],
    );
    await this.concat(T, this.v, at, [kvb, { width: dv, rowStride: rows, offset: dn, headStride: dn + dv }]);
  }

  /**
   * Causal attention of the packed queries `[batch · perSequence, heads, nope + rope]` over the
   * cache, aligned to each sequence's end; returns `[batch · perSequence, heads, v]`. The unused rows
   * of each sequence's room are passed as a sequence of their own with no queries, so the packed
   * call reads only valid keys without copying the cache.
   */
  private async attend(q: Tensor, perSequence: number): Promise<Tensor> {
    const { batch, maxLength } = this.cache;
    const { heads, qkNopeHeadDim: dn, qkRopeHeadDim: dr, vHeadDim: dv } = this.config.dims;
    const cuSeqlensQ = [0];
    const cuSeqlensK = [0];
    for (let s = 1; s <= batch; s++) {
      cuSeqlensQ.push(s * perSequence, s * perSequence);
      cuSeqlensK.push((s - 1) * maxLength + this.held, s * maxLength);
    }
    const tokens = batch * maxLength;
    const { o, lse } = await flashAttention(
      this.gpu,
      q,
      Tensor.wrap(this.gpu, this.k.buffer, [tokens, heads, dn + dr], this.k.dtype),
      Tensor.wrap(this.gpu, this.v.buffer, [tokens, heads, dv], this.v.dtype),
      {
        causal: true,
        scale: this.config.scale ?? (dn + dr) ** -0.5,
        cuSeqlensQ,
        cuSeqlensK,
        ...(this.config.tier && { tier: this.config.tier }),
      },
    );
    lse.dispose();
    return o;
  }

  /** Frees the weights and the cache. */
  dispose(): void {
    for (const x of [...Object.values(this.weights), this.kvBProj, this.k, this.v]) x.dispose();
  }
}

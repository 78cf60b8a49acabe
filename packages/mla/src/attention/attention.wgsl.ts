/**
 * The absorbed MLA attention kernel (MLA spec sections 2 and 9): every head of a sequence (times its
 * nq queries) is packed into the rows of one workgroup tile, so each latent cache token is read once
 * per row block (once per sequence when all heads fit one block, as MiniCPM3's 40 do), not once per
 * head. A workgroup owns (sequence, row block, split of the keys): it scores its rows against each
 * key tile (`q_latent·c_kv + q_pe·k_pe`), runs the online softmax in f32 and accumulates `p·c_kv`
 * over the `r` latent columns. With one split it normalises and applies the W_UV epilogue itself;
 * with several it writes its unnormalised accumulator and (max, sum) for the combine kernel.
 *
 * Masking selects, never multiplies: key slots at or past the sequence's length are not even read
 * (their tile entries are set to 0), and probabilities of keys a row cannot see are selected to 0,
 * so NaN in unused cache slots never reaches a result.
 */
import { type Dtype, enables, paramsStruct, WORKGROUP_INDEX_WGSL } from '@webattn/core';

/** Invocations per workgroup of the attention and combine kernels. */
export const MLA_WORKGROUP = 256;

/** Invocations per workgroup of the combine kernel (one output row each). */
export const MLA_COMBINE_WORKGROUP = 64;

/** Uniform parameters of the attention kernel. */
export const MLA_ATTENTION_PARAMS = [
  ['batch', 'u32'],
  ['nq', 'u32'],
  // nq · heads: the packed rows of one sequence.
  ['rows', 'u32'],
  ['rowBlocks', 'u32'],
  ['splits', 'u32'],
  // Keys per split, a multiple of the key tile.
  ['keysPerSplit', 'u32'],
  // Dense: cache slots per sequence. Paged: tokens per page.
  ['slots', 'u32'],
  // Paged: entries per block-table row.
  ['maxPages', 'u32'],
  ['scale', 'f32'],
] as const;

/** Uniform parameters of the combine kernel. */
export const MLA_COMBINE_PARAMS = [
  ['batch', 'u32'],
  ['rows', 'u32'],
  ['splits', 'u32'],
  // Rows between splits in the partials: rows, or rows padded to whole row blocks.
  ['rowStride', 'u32'],
] as const;

/** Where the kernel reads keys from. */
export type MlaKeySource = 'dense' | 'paged';

/** What one attention kernel is generated for. */
export interface MlaAttentionKernelConfig {
  /** Storage dtype of queries, cache, W_UV and o. */
  dtype: Dtype;
  /** Query heads. */
  heads: number;
  /** Latent rank. */
  r: number;
  /** Rope dims. */
  dr: number;
  /** Output head dim. */
  dv: number;
  /** Packed rows per workgroup; `rows · keyTile` is a multiple of {@link MLA_WORKGROUP}. */
  rows: number;
  /** Keys per tile. */
  keyTile: number;
  /** `dense`: c_kv `[b, slots, r]` and k_pe `[b, slots, dr]`; `paged`: pages `[pages, pageSize, r + dr]` and a block table. */
  source: MlaKeySource;
  /** True: one split, normalise and apply W_UV here. False: write partials for the combine kernel. */
  fused: boolean;
}

/** Workgroup bytes of an attention kernel: the key tile, the probabilities and three row statistics. */
export function mlaAttentionSharedBytes(
  c: Pick<MlaAttentionKernelConfig, 'r' | 'dr' | 'rows' | 'keyTile'>,
): number {
  return 4 * (c.keyTile * (c.r + c.dr) + c.rows * c.keyTile + 3 * c.rows + 1);
}

/** Why a config cannot be generated, or undefined. */
export function mlaAttentionUnsupported(c: MlaAttentionKernelConfig): string | undefined {
  if ((c.rows * c.r) % MLA_WORKGROUP !== 0)
    return `rows·r = ${c.rows * c.r} must be a multiple of ${MLA_WORKGROUP}`;
  if ((c.rows * c.keyTile) % MLA_WORKGROUP !== 0) {
    return `rows·keyTile = ${c.rows * c.keyTile} must be a multiple of ${MLA_WORKGROUP}`;
  }
  if (c.keyTile * (c.r + c.dr) < c.r) return 'the key tile must hold at least one latent row';
  return undefined;
}

function keyLoad(c: MlaAttentionKernelConfig): string {
  const dk = c.r + c.dr;
  if (c.source === 'paged') {
    return `fn loadKey(b: u32, j: u32, col: u32) -> f32 {
  let page = table[b * p.maxPages + j / p.slots];
  return f32(cache[(page * p.slots + j % p.slots) * ${dk}u + col]);
}`;
  }
  const rope =
    c.dr > 0
      ? `if (col >= ${c.r}u) { return f32(kpe[(b * p.slots + j) * ${c.dr}u + col - ${c.r}u]); }\n  `
      : '';
  return `fn loadKey(b: u32, j: u32, col: u32) -> f32 {
  ${rope || '_ = &kpe;\n  '}return f32(ckv[(b * p.slots + j) * ${c.r}u + col]);
}`;
}

/** WGSL of the attention kernel. */
export function mlaAttentionWgsl(c: MlaAttentionKernelConfig): string {
  const why = mlaAttentionUnsupported(c);
  if (why) throw new Error(`mlaAttentionWgsl: ${why}`);
  const T = c.dtype;
  const { r, dr, dv, heads, rows: ROWS, keyTile: KT } = c;
  const dk = r + dr;
  const WG = MLA_WORKGROUP;
  const ACC = (ROWS * r) / WG;
  const SC = (ROWS * KT) / WG;
  // Rows staged at once for the epilogue, in the key tile's storage.
  const CH = Math.min(ROWS, Math.floor((KT * dk) / r));
  const sourceBindings =
    c.source === 'paged'
      ? `@group(0) @binding(2) var<storage, read> cache: array<${T}>;
@group(0) @binding(3) var<storage, read> table: array<u32>;`
      : `@group(0) @binding(2) var<storage, read> ckv: array<${T}>;
@group(0) @binding(3) var<storage, read> kpe: array<${T}>;`;
  const outBindings = c.fused
    ? `@group(0) @binding(5) var<storage, read> wuv: array<${T}>;
@group(0) @binding(6) var<storage, read_write> o: array<${T}>;`
    : `@group(0) @binding(5) var<storage, read_write> part: array<f32>;
@group(0) @binding(6) var<storage, read_write> stats: array<f32>;`;
  const qPeDot =
    dr > 0
      ? `for (var col = 0u; col < ${dr}u; col++) {
        dot += f32(qpe[qrow * ${dr}u + col]) * kt[key * ${dk}u + ${r}u + col];
      }`
      : '_ = &qpe;';
  const finish = c.fused
    ? `  // Epilogue: o_h = (acc / l) · W_UV[h], CH rows at a time staged in the key tile.
  for (var c0 = 0u; c0 < ${ROWS}u; c0 += ${CH}u) {
    workgroupBarrier();
    for (var x = 0u; x < ${ACC}u; x++) {
      let e = li + x * ${WG}u;
      let ro = e / ${r}u;
      if (ro >= c0 && ro < c0 + ${CH}u) {
        let l = lrow[ro];
        kt[(ro - c0) * ${r}u + e % ${r}u] = select(0.0, acc[x] / l, l > 0.0);
      }
    }
    workgroupBarrier();
    for (var y = li; y < ${CH * dv}u; y += ${WG}u) {
      let ro = c0 + y / ${dv}u;
      let row = rowLo + ro;
      if (ro < ${ROWS}u && row < p.rows) {
        let d = y % ${dv}u;
        let head = row % ${heads}u;
        var sum = 0.0;
        for (var col = 0u; col < ${r}u; col++) {
          sum += kt[(ro - c0) * ${r}u + col] * f32(wuv[(head * ${r}u + col) * ${dv}u + d]);
        }
        o[(b * p.rows + row) * ${dv}u + d] = ${T}(sum);
      }
    }
  }`
    : `  // Partials for the combine: the unnormalised accumulator and (max, sum) per row.
  let base = (b * p.splits + split) * p.rows;
  for (var x = 0u; x < ${ACC}u; x++) {
    let e = li + x * ${WG}u;
    let row = rowLo + e / ${r}u;
    if (row < p.rows) { part[(base + row) * ${r}u + e % ${r}u] = acc[x]; }
  }
  for (var ro = li; ro < ${ROWS}u; ro += ${WG}u) {
    if (rowLo + ro < p.rows) {
      stats[(base + rowLo + ro) * 2u] = mrow[ro];
      stats[(base + rowLo + ro) * 2u + 1u] = lrow[ro];
    }
  }`;
  return `${enables({ f16: T === 'f16' })}
${paramsStruct(MLA_ATTENTION_PARAMS)}
@group(0) @binding(0) var<storage, read> ql: array<${T}>;
@group(0) @binding(1) var<storage, read> qpe: array<${T}>;
${sourceBindings}
@group(0) @binding(4) var<storage, read> lengths: array<u32>;
${outBindings}
@group(0) @binding(7) var<uniform> p: Params;

const NEG = -3.0e38;

var<workgroup> kt: array<f32, ${KT * dk}>;
var<workgroup> pt: array<f32, ${ROWS * KT}>;
var<workgroup> mrow: array<f32, ${ROWS}>;
var<workgroup> lrow: array<f32, ${ROWS}>;
var<workgroup> arow: array<f32, ${ROWS}>;

${WORKGROUP_INDEX_WGSL}

${keyLoad(c)}

// Keys row \`ro\` of the block may see: those before its position + 1, at most the length.
fn visibleKeys(len: u32, row: u32) -> u32 {
  if (row >= p.rows) { return 0u; }
  let pos = i32(len) - i32(p.nq) + i32(row / ${heads}u);
  return u32(clamp(pos + 1, 0, i32(len)));
}

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let wg = workgroupIndex(wid, nwg);
  if (wg >= p.batch * p.rowBlocks * p.splits) { return; }
  let split = wg % p.splits;
  let rb = (wg / p.splits) % p.rowBlocks;
  let b = wg / (p.splits * p.rowBlocks);
  // Read-only storage at a uniform address is uniform (no workgroupUniformLoad needed).
  let len = lengths[b];
  let rowLo = rb * ${ROWS}u;
  let lastRow = min(rowLo + ${ROWS}u, p.rows) - 1u;
  let kStart = split * p.keysPerSplit;
  let kEnd = min(kStart + p.keysPerSplit, visibleKeys(len, lastRow));
  for (var ro = li; ro < ${ROWS}u; ro += ${WG}u) {
    mrow[ro] = NEG;
    lrow[ro] = 0.0;
  }
  var acc: array<f32, ${ACC}>;
  for (var x = 0u; x < ${ACC}u; x++) { acc[x] = 0.0; }

  for (var t0 = kStart; t0 < kEnd; t0 += ${KT}u) {
    workgroupBarrier();
    // The key tile [c_kv | k_pe]; slots past kEnd are never read.
    for (var e = li; e < ${KT * dk}u; e += ${WG}u) {
      let j = t0 + e / ${dk}u;
      var v = 0.0;
      if (j < kEnd) { v = loadKey(b, j, e % ${dk}u); }
      kt[e] = v;
    }
    workgroupBarrier();
    // Scores, scaled.
    for (var x = 0u; x < ${SC}u; x++) {
      let s = li * ${SC}u + x;
      let ro = s / ${KT}u;
      let key = s % ${KT}u;
      let row = rowLo + ro;
      var dot = 0.0;
      if (row < p.rows) {
        let qrow = b * p.rows + row;
        for (var col = 0u; col < ${r}u; col++) {
          dot += f32(ql[qrow * ${r}u + col]) * kt[key * ${dk}u + col];
        }
        ${qPeDot}
      }
      pt[s] = dot * p.scale;
    }
    workgroupBarrier();
    // Online softmax per row; invisible keys are selected to probability 0.
    for (var ro = li; ro < ${ROWS}u; ro += ${WG}u) {
      let visible = visibleKeys(len, rowLo + ro);
      var tmax = NEG;
      for (var key = 0u; key < ${KT}u; key++) {
        if (t0 + key < visible) { tmax = max(tmax, pt[ro * ${KT}u + key]); }
      }
      let mOld = mrow[ro];
      let mNew = max(mOld, tmax);
      var sum = 0.0;
      for (var key = 0u; key < ${KT}u; key++) {
        let pr = select(0.0, exp(pt[ro * ${KT}u + key] - mNew), t0 + key < visible);
        pt[ro * ${KT}u + key] = pr;
        sum += pr;
      }
      let alpha = exp(mOld - mNew);
      arow[ro] = alpha;
      lrow[ro] = lrow[ro] * alpha + sum;
      mrow[ro] = mNew;
    }
    workgroupBarrier();
    // acc = acc·alpha + p·c_kv over the latent columns.
    for (var x = 0u; x < ${ACC}u; x++) {
      let e = li + x * ${WG}u;
      let ro = e / ${r}u;
      let col = e % ${r}u;
      var sum = acc[x] * arow[ro];
      for (var key = 0u; key < ${KT}u; key++) {
        sum += pt[ro * ${KT}u + key] * kt[key * ${dk}u + col];
      }
      acc[x] = sum;
    }
  }
  workgroupBarrier();
${finish}
}
`;
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/** What one combine kernel is generated for. */
export interface MlaCombineKernelConfig {
  dtype: Dtype;
  heads: number;
  r: number;
  dv: number;
}

/**
 * WGSL of the split combine with the W_UV epilogue: one workgroup per output row merges the splits'
 * accumulators with log-sum-exp weights (a row no split saw gives 0), then `o = ō · W_UV[h]`.
 *
 * Its work is latency, not bytes (a row's partials are a few KiB). The splits' statistics are read
 * once per chunk of `WG` splits, one per invocation, into workgroup memory, where every invocation
 * finds the max and then each split's weight; each invocation then merges its latent columns
 * reading four splits' partials per step. (On the H200 a workgroup of 64 walking the splits'
 * statistics one global read at a time took 15 to 56 µs for 4 to 128 splits; with 256 invocations
 * and tree reductions, 21 to 47: at batch 32 its 1280 workgroups no longer fit one wave. Eight of
 * W_UV's rows read per step in the epilogue changed nothing, 23-24 µs at batch 32 either way.)
 */
export function mlaCombineWgsl(c: MlaCombineKernelConfig): string {
  const T = c.dtype;
  const { r, dv, heads } = c;
  const WG = MLA_COMBINE_WORKGROUP;
  const columns = range(Math.ceil(r / WG));
  const inColumns = (x: number) => (r % WG !== 0 ? `if (li + ${x * WG}u < ${r}u) ` : '');
  // The splits of this row in chunks of WG: body runs after each chunk's statistics are staged.
  const chunks = (stage: string, body: string) => `  for (var s0 = 0u; s0 < p.splits; s0 += ${WG}u) {
    workgroupBarrier();
    if (s0 + li < p.splits) {
      let at = (first + (s0 + li) * p.rowStride) * 2u;
${stage}
    }
    workgroupBarrier();
    let count = min(${WG}u, p.splits - s0);
${body}
  }`;
  const term = (col: string, j: string) =>
    `select(0.0, weight[${j}] * part[(first + (s0 + ${j}) * p.rowStride) * ${r}u + ${col}], weight[${j}] > 0.0)`;
  return `${enables({ f16: T === 'f16' })}
${paramsStruct(MLA_COMBINE_PARAMS)}
@group(0) @binding(0) var<storage, read> part: array<f32>;
@group(0) @binding(1) var<storage, read> stats: array<f32>;
@group(0) @binding(2) var<storage, read> wuv: array<${T}>;
@group(0) @binding(3) var<storage, read_write> o: array<${T}>;
@group(0) @binding(4) var<uniform> p: Params;

var<workgroup> latent: array<f32, ${r}>;
// A chunk of the splits' maxima, then their weights (0 for a split that saw no key), and sums.
var<workgroup> weight: array<f32, ${WG}>;
var<workgroup> sums: array<f32, ${WG}>;

${WORKGROUP_INDEX_WGSL}

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let wg = workgroupIndex(wid, nwg);
  if (wg >= p.batch * p.rows) { return; }
  let b = wg / p.rows;
  let row = wg % p.rows;
  // Split s's statistics and partial row start at (first + s · rowStride) · 2 and · r.
  let first = b * p.splits * p.rowStride + row;
  var m = -3.0e38;
${chunks('      weight[li] = stats[at];', '    for (var j = 0u; j < count; j++) { m = max(m, weight[j]); }')}
  var l = 0.0;
${columns.map((x) => `  var sum${x} = 0.0;`).join('\n')}
${chunks(
  `      sums[li] = stats[at + 1u];
      // A split that saw no key has weight 0, and its partial is not read: nothing can leak in.
      weight[li] = select(0.0, exp(stats[at] - m), stats[at + 1u] > 0.0);`,
  `    for (var j = 0u; j < count; j++) { l += sums[j] * weight[j]; }
${columns
  .map(
    (x) => `    ${inColumns(x)}{
      var j = 0u;
      // Four splits' loads in flight per step, added in split order.
      for (; j + 4u <= count; j += 4u) {
        let x0 = ${term(`li + ${x * WG}u`, 'j')};
        let x1 = ${term(`li + ${x * WG}u`, 'j + 1u')};
        let x2 = ${term(`li + ${x * WG}u`, 'j + 2u')};
        let x3 = ${term(`li + ${x * WG}u`, 'j + 3u')};
        sum${x} = sum${x} + x0 + x1 + x2 + x3;
      }
      for (; j < count; j++) { sum${x} += ${term(`li + ${x * WG}u`, 'j')}; }
    }`,
  )
  .join('\n')}`,
)}
${columns.map((x) => `  ${inColumns(x)}{ latent[li + ${x * WG}u] = select(0.0, sum${x} / l, l > 0.0); }`).join('\n')}
  workgroupBarrier();
  let head = row % ${heads}u;
  for (var d = li; d < ${dv}u; d += ${WG}u) {
    var sum = 0.0;
    for (var col = 0u; col < ${r}u; col++) {
      sum += latent[col] * f32(wuv[(head * ${r}u + col) * ${dv}u + d]);
    }
    o[(b * p.rows + row) * ${dv}u + d] = ${T}(sum);
  }
}
`;
}

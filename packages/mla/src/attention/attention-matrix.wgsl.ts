/**
 * The absorbed MLA attention on tensor cores (subgroup matrices, f16 operands, f32 accumulation).
 * As in the row kernel, a workgroup owns (sequence, block of packed head×query rows, split of the
 * keys), so the latent cache is read once per row block; here the rows×keys score tile
 * `S = [q_latent | q_pe]·[c_kv | k_pe]ᵀ` and the update `P·c_kv` are matrix multiplies (40 heads
 * pad to 48 rows, three 16-row fragments). Where each subgroup computes one score fragment per tile
 * (`holdQuery`), it holds that fragment's query rows in registers, staged once from the unpadded
 * queries through the key tile's array; otherwise the queries are read as fragments straight from
 * storage in every tile, padded beforehand to whole row blocks per sequence so that no fragment
 * reads past its sequence. Each key tile is staged once in workgroup memory, zeroed past the keys
 * the block may see.
 *
 * The accumulator fragments are opaque, so rows cannot be rescaled where they sit. The running max
 * is lazy instead: a row's max moves only when a tile's max exceeds it by more than
 * {@link MLA_LAZY_RESCALE} (so p = exp(s − m) stays below e^8 and fits f16), and only then do the
 * accumulators round-trip through workgroup memory to be rescaled — in practice on the first tile
 * or two. Every split writes its unnormalised accumulator and (max, sum) for the combine kernel.
 */
import {
  computeAttributesWgsl,
  enables,
  paramsStruct,
  rowVectorType,
  shuffleFoldWgsl,
  storeVec4Wgsl,
  storeVectorsWgsl,
  storeWideWgsl,
  subgroupMatrixTypes,
  unrolledStagingWgsl,
  WORKGROUP_INDEX_WGSL,
} from '@webattn/core';
import { MLA_ATTENTION_PARAMS, type MlaKeySource } from './attention.wgsl.js';

/** Natural-log distance a row's max may fall behind before its accumulator is rescaled. */
export const MLA_LAZY_RESCALE = 8;

/** Generation parameters of the tensor-core attention kernel (fragments are 16x16x16). */
export interface MlaMatrixKernelConfig {
  heads: number;
  /** Latent rank, a multiple of `16 · subgroups`. */
  r: number;
  /** Rope dims, a multiple of 16. */
  dr: number;
  /** Packed rows per workgroup, a multiple of 16. */
  rows: number;
  /** Keys per staged tile, a multiple of 16. */
  keyTile: number;
  /** Subgroups per workgroup; each owns `r / subgroups` accumulator columns. */
  subgroups: number;
  /** Subgroup size the kernel is built for. */
  subgroupSize: number;
  /** Pin the subgroup size with `@subgroup_size`. */
  pinSubgroupSize: boolean;
  source: MlaKeySource;
  /** Whether the keys are read 16 bytes per load (bound as `vec4<u32>`, eight f16 each), not 8. */
  wideLoads?: boolean;
  /**
   * Whether each subgroup holds its score task's query fragments in registers for the whole key
   * loop, rather than reading them from storage in every tile. Needs at most one score task per
   * subgroup (`rows / 16 · keyTile / 16 <= subgroups`); see {@link mlaMatrixHoldsQuery}.
   */
  holdQuery?: boolean;
  /**
   * Whether the key tile's array holds `vec4<f16>` (subgroup-matrix loads count its offsets and
   * strides in vectors), so that each loaded vector is stored whole: one or two stores per load
   * where f16 elements take four or eight.
   */
  vectorStaging?: boolean;
}

const F = 16;

function strides(c: MlaMatrixKernelConfig) {
  return { k: c.r + c.dr + 8, s: c.keyTile + 4, p: c.keyTile + 8 };
}

/**
 * f32 entries of the scores' array, which also holds each subgroup's accumulator fragment while it
 * is rescaled (the scores are dead by then: the softmax has read them). Sharing it takes the
 * MiniCPM3 decode from 37.6 to 30.8 KiB of workgroup memory (core's workgroup-memory-steps.ts);
 * on the H200 its time did not move (2026-12-01).
 */
function scoreElements(c: MlaMatrixKernelConfig): number {
  return Math.max(c.rows * strides(c).s, c.subgroups * F * F);
}

/** Workgroup bytes of the tensor-core kernel. */
export function mlaMatrixSharedBytes(c: MlaMatrixKernelConfig): number {
  const st = strides(c);
  return c.keyTile * st.k * 2 + scoreElements(c) * 4 + c.rows * st.p * 2 + 12 * c.rows + 16;
}

/** Why a config cannot use the tensor-core kernel, or undefined. */
export function mlaMatrixUnsupported(c: MlaMatrixKernelConfig): string | undefined {
  if (c.r % (F * c.subgroups) !== 0) return `r = ${c.r} is not a multiple of 16 · ${c.subgroups} subgroups`;
  if (c.dr % F !== 0 || c.dr === 0) return `dr = ${c.dr} is not a positive multiple of 16`;
  if (c.rows % F !== 0) return `rows = ${c.rows} is not a multiple of 16`;
  if (c.keyTile % F !== 0) return `keyTile = ${c.keyTile} is not a multiple of 16`;
  const threads = c.subgroups * c.subgroupSize;
  if (c.rows > threads) return `${c.rows} rows exceed the ${threads} invocations of the softmax step`;
  return undefined;
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/**
 * Whether a config holds the queries in registers: asked for, and every subgroup has at most one
 * score fragment per tile to compute, so the fragments it holds are one row block's.
 */
export function mlaMatrixHoldsQuery(c: MlaMatrixKernelConfig): boolean {
  return c.holdQuery === true && (c.rows / F) * (c.keyTile / F) <= c.subgroups;
}

/**
 * Invocations per softmax row: the largest power of two, at most the key tile, for which every row
 * of the block has that many (at least one).
 */
export function softmaxLanes(
  c: Pick<MlaMatrixKernelConfig, 'rows' | 'keyTile' | 'subgroups' | 'subgroupSize'>,
): number {
  const threads = c.subgroups * c.subgroupSize;
  let lanes = 1;
  while (lanes * 2 <= c.keyTile && lanes * 2 <= Math.min(c.subgroupSize, 32) && c.rows * lanes * 2 <= threads)
    lanes *= 2;
  return lanes;
}

/** WGSL of the tensor-core attention kernel (f16 storage; partials in f32 with padded rows). */
export function mlaAttentionMatrixWgsl(c: MlaMatrixKernelConfig): string {
  const why = mlaMatrixUnsupported(c);
  if (why) throw new Error(`mlaAttentionMatrixWgsl: ${why}`);
  const { r, dr, heads, rows: ROWS, keyTile: KT, subgroups: SG } = c;
  const dk = r + dr;
  const st = strides(c);
  const RF = ROWS / F;
  const KF = KT / F;
  const cols = r / SG;
  const NF = cols / F;
  const THREADS = SG * c.subgroupSize;
  const { left, right, result } = subgroupMatrixTypes({ M: F, N: F, K: F });
  const acc = range(RF).map((rf) => range(NF).map((nf) => `acc${rf}_${nf}`));
  // Keys are read four f16 at a time, or eight with 16-byte loads (dk, r and dr are multiples of
  // 16): `loadKey4(b, j, c4)` is columns per·c4 .. per·c4 + per - 1 of key j.
  const per = c.wideLoads ? 8 : 4;
  const word = rowVectorType(c.wideLoads);
  const loadKey =
    c.source === 'paged'
      ? `fn loadKey4(b: u32, j: u32, c4: u32) -> ${word} {
  let page = table[b * p.maxPages + j / p.slots];
  return cache[(page * p.slots + j % p.slots) * ${dk / per}u + c4];
}`
      : `fn loadKey4(b: u32, j: u32, c4: u32) -> ${word} {
  if (c4 >= ${r / per}u) { return kpe[(b * p.slots + j) * ${dr / per}u + c4 - ${r / per}u]; }
  return ckv[(b * p.slots + j) * ${r / per}u + c4];
}`;
  // Held queries are read from their unpadded rows: columns per·c4 .. per·c4 + per - 1 of a row.
  const loadQuery = `fn loadQuery4(b: u32, row: u32, c4: u32) -> ${word} {
  if (c4 >= ${r / per}u) { return qpe[(b * p.rows + row) * ${dr / per}u + c4 - ${r / per}u]; }
  return ql[(b * p.rows + row) * ${r / per}u + c4];
}`;
  const sourceBindings =
    c.source === 'paged'
      ? `@group(0) @binding(2) var<storage, read> cache: array<${word}>;
@group(0) @binding(3) var<storage, read> table: array<u32>;`
      : `@group(0) @binding(2) var<storage, read> ckv: array<${word}>;
@group(0) @binding(3) var<storage, read> kpe: array<${word}>;`;
  // A staged row of Ks holds dk / per loaded vectors; element e of a staging is vector e % that
  // of row e / that. The key tiles and the held queries are both staged there.
  const rowVectors = dk / per;
  // Ks's entries: f16, or vectors of four (`ks` divides offsets and strides into it by 4).
  const unit = c.vectorStaging ? 4 : 1;
  const ks = (elements: number) => elements / unit;
  const storeToKs = (k: number) => {
    const stores = c.vectorStaging
      ? storeVectorsWgsl('Ks', 'at', `v${k}`, c.wideLoads)
      : (c.wideLoads ? storeWideWgsl : storeVec4Wgsl)('Ks', 'at', `v${k}`);
    return `      let at = (e${k} / ${rowVectors}u) * ${ks(st.k)}u + (e${k} % ${rowVectors}u) * ${ks(per)}u;
      ${stores}`;
  };
  // The key tile's staging, unrolled: every invocation issues all its loads before its first store,
  // so the tile waits out the memory latency once rather than once per element (a loop of
  // load-then-store over 32 x 288 scalars, each behind a page-table read, took ~100 µs per tile).
  const staging = unrolledStagingWgsl(
    KT * rowVectors,
    THREADS,
    (k, inRange) => `    var v${k} = ${word}();
    if (${inRange}t0 + e${k} / ${rowVectors}u < kEnd) { v${k} = loadKey4(b, t0 + e${k} / ${rowVectors}u, e${k} % ${rowVectors}u); }`,
    storeToKs,
  );
  // Lanes per softmax row: the most (a power of two, at most the key tile) that every row can have.
  const lanes = softmaxLanes(c);
  const perLane = KT / lanes;
  const fold = (v: string, op: (a: string, b: string) => string) => shuffleFoldWgsl(v, lanes, op);
  const softmax = `    {
      let row = min(li / ${lanes}u, ${ROWS - 1}u);
      let part = li % ${lanes}u;
      let writes = li / ${lanes}u < ${ROWS}u;
      let visible = visibleKeys(len, rowLo + row);
      var x: array<f32, ${perLane}>;
      var tmax = NEG;
      for (var j = 0u; j < ${perLane}u; j++) {
        let key = part * ${perLane}u + ((j + row) % ${perLane}u);
        x[j] = select(NEG, Ss[row * ${st.s}u + key] * p.scale, t0 + key < visible);
        tmax = max(tmax, x[j]);
      }
      ${fold('tmax', (a, b) => `max(${a}, ${b})`)}
      let mOld = mrow[row];
      var m = mOld;
      var alpha = 1.0;
      if (tmax > mOld + ${MLA_LAZY_RESCALE.toFixed(1)}) {
        m = tmax;
        alpha = exp(mOld - m);
        if (writes && lrow[row] > 0.0) { wflag[0] = 1u; }
      }
      var sum = 0.0;
      for (var j = 0u; j < ${perLane}u; j++) {
        let key = part * ${perLane}u + ((j + row) % ${perLane}u);
        let pr = select(0.0, exp(x[j] - m), x[j] > NEG);
        if (writes) { Ps[row * ${st.p}u + key] = f16(pr); }
        sum += pr;
      }
      ${fold('sum', (a, b) => `${a} + ${b}`)}
      // Every lane of the row has read mrow and lrow before the barrier-free update below: the
      // reads above come first in each lane, and only part 0 writes, after its own shuffles.
      workgroupBarrier();
      if (writes && part == 0u) {
        arow[row] = alpha;
        lrow[row] = lrow[row] * alpha + sum;
        mrow[row] = m;
      }
    }`;
  const rescale = acc
    .flatMap((frags, rf) =>
      frags.map(
        (f) => `      subgroupMatrixStore<row_major>(&Ss, sg * ${F * F}u, ${f}, ${F}u);
      workgroupBarrier();
      for (var e = lane; e < ${F * F}u; e += ${c.subgroupSize}u) { Ss[sg * ${F * F}u + e] *= arow[${rf * F}u + e / ${F}u]; }
      workgroupBarrier();
      ${f} = subgroupMatrixLoad<${result}, row_major>(&Ss, sg * ${F * F}u, ${F}u);
      workgroupBarrier();`,
      ),
    )
    .join('\n');
  const products = range(KF)
    .map(
      (kc) => `    {
${range(RF)
  .map(
    (rf) =>
      `      let pf${rf} = subgroupMatrixLoad<${left}, row_major>(&Ps, ${rf * F * st.p + kc * F}u, ${st.p}u);`,
  )
  .join('\n')}
${range(NF)
  .map(
    (
      nf,
    ) => `      { let vf = subgroupMatrixLoad<${right}, row_major>(&Ks, ${ks(kc * F * st.k)}u + sg * ${ks(cols)}u + ${ks(nf * F)}u, ${ks(st.k)}u);
${range(RF)
  .map((rf) => `        ${acc[rf]![nf]} = subgroupMatrixMultiplyAccumulate(pf${rf}, vf, ${acc[rf]![nf]});`)
  .join('\n')}
      }`,
  )
  .join('\n')}
    }`,
    )
    .join('\n');
  // S = Q·Kᵀ, one 16x16 fragment per task, tasks dealt over the subgroups; each task sums the
  // latent and the rope parts in one accumulator. Held queries: the subgroup's one task reads the
  // fragments it loaded before the key loop.
  const latentSteps = r / F;
  const querySteps = range(latentSteps + dr / F);
  const holdQuery = mlaMatrixHoldsQuery(c);
  // Held queries are staged from their unpadded rows through the key tile's array, KT rows at a
  // time (rows past the sequence's as zeros), and each subgroup loads its row block's fragments
  // from there once, before the key loop.
  const queryPhases = range(Math.ceil(ROWS / KT));
  const queryStaging = (phase: number) => {
    const phaseRows = Math.min(KT, ROWS - phase * KT);
    return unrolledStagingWgsl(
      phaseRows * rowVectors,
      THREADS,
      (k, inRange) => `    var v${k} = ${word}();
    let row${k} = rowLo + ${phase * KT}u + e${k} / ${rowVectors}u;
    if (${inRange}row${k} < p.rows) { v${k} = loadQuery4(b, row${k}, e${k} % ${rowVectors}u); }`,
      storeToKs,
    );
  };
  const heldQuery = holdQuery
    ? `  // This subgroup's score task, the same in every tile, and its query fragments.
  let task = min(sg, ${RF * KF - 1}u);
  let rf = task / ${KF}u;
${querySteps.map((kk) => `  var qf${kk} = ${left}();`).join('\n')}
${queryPhases
  .map(
    (phase) => `  {
    workgroupBarrier();
${queryStaging(phase)}
    workgroupBarrier();
    if (rf >= ${(phase * KT) / F}u && rf < ${((phase + 1) * KT) / F}u) {
      let at = (rf * ${F}u - ${phase * KT}u) * ${ks(st.k)}u;
${querySteps.map((kk) => `      qf${kk} = subgroupMatrixLoad<${left}, row_major>(&Ks, at + ${ks(kk * F)}u, ${ks(st.k)}u);`).join('\n')}
    }
  }`,
  )
  .join('\n')}`
    : '';
  const scores = holdQuery
    ? `    // S = Q·Kᵀ, one 16x16 fragment per subgroup.
    if (sg < ${RF * KF}u) {
      let kf = task % ${KF}u;
      var s = ${result}();
${querySteps
  .map(
    (kk) =>
      `      s = subgroupMatrixMultiplyAccumulate(qf${kk}, subgroupMatrixLoad<${right}, col_major>(&Ks, kf * ${ks(F * st.k)}u + ${ks(kk * F)}u, ${ks(st.k)}u), s);`,
  )
  .join('\n')}
      subgroupMatrixStore<row_major>(&Ss, rf * ${F * st.s}u + kf * ${F}u, s, ${st.s}u);
    }`
    : `    // S = Q·Kᵀ, one 16x16 fragment per task, tasks dealt over the subgroups.
    for (var t = sg; t < ${RF * KF}u; t += ${SG}u) {
      let rf = t / ${KF}u;
      let kf = t % ${KF}u;
      var s = ${result}();
      for (var kk = 0u; kk < ${r / F}u; kk++) {
        let qf = subgroupMatrixLoad<${left}, row_major>(&ql, (qRow0 + rf * ${F}u) * ${r}u + kk * ${F}u, ${r}u);
        let kfr = subgroupMatrixLoad<${right}, col_major>(&Ks, kf * ${ks(F * st.k)}u + kk * ${ks(F)}u, ${ks(st.k)}u);
        s = subgroupMatrixMultiplyAccumulate(qf, kfr, s);
      }
      for (var kk = 0u; kk < ${dr / F}u; kk++) {
        let qf = subgroupMatrixLoad<${left}, row_major>(&qpe, (qRow0 + rf * ${F}u) * ${dr}u + kk * ${F}u, ${dr}u);
        let kfr = subgroupMatrixLoad<${right}, col_major>(&Ks, kf * ${ks(F * st.k)}u + ${ks(r)}u + kk * ${ks(F)}u, ${ks(st.k)}u);
        s = subgroupMatrixMultiplyAccumulate(qf, kfr, s);
      }
      subgroupMatrixStore<row_major>(&Ss, rf * ${F * st.s}u + kf * ${F}u, s, ${st.s}u);
    }`;
  const stores = acc
    .flatMap((frags, rf) =>
      frags.map(
        (f, nf) =>
          `  subgroupMatrixStore<row_major>(&part, (base + rowLo + ${rf * F}u) * ${r}u + colBase + ${nf * F}u, ${f}, ${r}u);`,
      ),
    )
    .join('\n');
  return `${enables({ subgroupMatrix: true, subgroupSizeControl: c.pinSubgroupSize })}
${paramsStruct(MLA_ATTENTION_PARAMS)}
@group(0) @binding(0) var<storage, read> ql: array<${holdQuery ? word : 'f16'}>;
@group(0) @binding(1) var<storage, read> qpe: array<${holdQuery ? word : 'f16'}>;
${sourceBindings}
@group(0) @binding(4) var<storage, read> lengths: array<u32>;
@group(0) @binding(5) var<storage, read_write> part: array<f32>;
@group(0) @binding(6) var<storage, read_write> stats: array<f32>;
@group(0) @binding(7) var<uniform> p: Params;

const NEG = -3.0e38;

var<workgroup> Ks: array<${c.vectorStaging ? 'vec4<f16>' : 'f16'}, ${ks(KT * st.k)}>;
// The tile's scores; while a rescale runs, each subgroup's accumulator fragment in turn.
var<workgroup> Ss: array<f32, ${scoreElements(c)}>;
var<workgroup> Ps: array<f16, ${ROWS * st.p}>;
var<workgroup> mrow: array<f32, ${ROWS}>;
var<workgroup> lrow: array<f32, ${ROWS}>;
var<workgroup> arow: array<f32, ${ROWS}>;
// A flag in a whole 16-byte unit, like every workgroup array here (see core's workgroup-alignment.ts).
var<workgroup> wflag: array<u32, 4>;

${WORKGROUP_INDEX_WGSL}

${loadKey}
${holdQuery ? loadQuery : ''}

fn visibleKeys(len: u32, row: u32) -> u32 {
  if (row >= p.rows) { return 0u; }
  let pos = i32(len) - i32(p.nq) + i32(row / ${heads}u);
  return u32(clamp(pos + 1, 0, i32(len)));
}

${computeAttributesWgsl(THREADS, c)}
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) li: u32, @builtin(subgroup_id) sgid: u32,
        @builtin(subgroup_invocation_id) lane: u32) {
  let wg = workgroupIndex(wid, nwg);
  if (wg >= p.batch * p.rowBlocks * p.splits) { return; }
  let split = wg % p.splits;
  let rb = (wg / p.splits) % p.rowBlocks;
  let b = wg / (p.splits * p.rowBlocks);
  // Wider workgroups than built for (narrower subgroups) repeat the last subgroup's work.
  let sg = min(sgid, ${SG - 1}u);
  let colBase = sg * ${cols}u;
  if (li == 0u) { wflag[0] = 0u; }
  // Read-only storage at a uniform address is uniform; workgroupUniformLoad right after a store
  // has read stale values on the H200's driver, so it is only used after a full barrier.
  let len = lengths[b];
  let rowLo = rb * ${ROWS}u;
  let lastRow = min(rowLo + ${ROWS}u, p.rows) - 1u;
  let kStart = split * p.keysPerSplit;
  let kEnd = min(kStart + p.keysPerSplit, visibleKeys(len, lastRow));
  for (var e = li; e < ${ROWS}u; e += ${THREADS}u) {
    mrow[e] = NEG;
    lrow[e] = 0.0;
  }
${acc
  .flat()
  .map((f) => `  var ${f} = ${result}();`)
  .join('\n')}
${
  holdQuery
    ? heldQuery
    : `  // The queries come padded to whole row blocks per sequence (see mlaPadRowsWgsl).
  let qRow0 = b * p.rowBlocks * ${ROWS}u + rowLo;`
}

  for (var t0 = kStart; t0 < kEnd; t0 += ${KT}u) {
    workgroupBarrier();
${staging}
    workgroupBarrier();
${scores}
    workgroupBarrier();
    // Softmax statistics with a lazy max; invisible keys are selected to probability 0. LANES
    // neighbouring invocations share a row, each taking KT / LANES of its keys (starting at an
    // offset given by the row, so that a subgroup's lanes read different banks), and combine with
    // shuffles; every lane of a row reaches the same max. Invocations past the rows take part in
    // the shuffles on the last row and write nothing.
${softmax}
    // A full barrier first: workgroupUniformLoad right after the stores has read stale values on
    // the H200's driver.
    workgroupBarrier();
    let rescale = workgroupUniformLoad(&wflag[0]);
    if (rescale != 0u) {
${rescale}
      if (li == 0u) { wflag[0] = 0u; }
    }
    // acc += P·V over this subgroup's latent columns.
${products}
  }
  workgroupBarrier();
  let base = (b * p.splits + split) * p.rowBlocks * ${ROWS}u;
${stores}
  for (var row = li; row < ${ROWS}u; row += ${THREADS}u) {
    stats[(base + rowLo + row) * 2u] = mrow[row];
    stats[(base + rowLo + row) * 2u + 1u] = lrow[row];
  }
}
`;
}

/** Uniform parameters of the row padding. */
export const MLA_PAD_PARAMS = [
  ['batch', 'u32'],
  ['rows', 'u32'],
  ['padded', 'u32'],
] as const;

/**
 * Copies `[b, rows, width]` into `[b, padded, width]` with zero rows after each sequence's own, so
 * that the tensor-core kernel's 16-row query fragments never read past a sequence (or the buffer).
 */
export function mlaPadRowsWgsl(c: { width: number }): string {
  return `enable f16;
${paramsStruct(MLA_PAD_PARAMS)}
@group(0) @binding(0) var<storage, read> x: array<f16>;
@group(0) @binding(1) var<storage, read_write> y: array<f16>;
@group(0) @binding(2) var<uniform> p: Params;

${WORKGROUP_INDEX_WGSL}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let id = workgroupIndex(wid, nwg) * 256u + li;
  if (id >= p.batch * p.padded * ${c.width}u) { return; }
  let col = id % ${c.width}u;
  let row = (id / ${c.width}u) % p.padded;
  let b = id / (${c.width}u * p.padded);
  var v = f16(0.0);
  if (row < p.rows) { v = x[(b * p.rows + row) * ${c.width}u + col]; }
  y[id] = v;
}
`;
}

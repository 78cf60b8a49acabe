/** WGSL every flash-attention kernel shares: parameters, the sequence table, the mask. */
import type { ParamLayout } from '../params.js';
import {
  type PrefetchedStaging,
  prefetchedStagingSetsWgsl,
  rowVectorType,
  type StagingSet,
  storeVec4Wgsl,
  storeVectorsWgsl,
  storeWideWgsl,
  unrolledStagingSetsWgsl,
} from '../wgsl.js';

/** Uniform parameters of the flash kernels. */
export const FLASH_PARAMS: ParamLayout = [
  ['hq', 'u32'],
  ['hkv', 'u32'],
  /** Query heads per KV head. */
  ['group', 'u32'],
  ['scale', 'f32'],
  /** Window edges around the aligned diagonal; -1 = unbounded. */
  ['left', 'i32'],
  ['right', 'i32'],
  /** Entries in the tile table. */
  ['tiles', 'u32'],
  ['lseHeadStride', 'u32'],
  /** Where the tile table starts in the meta buffer (after the sequence table). */
  ['tileBase', 'u32'],
  /** Where delta starts in the backward's stats buffer (after its copy of lse). */
  ['statsDelta', 'u32'],
  /** -inf, supplied at run time: a constant -inf does not compile. */
  ['negInf', 'f32'],
  /** Key j stands for tokens [j·keyStride, j·keyStride + keySize); both 1 for plain keys. */
  ['keyStride', 'i32'],
  ['keySize', 'i32'],
  /**
   * Split-KV forward (split-kv.ts): the parts each query tile's keys are cut into, keys per part,
   * and the distance between parts' outputs in query tokens and in lse entries. 1, 0, 0, 0 for
   * every launch that does not split.
   */
  ['splits', 'u32'],
  ['splitKeys', 'i32'],
  ['splitRows', 'u32'],
  ['lseSplit', 'u32'],
];

/**
 * Sequence and tile lookups in the meta buffer (the sequence table, then the tile table), and the mask test for (query row, key) within it. */
export const SEQUENCE_WGSL = `struct Span { qStart: u32, qLen: u32, kStart: u32, kLen: u32, lseBase: u32 }

fn span(s: u32) -> Span {
  let o = s * 5u;
  return Span(launch[o], launch[o + 1u], launch[o + 2u], launch[o + 3u], launch[o + 4u]);
}

// Tile t of the launch: its sequence's span and its first row.
fn tileSpan(t: u32) -> Span {
  return span(launch[p.tileBase + 2u * t]);
}

fn tileFirst(t: u32) -> i32 {
  return i32(launch[p.tileBase + 2u * t + 1u]);
}

// Key blocks (NSA's compressed keys) are masked by their last token; plain keys are tokens.
fn blockKeys() -> bool {
  return p.keyStride != 1 || p.keySize != 1;
}

// The token position of query row 0: plain keys align the queries to the end of the keys
// (bottom-right); key blocks put them at the start of their sequence.
fn queryOffset(sp: Span) -> i32 {
  return select(i32(sp.kLen) - i32(sp.qLen), 0, blockKeys());
}

fn diagonal(sp: Span, i: i32) -> i32 {
  return i + queryOffset(sp);
}

// The token position key j is masked by: its last token.
fn keyPosition(j: i32) -> i32 {
  return j * p.keyStride + p.keySize - 1;
}

// Floor of a / b for b > 0, negative a included.
fn floorDiv(a: i32, b: i32) -> i32 {
  return select((a - b + 1) / b, a / b, a >= 0);
}

fn visible(sp: Span, i: i32, j: i32) -> bool {
  let dgn = diagonal(sp, i);
  let at = keyPosition(j);
  return (p.left < 0 || at >= dgn - p.left) && (p.right < 0 || at <= dgn + p.right);
}

// Whether every query row of [qFirst, qLast] sees every key of [kFirst, kLast], so that a tile can
// skip the mask test: the left edge is nearest for the last row's first key, the right edge for the
// first row's last key.
fn blockVisible(sp: Span, qFirst: i32, qLast: i32, kFirst: i32, kLast: i32) -> bool {
  return (p.right < 0 || keyPosition(kLast) <= diagonal(sp, qFirst) + p.right) && (p.left < 0 || keyPosition(kFirst) >= diagonal(sp, qLast) - p.left);
}

// Keys [lo, hi) any of the query rows [first, last] can see.
fn keyRange(sp: Span, first: i32, last: i32) -> vec2<i32> {
  var lo = 0;
  var hi = i32(sp.kLen);
  // Key j is seen from the left edge on when keyPosition(j) >= edge, up to the right edge likewise.
  if (p.left >= 0) { lo = max(lo, floorDiv(diagonal(sp, first) - p.left - p.keySize + 1 + p.keyStride - 1, p.keyStride)); }
  if (p.right >= 0) { hi = min(hi, floorDiv(diagonal(sp, last) + p.right - p.keySize + 1, p.keyStride) + 1); }
  return vec2<i32>(lo, max(lo, hi));
}

// One part of a key range, for a forward split over the keys: p.splitKeys keys from the range's
// start on, empty past its end; the whole range when the launch does not split.
fn splitRange(range: vec2<i32>, split: u32) -> vec2<i32> {
  if (p.splits == 1u) { return range; }
  let lo = min(range.x + i32(split) * p.splitKeys, range.y);
  return vec2<i32>(lo, min(range.y, lo + p.splitKeys));
}

// Query rows [lo, hi) that can see any of the keys [first, last].
fn queryRange(sp: Span, first: i32, last: i32) -> vec2<i32> {
  let off = queryOffset(sp);
  var lo = 0;
  var hi = i32(sp.qLen);
  if (p.right >= 0) { lo = max(lo, keyPosition(first) - off - p.right); }
  if (p.left >= 0) { hi = min(hi, keyPosition(last) - off + p.left + 1); }
  return vec2<i32>(lo, max(lo, hi));
}`;

/**
 * WGSL of `lseIndex(t, h, hq, headStride)`: where the lse of query token t (counted over the call's
 * packed queries) and head h sits, in a dense `[b, hq, n]` layout (headStride n) or a packed
 * `[hq, totalQ]` one (headStride totalQ): `(t / S)·hq·S + h·S + t mod S`.
 */
export const LSE_INDEX_WGSL = `fn lseIndex(t: u32, h: u32, hq: u32, headStride: u32) -> u32 {
  return (t / headStride) * hq * headStride + h * headStride + t % headStride;
}`;

/**
 * The score of a masked key. Finite on purpose: WGSL lets implementations assume no infinities in
 * arithmetic, so -inf only ever passes through (the lse of a row with no key, from `p.negInf`).
 */
export const MASKED = '-3.0e38';

/** Where a staging loop reads: rows of one head of a token-major tensor `[tokens, heads, width]`. */
export interface StagedRows {
  /** Workgroup array written, row-major `[rows][width]`. */
  dest: string;
  /** Storage array read. */
  src: string;
  rows: string;
  width: string;
  /** Token index of row 0 of the sequence. */
  tokenStart: string;
  heads: string;
  head: string;
  /** First row staged (an i32 expression) and the end of the valid rows: rows from there are zeros. */
  first: string;
  end: string;
  /** Invocations sharing the loop. */
  threads: string;
  /** Type written to `dest`. */
  type: 'f32' | 'f16';
}

/** What {@link stageRowsVec4Wgsl} stages: sizes known when the kernel is generated. */
export interface StagedRowsVec4 extends Omit<StagedRows, 'type' | 'rows' | 'width' | 'threads'> {
  rows: number;
  /** Elements per row, a multiple of 4. */
  width: number;
  threads: number;
  /** Row stride in `dest`, elements, a multiple of 4: the width unless rows are padded against bank conflicts. */
  destStride?: number;
  /** Element of `dest` the first row starts at (0 by default), a multiple of 4. */
  destOffset?: number;
  /**
   * Whether `src` is bound as `array<vec4<u32>>`, eight f16 per 16-byte load, where `width` and
   * `destOffset` are multiples of 8; as `array<vec4<f16>>`, four per load, by default.
   */
  wide?: boolean;
  /**
   * Whether `dest` is an `array<vec4<f16>>` (subgroup-matrix loads read such arrays, offsets and
   * strides counting vectors), each loaded vector stored whole; `destStride` and `destOffset`
   * still count f16.
   */
  vectorDest?: boolean;
}

/**
 * The same staging from a `vec4<f16>` view of the tensor into a scalar f16 array, four elements
 * per load, for the tensor-core kernels, as one set of an unrolled staging step: staged together
 * with other sets (see {@link unrolledStagingSetsWgsl}), all their loads wait out one latency.
 * `index` names the set's indices (and prefixes its values) where several sets share a step.
 */
export function stageRowsVec4Set(o: StagedRowsVec4, index = 'e'): StagingSet {
  const { count, vector, value, load, store } = rowsVec4Steps(o, index);
  return {
    count,
    index,
    load: (k, inRange, declare = true) => load(k, inRange, declare),
    store,
    declare: (k) => `var ${value(k)}: ${vector};`,
  };
}

/**
 * The loads (`count` of them) and stores of {@link stageRowsVec4Set}; `declare` puts `var` before
 * each loaded value.
 */
function rowsVec4Steps(o: StagedRowsVec4, index: string) {
  const perLoad = o.wide ? 8 : 4;
  const w4 = o.width / perLoad;
  const vector = rowVectorType(o.wide);
  const stride = o.destStride ?? o.width;
  const row = (k: number) => `${o.first} + i32(${index}${k} / ${w4}u)`;
  const value = (k: number) => `${index}x${k}`;
  return {
    count: o.rows * w4,
    vector,
    value,
    load: (
      k: number,
      inRange: string,
      declare: boolean,
    ) => `    ${declare ? 'var ' : ''}${value(k)} = ${vector}();
    if (${inRange}${row(k)} < ${o.end}) {
      ${value(k)} = ${o.src}[((${o.tokenStart} + u32(${row(k)})) * ${o.heads} + ${o.head}) * ${w4}u + ${index}${k} % ${w4}u];
    }`,
    store: (k: number) => {
      // Vector destinations count vectors of four f16.
      const unit = o.vectorDest ? 4 : 1;
      const at = `${o.destOffset ? `${o.destOffset / unit}u + ` : ''}(${index}${k} / ${w4}u) * ${stride / unit}u + ${perLoad / unit}u * (${index}${k} % ${w4}u)`;
      const stores = o.vectorDest
        ? storeVectorsWgsl(o.dest, 'at', value(k), o.wide)
        : o.wide
          ? storeWideWgsl(o.dest, 'at', value(k))
          : storeVec4Wgsl(o.dest, 'at', value(k));
      return `      let at = ${at};\n      ${stores}`;
    },
  };
}

/**
 * {@link stageRowsVec4Set} split for a tile prefetched while the previous one is computed (see
 * {@link prefetchedStagingSetsWgsl}): the values are declared once, the loads issued a tile ahead
 * (with `first` naming the tile they are for), the stores made when the tile's turn comes.
 */
export function stageRowsVec4Prefetched(o: StagedRowsVec4): PrefetchedStaging {
  return prefetchedStagingSetsWgsl(o.threads, [stageRowsVec4Set(o, 'e')]);
}

/**
 * {@link stageRowsVec4Set} as a staging step of its own. Unrolled, with every load issued before
 * the first store: a loop would wait out the memory latency once per iteration instead of once per
 * tile.
 */
export function stageRowsVec4Wgsl(o: StagedRowsVec4): string {
  return unrolledStagingSetsWgsl(o.threads, [stageRowsVec4Set(o)]);
}

/**
 * WGSL that stages rows through one workgroup array a turn at a time, the subgroups of each turn
 * loading from it the fragments they hold: the fragments declared (zero) first, then per turn its
 * `staging` (a statement), a barrier and, under `when` (subgroup-uniform), every fragment's `load`,
 * with a barrier before the next turn's staging overwrites the array. The caller's next barrier
 * must come before anything else overwrites it after the last turn.
 */
export function heldInTurnsWgsl(
  held: readonly { name: string; load: string }[],
  type: string,
  turns: readonly { staging: string; when: string }[],
): string {
  return `${held.map(({ name }) => `  var ${name} = ${type}();`).join('\n')}
${turns
  .map(
    ({ staging, when }) => `  ${staging}
  workgroupBarrier();
  if (${when}) {
${held.map(({ name, load }) => `    ${name} = ${load};`).join('\n')}
  }`,
  )
  .join('\n  workgroupBarrier();\n')}`;
}

/** WGSL of a cooperative loop (over `li`) that stages rows into workgroup memory, zero-padded. */
export function stageRowsWgsl(o: StagedRows): string {
  return `for (var e = li; e < ${o.rows} * ${o.width}; e += ${o.threads}) {
    let r = ${o.first} + i32(e / ${o.width});
    var x = ${o.type}(0.0);
    if (r < ${o.end}) { x = ${o.type}(${o.src}[((${o.tokenStart} + u32(r)) * ${o.heads} + ${o.head}) * ${o.width} + e % ${o.width}]); }
    ${o.dest}[e] = x;
  }`;
}

/** Staging of key rows (`K` or `V`) of KV head `hk` for the tile starting at `k0`. */
export function stageKeyTileWgsl(dest: string, src: 'k' | 'v', threads: string, type: 'f32' | 'f16'): string {
  return stageRowsWgsl({
    dest,
    src,
    rows: 'TILE',
    width: src === 'k' ? 'D' : 'DV',
    tokenStart: 'sp.kStart',
    heads: 'p.hkv',
    head: 'hk',
    first: 'k0',
    end: 'range.y',
    threads,
    type,
  });
}

/**
 * The start of a kernel over (query tile, query head) work items: returns past the launch, then
 * defines the head `h`, its KV head `hk`, the sequence span `sp` and the tile's rows `first..last`.
 * A forward kernel (`splits`) runs `p.splits` parts of each work item's keys, the slowest index,
 * and defines the part, `split`, too.
 */
export function queryTileWgsl(rows: string, splits = false): string {
  const items = 'p.tiles * p.hq';
  const head = splits
    ? `  let wAll = workgroupIndex(wid, nwg);
  if (wAll >= ${items} * p.splits) { return; }
  let split = wAll / (${items});
  let w = wAll % (${items});`
    : `  let w = workgroupIndex(wid, nwg);
  if (w >= ${items}) { return; }`;
  return `${head}
  let t = w / p.hq;
  let h = w % p.hq;
  let hk = h / p.group;
  let sp = tileSpan(t);
  let first = tileFirst(t);
  let last = min(first + i32(${rows}), i32(sp.qLen)) - 1;`;
}

/**
 * The start of a kernel over (key tile, KV head) work items (the dK/dV passes): returns past the
 * launch, then defines the tile `t`, its KV head `hk`, the sequence span `sp` and the tile's key
 * rows `first..last`.
 */
export function keyTileWgsl(rows: string): string {
  return `  let w = workgroupIndex(wid, nwg);
  if (w >= p.tiles * p.hkv) { return; }
  let t = w / p.hkv;
  let hk = w % p.hkv;
  let sp = tileSpan(t);
  let first = tileFirst(t);
  let last = min(first + i32(${rows}), i32(sp.kLen)) - 1;`;
}

/**
 * The inputs every backward pass (dQ, dK/dV; row and tensor-core) binds first: q, k, v and dO as
 * `element` arrays, the stats buffer (lse, then delta) and the launch table, with a lookup of one
 * query row's lse (x) and delta (y).
 */
export function backwardInputsWgsl(element: string): string {
  return `@group(0) @binding(0) var<storage, read> q: array<${element}>;
@group(0) @binding(1) var<storage, read> k: array<${element}>;
@group(0) @binding(2) var<storage, read> v: array<${element}>;
@group(0) @binding(3) var<storage, read> dout: array<${element}>;
@group(0) @binding(4) var<storage, read> stats: array<f32>;
@group(0) @binding(5) var<storage, read> launch: array<u32>;

fn rowStats(sp: Span, h: u32, i: i32) -> vec2<f32> {
  let at = sp.lseBase + h * p.lseHeadStride + u32(i);
  return vec2<f32>(stats[at], stats[p.statsDelta + at]);
}`;
}

/**
 * A backward kernel's elementwise step (P and dS from the tile's scores) twice, behind the tile's
 * uniform `open`: without the per-score mask test where every row sees the whole tile, with it
 * elsewhere. `step(masked)` gives the step's WGSL either way. Written as one expression,
 * `open || test`, the test was evaluated for every score of every tile: at 16,384 causal tokens on
 * the H200 removing it took the dK/dV kernel from 69.5 to 63.4 ms and the dQ kernel from 34.1 to
 * 30.7 (flash-ablations), though nearly every tile of a causal walk is open.
 */
export function openOrMaskedWgsl(step: (masked: boolean) => string, indent: string): string {
  return `${indent}if (open) {
${step(false)}
${indent}} else {
${step(true)}
${indent}}`;
}

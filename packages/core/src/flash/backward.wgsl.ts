/**
 * Flash-attention backward, FlashAttention-2 style, recomputing probabilities from the saved lse:
 * `delta = rowsum(dO ∘ O)`; a key-major pass that accumulates dK and dV for each key over every
 * query head of its GQA group (so the group sum needs no atomics and is deterministic); a
 * query-major pass for dQ. Row-per-thread like the forward.
 */
import { WORKGROUP_INDEX_WGSL } from '../dispatch.js';
import type { Dtype } from '../dtype.js';
import { paramsStruct } from '../params.js';
import { COMPONENTS, enables, unpackVec4uWgsl, vec4uElements } from '../wgsl.js';
import {
  backwardInputsWgsl,
  FLASH_PARAMS,
  keyTileWgsl,
  MASKED,
  queryTileWgsl,
  SEQUENCE_WGSL,
  stageKeyTileWgsl,
  stageRowsWgsl,
} from './common.wgsl.js';
import { type RowKernelConfig, rowKernelDeclarations } from './forward.wgsl.js';

/**
 * Invocations of a staged row-dot workgroup, the f32 elements of each tensor it stages per chunk
 * (about), and the most workgroup memory it may declare (WebGPU's default limit).
 */
export const ROW_DOT_THREADS = 256;
const ROW_DOT_CHUNK_ELEMENTS = 1024;
const ROW_DOT_MAX_BYTES = 16384;

/**
 * Rows of `width` elements of two tensors `a` and `b` (bound as `array<{element}>`), dotted row by
 * row: Σ_c a[row, c] · b[row, c], for the `rows` rows of a workgroup of ROW_DOT_THREADS
 * invocations. Such a pass streams its tensors once (o and dO, 2 GiB each at NSA's reference
 * config, 65,536 tokens), so it is built for bandwidth: all invocations stage the rows chunk by
 * chunk of columns into workgroup memory, reading 16 bytes per load where the width is a whole
 * number of such vectors (one element otherwise), neighbouring invocations' loads side by side in
 * memory; then one invocation per row adds its chunk in column order. Every row's sum is the
 * chain `step` over c = 0 .. width - 1, so the bits are those of one invocation per row reading
 * one element at a time, which reached about a sixth of the H200's bandwidth.
 *
 * The tensors are bound as arrays of `element` (`vec4<u32>` or the dtype), `rowUnits` of them per
 * row; `declarations` go at module scope; `sum(source, valid)` is a statement block leaving
 * invocation `li`'s row sum (rows `li < ROW_DOT_ROWS`) in `var sum`, where `source(r)` is the
 * first unit of row r of the workgroup and `valid(r)` whether that row exists. `step(sum, a, b)`
 * adds one product as the kernel always did (an fma, or `sum + a * b`).
 */
export function rowDotWgsl(c: {
  dtype: Dtype;
  width: number;
  rows: number;
  a: string;
  b: string;
  step: (sum: string, a: string, b: string) => string;
}): {
  element: string;
  rowUnits: number;
  declarations: string;
  sum: (source: (r: string) => string, valid: (r: string) => string) => string;
} {
  const T = c.dtype;
  const vectors = c.width % vec4uElements(T) === 0;
  const per = vectors ? vec4uElements(T) : 1;
  if (c.rows > ROW_DOT_THREADS)
    throw new Error(`rowDotWgsl: ${c.rows} rows exceed ${ROW_DOT_THREADS} invocations`);
  // Columns per chunk: a whole number of loads, at most the width.
  const chunk = Math.min(c.width, Math.max(per, Math.floor(ROW_DOT_CHUNK_ELEMENTS / c.rows / per) * per));
  const stride = chunk + 1;
  if (2 * c.rows * stride * 4 > ROW_DOT_MAX_BYTES)
    throw new Error(`rowDotWgsl: ${c.rows} rows of ${chunk}-column chunks exceed ${ROW_DOT_MAX_BYTES} bytes`);
  // A load's elements as f32, into the staged rows at `at`.
  const stage = (array: string, tensor: string) =>
    vectors
      ? unpackVec4uWgsl(T, `${tensor}[src]`)
          .map((x, half) =>
            COMPONENTS.map((lane, k) => `${array}[at + ${4 * half + k}u] = ${x}.${lane};`).join(' '),
          )
          .join('\n        ')
      : `${array}[at] = f32(${tensor}[src]);`;
  return {
    element: vectors ? 'vec4<u32>' : T,
    rowUnits: c.width / per,
    declarations: `// The row dot's rows, columns per staged chunk, loads per row of a chunk (${per} elements each),
// staged row stride, and its staged chunks of ${c.a} and ${c.b}.
const ROW_DOT_ROWS = ${c.rows}u;
const ROW_DOT_CHUNK = ${chunk}u;
const ROW_DOT_LOADS = ${chunk / per}u;
const ROW_DOT_STRIDE = ${stride}u;
var<workgroup> stagedA: array<f32, ${c.rows * stride}>;
var<workgroup> stagedB: array<f32, ${c.rows * stride}>;`,
    sum: (source, valid) => `  var sum = 0.0;
  for (var c0 = 0u; c0 < ${c.width}u; c0 += ROW_DOT_CHUNK) {
    workgroupBarrier();
    for (var item = li; item < ROW_DOT_ROWS * ROW_DOT_LOADS; item += ${ROW_DOT_THREADS}u) {
      let r = item / ROW_DOT_LOADS;
      let col = c0 + (item % ROW_DOT_LOADS) * ${per}u;
      if (${valid('r')} && col < ${c.width}u) {
        let src = ${source('r')} + col / ${per}u;
        let at = r * ROW_DOT_STRIDE + col - c0;
        ${stage('stagedA', c.a)}
        ${stage('stagedB', c.b)}
      }
    }
    workgroupBarrier();
    if (li < ROW_DOT_ROWS) {
      for (var c = 0u; c < min(ROW_DOT_CHUNK, ${c.width}u - c0); c++) {
        ${c.step('sum', 'stagedA[li * ROW_DOT_STRIDE + c]', 'stagedB[li * ROW_DOT_STRIDE + c]')}
      }
    }
  }`,
  };
}

/**
 * WGSL computing delta[row] = Σ_c dO[row, c] · O[row, c] for each (row, head) of a tile of `rows`
 * rows, staged for bandwidth ({@link rowDotWgsl}). It writes a stats buffer holding a copy of lse
 * then delta, so the later passes bind one buffer for both and stay within 8 storage buffers (the
 * WebGPU default limit).
 */
export function flashDeltaWgsl(c: Pick<RowKernelConfig, 'dtype' | 'dv' | 'rows'>): string {
  const dot = rowDotWgsl({
    dtype: c.dtype,
    width: c.dv,
    rows: c.rows,
    a: 'dout',
    b: 'o',
    step: (sum, a, b) => `${sum} = fma(${a}, ${b}, ${sum});`,
  });
  return `${enables({ f16: c.dtype === 'f16' })}
${paramsStruct(FLASH_PARAMS)}
@group(0) @binding(0) var<storage, read> o: array<${dot.element}>;
@group(0) @binding(1) var<storage, read> dout: array<${dot.element}>;
@group(0) @binding(2) var<storage, read> lse: array<f32>;
@group(0) @binding(3) var<storage, read> launch: array<u32>;
@group(0) @binding(4) var<storage, read_write> stats: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;

${dot.declarations}

${SEQUENCE_WGSL}

${WORKGROUP_INDEX_WGSL}

@compute @workgroup_size(${ROW_DOT_THREADS})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let w = workgroupIndex(wid, nwg);
  if (w >= p.tiles * p.hq) { return; }
  let t = w / p.hq;
  let h = w % p.hq;
  let sp = tileSpan(t);
  let first = u32(tileFirst(t));
${dot.sum(
  (r) => `((sp.qStart + first + ${r}) * p.hq + h) * ${dot.rowUnits}u`,
  (r) => `first + ${r} < sp.qLen`,
)}
  let i = first + li;
  if (li < ROW_DOT_ROWS && i < sp.qLen) {
    let row = sp.lseBase + h * p.lseHeadStride + i;
    stats[row] = lse[row];
    stats[p.statsDelta + row] = sum;
  }
}
`;
}

/** WGSL for dK and dV: one thread per key, over the query tiles and heads that can see it. */
export function flashDkDvWgsl(c: RowKernelConfig): string {
  const T = c.dtype;
  return `${enables({ f16: T === 'f16' })}
${paramsStruct(FLASH_PARAMS)}
${backwardInputsWgsl(T)}
@group(0) @binding(6) var<storage, read_write> dk: array<${T}>;
@group(0) @binding(7) var<storage, read_write> dv: array<${T}>;
@group(0) @binding(8) var<uniform> p: Params;

${rowKernelDeclarations(c, 'Qs', 'dOs')}
var<workgroup> Ls: array<f32, ${c.tile}>;
var<workgroup> Ds: array<f32, ${c.tile}>;

${SEQUENCE_WGSL}

${WORKGROUP_INDEX_WGSL}

@compute @workgroup_size(${c.rows})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
${keyTileWgsl('ROWS')}
  let j = first + i32(li);
  let live = j <= last;
  var kr: array<f32, ${c.d}>;
  var vr: array<f32, ${c.dv}>;
  var dkAcc: array<f32, ${c.d}>;
  var dvAcc: array<f32, ${c.dv}>;
  for (var c = 0u; c < D; c++) { kr[c] = 0.0; dkAcc[c] = 0.0; }
  for (var c = 0u; c < DV; c++) { vr[c] = 0.0; dvAcc[c] = 0.0; }
  if (live) {
    let kb = ((sp.kStart + u32(j)) * p.hkv + hk) * D;
    for (var c = 0u; c < D; c++) { kr[c] = f32(k[kb + c]); }
    let vb = ((sp.kStart + u32(j)) * p.hkv + hk) * DV;
    for (var c = 0u; c < DV; c++) { vr[c] = f32(v[vb + c]); }
  }
  let range = queryRange(sp, first, last);
  for (var g = 0u; g < p.group; g++) {
    let h = hk * p.group + g;
    for (var i0 = range.x; i0 < range.y; i0 += i32(TILE)) {
      workgroupBarrier();
      ${stageRowsWgsl({ dest: 'Qs', src: 'q', width: 'D', rows: 'TILE', tokenStart: 'sp.qStart', heads: 'p.hq', head: 'h', first: 'i0', end: 'range.y', threads: 'ROWS', type: 'f32' })}
      ${stageRowsWgsl({ dest: 'dOs', src: 'dout', width: 'DV', rows: 'TILE', tokenStart: 'sp.qStart', heads: 'p.hq', head: 'h', first: 'i0', end: 'range.y', threads: 'ROWS', type: 'f32' })}
      for (var e = li; e < TILE; e += ROWS) {
        let i = i0 + i32(e);
        var lv = ${MASKED};
        var dl = 0.0;
        if (i < range.y) {
          let st = rowStats(sp, h, i);
          lv = st.x;
          dl = st.y;
        }
        Ls[e] = lv;
        Ds[e] = dl;
      }
      workgroupBarrier();
      // The tensor-core kernels' fast path, kept here too so that the tests on CPU adapters cover it.
      let open = i0 + i32(TILE) <= range.y && blockVisible(sp, i0, i0 + i32(TILE) - 1, first, last);
      if (live) {
        for (var ii = 0u; ii < TILE; ii++) {
          let i = i0 + i32(ii);
          if (open || (i < range.y && visible(sp, i, j))) {
            var s = 0.0;
            for (var c = 0u; c < D; c++) { s = fma(Qs[ii * D + c], kr[c], s); }
            let prob = exp(s * p.scale - Ls[ii]);
            var dp = 0.0;
            for (var c = 0u; c < DV; c++) {
              dp = fma(dOs[ii * DV + c], vr[c], dp);
              dvAcc[c] = fma(prob, dOs[ii * DV + c], dvAcc[c]);
            }
            let ds = prob * (dp - Ds[ii]);
            for (var c = 0u; c < D; c++) { dkAcc[c] = fma(ds, Qs[ii * D + c], dkAcc[c]); }
          }
        }
      }
    }
  }
  if (live) {
    let kb = ((sp.kStart + u32(j)) * p.hkv + hk) * D;
    for (var c = 0u; c < D; c++) { dk[kb + c] = ${T}(dkAcc[c] * p.scale); }
    let vb = ((sp.kStart + u32(j)) * p.hkv + hk) * DV;
    for (var c = 0u; c < DV; c++) { dv[vb + c] = ${T}(dvAcc[c]); }
  }
}
`;
}

/** WGSL for dQ: one thread per query row, over the key tiles it can see. */
export function flashDqWgsl(c: RowKernelConfig): string {
  const T = c.dtype;
  return `${enables({ f16: T === 'f16' })}
${paramsStruct(FLASH_PARAMS)}
${backwardInputsWgsl(T)}
@group(0) @binding(6) var<storage, read_write> dq: array<${T}>;
@group(0) @binding(7) var<uniform> p: Params;

${rowKernelDeclarations(c, 'Ks', 'Vs')}

${SEQUENCE_WGSL}

${WORKGROUP_INDEX_WGSL}

@compute @workgroup_size(${c.rows})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
${queryTileWgsl('ROWS')}
  let i = first + i32(li);
  let live = i <= last;
  var qr: array<f32, ${c.d}>;
  var dor: array<f32, ${c.dv}>;
  var dqAcc: array<f32, ${c.d}>;
  var lv = ${MASKED};
  var dl = 0.0;
  for (var c = 0u; c < D; c++) { qr[c] = 0.0; dqAcc[c] = 0.0; }
  for (var c = 0u; c < DV; c++) { dor[c] = 0.0; }
  if (live) {
    let qb = ((sp.qStart + u32(i)) * p.hq + h) * D;
    for (var c = 0u; c < D; c++) { qr[c] = f32(q[qb + c]); }
    let ob = ((sp.qStart + u32(i)) * p.hq + h) * DV;
    for (var c = 0u; c < DV; c++) { dor[c] = f32(dout[ob + c]); }
    let st = rowStats(sp, h, i);
    lv = st.x;
    dl = st.y;
  }
  let range = keyRange(sp, first, last);
  for (var k0 = range.x; k0 < range.y; k0 += i32(TILE)) {
    workgroupBarrier();
    ${stageKeyTileWgsl('Ks', 'k', 'ROWS', 'f32')}
    ${stageKeyTileWgsl('Vs', 'v', 'ROWS', 'f32')}
    workgroupBarrier();
    // As in the tensor-core kernel: a tile every row sees whole skips the mask test.
    let open = k0 + i32(TILE) <= range.y && blockVisible(sp, first, last, k0, k0 + i32(TILE) - 1);
    if (live) {
      for (var jj = 0u; jj < TILE; jj++) {
        let j = k0 + i32(jj);
        if (open || (j < range.y && visible(sp, i, j))) {
          var s = 0.0;
          for (var c = 0u; c < D; c++) { s = fma(qr[c], Ks[jj * D + c], s); }
          let prob = exp(s * p.scale - lv);
          var dp = 0.0;
          for (var c = 0u; c < DV; c++) { dp = fma(dor[c], Vs[jj * DV + c], dp); }
          let ds = prob * (dp - dl);
          for (var c = 0u; c < D; c++) { dqAcc[c] = fma(ds, Ks[jj * D + c], dqAcc[c]); }
        }
      }
    }
  }
  if (live) {
    let qb = ((sp.qStart + u32(i)) * p.hq + h) * D;
    for (var c = 0u; c < D; c++) { dq[qb + c] = ${T}(dqAcc[c] * p.scale); }
  }
}
`;
}

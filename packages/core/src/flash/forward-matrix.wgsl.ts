/**
 * Flash-attention forward on tensor cores (subgroup matrices, f16 operands, f32 accumulation).
 *
 * A workgroup owns `rowFragments` fragments of M query rows, and its `subgroups` subgroups split the
 * work on them by columns: each computes the scores of its own slice of every key tile, and the
 * output for its own slice of the value columns. Every subgroup therefore holds all of Q in
 * registers but only its share of the output accumulator, which keeps enough registers free for
 * the compiler; and every K or V fragment a subgroup loads from workgroup memory feeds one
 * multiply-accumulate per row fragment. Tiles of keys, then of values, are staged once per
 * workgroup with vec4 loads.
 *
 * Subgroup matrices are opaque, so the output accumulator cannot be rescaled row by row as the
 * online softmax would need. The kernel therefore makes two passes over the keys: the first
 * computes S = Q·Kᵀ only, to find each row's max and sum (its lse); the second recomputes S, forms
 * P = exp(S - lse) already normalised, and accumulates P·V into output fragments that never need
 * rescaling. Q·Kᵀ is done twice (1.5x the FLOPs of one pass) in exchange for no round trip of the
 * accumulator through workgroup memory.
 *
 * Scores reach the lanes through workgroup memory. `lanesPerRow` lanes of a subgroup share a row,
 * each keeping a running max and sum over its part of the subgroup's slice; the lanes combine with
 * shuffles and the subgroups through workgroup memory, once, after the first pass. A lane walks its
 * part starting at an offset given by its row, so the lanes of a subgroup read different banks.
 */
import { WORKGROUP_INDEX_WGSL } from '../dispatch.js';
import { MASKED, queryTileWgsl, SEQUENCE_WGSL, stageRowsVec4Wgsl } from './common.wgsl.js';
import {
  type MatrixKernelConfig,
  matrixEntryPoint,
  matrixKernelHeader,
  matrixShape,
} from './matrix-kernel.js';

/**
 * Generation parameters of the tensor-core forward. `subgroups` split the columns of each key tile
 * (`tile / subgroups` keys each) and of the output (`dv / subgroups` columns each).
 */
export interface MatrixForwardConfig extends MatrixKernelConfig {
  /** Fragments of M query rows the workgroup owns; every subgroup multiplies all of them. */
  rowFragments: number;
}

/** Query rows of one workgroup. */
export function matrixForwardRows(c: MatrixForwardConfig): number {
  return c.rowFragments * c.matrix.M;
}

/** How the work divides: keys and output columns per subgroup, lanes per row, keys per lane. */
function split(c: MatrixForwardConfig) {
  const rows = matrixForwardRows(c);
  const keys = c.tile / c.subgroups;
  const lanesPerRow = c.subgroupSize / rows;
  return { rows, keys, columns: c.dv / c.subgroups, lanesPerRow, perLane: keys / lanesPerRow };
}

/**
 * Row strides of the workgroup arrays, in elements: each row padded by 16 bytes, so that the rows of
 * a matrix load (or store) start on different banks instead of all on the same one.
 */
function strides(c: MatrixForwardConfig) {
  return { q: c.d + 8, k: c.d + 8, v: c.dv + 8, s: c.tile + 4, p: c.tile + 8 };
}

/** f16 elements of the staging area: a tile of keys or of values, or the workgroup's Q rows. */
function stagingElements(c: MatrixForwardConfig): number {
  const st = strides(c);
  return Math.max(c.tile * Math.max(st.k, st.v), matrixForwardRows(c) * st.q);
}

/** Workgroup memory the kernel declares, in bytes: staging, scores (f32), probabilities (f16), stats. */
export function matrixForwardSharedBytes(c: MatrixForwardConfig): number {
  const rows = matrixForwardRows(c);
  const st = strides(c);
  return stagingElements(c) * 2 + rows * (st.s * 4 + st.p * 2) + c.subgroups * rows * 8;
}

const isPowerOfTwo = (x: number) => Number.isInteger(x) && x >= 1 && (x & (x - 1)) === 0;

/** Why a shape cannot use the tensor-core forward, or undefined when it can. */
export function matrixForwardUnsupported(c: MatrixForwardConfig): string | undefined {
  const { N, K } = c.matrix;
  const { rows, keys, columns, lanesPerRow, perLane } = split(c);
  if (c.d % K !== 0) return `d = ${c.d} is not a multiple of the matrix K = ${K}`;
  if (c.tile % K !== 0) return `tile ${c.tile} is not a multiple of the matrix K = ${K}`;
  if (!Number.isInteger(keys) || keys % N !== 0) {
    return `tile ${c.tile} does not split into multiples of N = ${N} over ${c.subgroups} subgroups`;
  }
  if (!Number.isInteger(columns) || columns % N !== 0) {
    return `dv = ${c.dv} does not split into multiples of N = ${N} over ${c.subgroups} subgroups`;
  }
  if (!isPowerOfTwo(lanesPerRow))
    return `subgroup size ${c.subgroupSize} is not a power-of-two multiple of ${rows} rows`;
  if (!isPowerOfTwo(perLane))
    return `${keys} keys do not split into a power of two per lane over ${lanesPerRow} lanes`;
  return undefined;
}

/** Names of a grid of fragments: `prefix{r}_{j}`. */
function grid(prefix: string, rows: number, cols: number): string[][] {
  return Array.from({ length: rows }, (_, r) => Array.from({ length: cols }, (_, j) => `${prefix}${r}_${j}`));
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/** WGSL of the tensor-core forward (f16 q, k, v, o; f32 lse). */
export function flashForwardMatrixWgsl(c: MatrixForwardConfig): string {
  const { M, N, K, left, right, result } = matrixShape(c);
  const { rows, keys, columns, lanesPerRow, perLane } = split(c);
  const R = c.rowFragments;
  const st = strides(c);
  const keyFrags = keys / N;
  const q = grid('qf', R, c.d / K);
  const o = grid('of', R, columns / N);

  // S = Q·Kᵀ for the subgroup's slice of the staged key tile, stored to its columns of Ss. All of
  // its score fragments are computed together: independent accumulators hide the latency.
  const s = grid('sf', R, keyFrags);
  const scores = [
    ...s.flat().map((f) => `    var ${f} = ${result}();`),
    ...range(c.d / K).flatMap((kk) =>
      range(keyFrags).flatMap((j) => [
        `    { let kf = subgroupMatrixLoad<${right}, col_major>(&Xs, (sgc * ${keyFrags}u + ${j}u) * ${N * st.k}u + ${kk * K}u, ${st.k}u);`,
        ...range(R).map(
          (r) => `      ${s[r]?.[j]} = subgroupMatrixMultiplyAccumulate(${q[r]?.[kk]}, kf, ${s[r]?.[j]});`,
        ),
        '    }',
      ]),
    ),
    ...range(R).flatMap((r) =>
      range(keyFrags).map(
        (j) =>
          `    subgroupMatrixStore<row_major>(&Ss, ${r * M * st.s}u + sgc * ${keys}u + ${j * N}u, ${s[r]?.[j]}, ${st.s}u);`,
      ),
    ),
  ].join('\n');

  const stage = (src: 'k' | 'v') =>
    stageRowsVec4Wgsl({
      dest: 'Xs',
      src,
      rows: c.tile,
      width: src === 'k' ? c.d : c.dv,
      destStride: src === 'k' ? st.k : st.v,
      tokenStart: 'sp.kStart',
      heads: 'p.hkv',
      head: 'hk',
      first: 'k0',
      end: 'range.y',
      threads: c.subgroups * c.subgroupSize,
    });

  const scoreTile = `    workgroupBarrier();
    ${stage('k')}
    workgroupBarrier();
${scores}
    workgroupBarrier();
    let open = tileOpen(sp, k0, first, last, range.y);
${range(perLane)
  .map((k) => `    let jj${k} = sgc * ${keys}u + part * ${perLane}u + ((${k}u + row) & ${perLane - 1}u);`)
  .join('\n')}`;

  // The lane's keys, unrolled: an open tile needs no mask test, the others test every key.
  const eachKey = (body: (k: number, seen: string) => string) => `    if (open) {
${range(perLane)
  .map((k) => body(k, 'true'))
  .join('\n')}
    } else {
${range(perLane)
  .map(
    (k) =>
      `      let seen${k} = k0 + i32(jj${k}) < range.y && visible(sp, i, k0 + i32(jj${k}));\n${body(k, `seen${k}`)}`,
  )
  .join('\n')}
    }`;
  const at = (k: number) => `row * ${st.s}u + jj${k}`;
  // Pass 1: scores in registers, masked ones at MASKED; a masked key adds nothing to the sum.
  const tileStats = `${range(perLane)
    .map((k) => `    var x${k} = ${MASKED};`)
    .join('\n')}
${eachKey((k, seen) => `      if (${seen}) { x${k} = Ss[${at(k)}] * scale2; }`)}
    let mNew = max(m, ${range(perLane)
      .map((k) => `x${k}`)
      .reduce((a, b) => `max(${a}, ${b})`)});
    var sum = 0.0;
${eachKey((k, seen) => `      if (${seen}) { sum += exp2(x${k} - mNew); }`)}
    l = l * exp2(m - mNew) + sum;
    m = mNew;`;
  const probabilities = eachKey(
    (k, seen) =>
      `      Ps[row * ${st.p}u + jj${k}] = select(f16(0.0), f16(exp2(Ss[${at(k)}] * scale2 - rowLse2)), ${seen});`,
  );

  // Folds a per-lane value over the lanes sharing a row (lane = row + rows · part).
  const combine = (v: string, fold: (a: string, b: string) => string) =>
    range(Math.log2(lanesPerRow))
      .map((b) => `${v} = ${fold(v, `subgroupShuffleXor(${v}, ${rows * 2 ** b}u)`)};`)
      .join(' ');

  const products = range(c.tile / K)
    .map((kc) => {
      const lines = range(R).map(
        (r) =>
          `    let pf${r} = subgroupMatrixLoad<${left}, row_major>(&Ps, ${r * M * st.p + kc * K}u, ${st.p}u);`,
      );
      for (let n = 0; n < columns / N; n++) {
        lines.push(
          `    { let vf = subgroupMatrixLoad<${right}, row_major>(&Xs, ${kc * K * st.v}u + sgc * ${columns}u + ${n * N}u, ${st.v}u);`,
          ...range(R).map(
            (r) => `      ${o[r]?.[n]} = subgroupMatrixMultiplyAccumulate(pf${r}, vf, ${o[r]?.[n]});`,
          ),
          '    }',
        );
      }
      return `    {\n${lines.join('\n')}\n    }`;
    })
    .join('\n');

  // The output leaves through the subgroup's columns of Ss, `keys` columns at a time.
  const chunkFrags = Math.min(keyFrags, columns / N);
  const writeOut = range(Math.ceil(columns / N / chunkFrags))
    .map((chunk) => {
      const frags = range(chunkFrags).map((f) => chunk * chunkFrags + f);
      const width = frags.length * N;
      const stores = range(R).flatMap((r) =>
        frags.map(
          (n, f) =>
            `  subgroupMatrixStore<row_major>(&Ss, ${r * M * st.s}u + sgc * ${keys}u + ${f * N}u, ${o[r]?.[n]}, ${st.s}u);`,
        ),
      );
      return `${stores.join('\n')}
  workgroupBarrier();
  if (sg < SUBGROUPS) {
    for (var e = lane; e < ${(rows * width) / 4}u; e += ${c.subgroupSize}u) {
      let r = e / ${width / 4}u;
      let at = r * ${st.s}u + sg * ${keys}u + 4u * (e % ${width / 4}u);
      let oi = first + i32(r);
      if (oi <= last) {
        o[((sp.qStart + u32(oi)) * p.hq + h) * ${c.dv / 4}u + sg * ${columns / 4}u + ${(chunk * chunkFrags * N) / 4}u + e % ${width / 4}u] =
          vec4<f16>(vec4<f32>(Ss[at], Ss[at + 1u], Ss[at + 2u], Ss[at + 3u]));
      }
    }
  }
  workgroupBarrier();`;
    })
    .join('\n');

  return `${matrixKernelHeader(c)}
@group(0) @binding(0) var<storage, read> q: array<vec4<f16>>;
@group(0) @binding(1) var<storage, read> k: array<vec4<f16>>;
@group(0) @binding(2) var<storage, read> v: array<vec4<f16>>;
@group(0) @binding(3) var<storage, read> launch: array<u32>;
@group(0) @binding(4) var<storage, read_write> o: array<vec4<f16>>;
@group(0) @binding(5) var<storage, read_write> lse: array<f32>;
@group(0) @binding(6) var<uniform> p: Params;

const D = ${c.d}u;
const DV = ${c.dv}u;
const ROWS = ${rows}u;
const TILE = ${c.tile}u;
const THREADS = ${c.subgroups * c.subgroupSize}u;
const SUBGROUPS = ${c.subgroups}u;
const LOG2E = 1.4426950408889634;
var<workgroup> Xs: array<f16, ${stagingElements(c)}>;
var<workgroup> Ss: array<f32, ${rows * st.s}>;
var<workgroup> Ps: array<f16, ${rows * st.p}>;
// Each subgroup's (max, sum) per row after the first pass, in base 2.
var<workgroup> Stats: array<vec2<f32>, ${c.subgroups * rows}>;

${SEQUENCE_WGSL}

${WORKGROUP_INDEX_WGSL}

// Whether every row in [first, last] sees every key of the tile at k0: then no key needs a test.
fn tileOpen(sp: Span, k0: i32, first: i32, last: i32, end: i32) -> bool {
  let k1 = k0 + i32(TILE) - 1;
  return k1 < end && blockVisible(sp, first, last, k0, k1);
}

${matrixEntryPoint(c)}
${queryTileWgsl('ROWS')}
  // Narrower subgroups than built for would add subgroups: they repeat the last one's work.
  let sgc = min(sg, SUBGROUPS - 1u);
  // This lane's row, and its part of the subgroup's slice of each tile.
  let row = lane % ROWS;
  let part = lane / ROWS;
  let i = first + i32(row);
  // Scores in base 2: exp(x) = exp2(x · log2 e).
  let scale2 = p.scale * LOG2E;
  ${stageRowsVec4Wgsl({ dest: 'Xs', src: 'q', rows, width: c.d, destStride: st.q, tokenStart: 'sp.qStart', heads: 'p.hq', head: 'h', first: 'first', end: 'last + 1', threads: c.subgroups * c.subgroupSize })}
  workgroupBarrier();
${q
  .flatMap((frags, r) =>
    frags.map(
      (f, kk) =>
        `  let ${f} = subgroupMatrixLoad<${left}, row_major>(&Xs, ${r * M * st.q + kk * K}u, ${st.q}u);`,
    ),
  )
  .join('\n')}
  let range = keyRange(sp, first, last);

  // Pass 1: this lane's max and sum of exp2 over its keys of every visible tile.
  var m = ${MASKED};
  var l = 0.0;
  for (var k0 = range.x; k0 < range.y; k0 += i32(TILE)) {
${scoreTile}
${tileStats}
  }
  // Shuffles need the whole subgroup, so lanes that saw nothing take part with m = MASKED, l = 0.
  var rowMax = m;
  ${combine('rowMax', (a, b) => `max(${a}, ${b})`)}
  l = l * exp2(m - rowMax);
  ${combine('l', (a, b) => `${a} + ${b}`)}
  if (part == 0u) { Stats[sgc * ROWS + row] = vec2<f32>(rowMax, l); }
  workgroupBarrier();
  m = ${MASKED};
  for (var g = 0u; g < SUBGROUPS; g++) { m = max(m, Stats[g * ROWS + row].x); }
  l = 0.0;
  for (var g = 0u; g < SUBGROUPS; g++) { l += Stats[g * ROWS + row].y * exp2(Stats[g * ROWS + row].x - m); }
  // A row with no key gets lse = -inf; its probabilities below use a huge offset and come out 0.
  let rowLse2 = select(3.0e38, m + log2(l), l > 0.0);

  // Pass 2: P = exp2(S - lse), already normalised, accumulated as P·V.
${o
  .flat()
  .map((f) => `  var ${f} = ${result}();`)
  .join('\n')}
  for (var k0 = range.x; k0 < range.y; k0 += i32(TILE)) {
${scoreTile}
${probabilities}
    ${stage('v')}
    workgroupBarrier();
${products}
  }
  if (sg == 0u && part == 0u && i <= last) {
    lse[sp.lseBase + h * p.lseHeadStride + u32(i)] = select(p.negInf, rowLse2 * ${Math.LN2}, l > 0.0);
  }
${writeOut}
}
`;
}

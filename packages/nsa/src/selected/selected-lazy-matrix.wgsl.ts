/**
 * Selected-block attention on tensor cores, shaped like core's flash forward: one small workgroup
 * per (token, KV head), whose `subgroups` subgroups split each key tile (N keys each) and the
 * output's columns (dv / subgroups each), the G query heads of the group as the rows of one (or
 * two) 16-row fragments held in registers. The output accumulates in matrix fragments across every
 * tile of every selected block, with core's lazy max ({@link FLASH_LAZY_RESCALE}): a row's max moves
 * only when a tile's passes it by more than that (base 2), and only then do the accumulators
 * round-trip through workgroup memory to be rescaled. The other selected kernel
 * (selected-matrix.wgsl.ts) adds each tile's products to a running output in registers, through
 * workgroup memory at every tile, in workgroups four times as wide.
 *
 * Per tile: K staged (16-byte loads), S = Q·Kᵀ by slices into workgroup memory, V's loads issued
 * before the softmax and stored after it, P = exp2(S − m) in f16, then P·V into the accumulators.
 * Keys after the token are masked; K and V rows past it are not loaded.
 */
import {
  COMPONENTS,
  enables,
  FLASH_LAZY_RESCALE,
  MASKED,
  paramsStruct,
  prefetchedStagingSetsWgsl,
  rowVectorType,
  type StagedRowsVec4,
  shuffleFoldWgsl,
  stageRowsVec4Set,
  stageRowsVec4Wgsl,
  WORKGROUP_INDEX_WGSL,
} from '@webattn/core';
import { NSA_SEQUENCE_WGSL } from '../layout.js';
import { fragmentGrid, groupRowsOf, loadFragmentsWgsl, matrixTypes } from '../matrix.wgsl.js';
import { SELECTED_PARAMS } from './selected.wgsl.js';
import {
  type SelectedMatrixConfig,
  selectedKeyTilesLoopWgsl,
  tokenOfWorkgroupWgsl,
} from './selected-matrix.wgsl.js';

/**
 * Generation parameters of the flash-shaped selected attention: the tensor-core selected kernels'
 * shape, and `subgroups`, over which each tile's keys (tile / subgroups each, whole fragments) and
 * the output's columns split; one N-key slice per subgroup unless given.
 */
export type SelectedLazyConfig = { subgroups?: number } & Pick<
  SelectedMatrixConfig,
  | 'd'
  | 'dv'
  | 'topN'
  | 'group'
  | 'blockSize'
  | 'matrix'
  | 'subgroupSize'
  | 'pinSubgroupSize'
  | 'tile'
  | 'wideLoads'
  | 'kvHeadMajor'
  | 'indexAhead'
>;

/** How the work divides: subgroups, rows, output columns per subgroup, lanes per row, keys per lane. */
function split(c: SelectedLazyConfig) {
  const fragments = Math.ceil(c.group / c.matrix.M);
  const rows = fragments * c.matrix.M;
  const subgroups = c.subgroups ?? c.tile / c.matrix.N;
  const keys = c.tile / subgroups;
  const lanesPerRow = c.subgroupSize / rows;
  return {
    fragments,
    rows,
    subgroups,
    threads: subgroups * c.subgroupSize,
    keys,
    columns: c.dv / subgroups,
    lanesPerRow,
    perLane: keys / lanesPerRow,
  };
}

/** Row strides of the workgroup arrays in elements, padded by 16 bytes against bank conflicts. */
function strides(c: SelectedLazyConfig) {
  return { k: c.d + 8, v: c.dv + 8, s: c.tile + 4, p: c.tile + 8 };
}

/** f16 elements of the staging array: the group's query rows, then a key tile, then a value tile. */
function stagingElements(c: SelectedLazyConfig): number {
  const st = strides(c);
  return Math.max(split(c).rows * st.k, c.tile * Math.max(st.k, st.v));
}

/** Workgroup memory in bytes: staging, scores (f32), probabilities (f16), per-row statistics, the rescale flag. */
export function selectedLazySharedBytes(c: SelectedLazyConfig): number {
  const { rows, subgroups } = split(c);
  const st = strides(c);
  return stagingElements(c) * 2 + rows * (st.s * 4 + st.p * 2) + subgroups * rows * 4 + rows * 4 + 16;
}

/** Invocations per workgroup. */
export function selectedLazyThreads(c: SelectedLazyConfig): number {
  return split(c).threads;
}

const isPowerOfTwo = (x: number) => Number.isInteger(x) && x >= 1 && (x & (x - 1)) === 0;

/** Why a shape cannot use the kernel, or undefined when it can. */
export function selectedLazyUnsupported(c: SelectedLazyConfig): string | undefined {
  const { M, N, K } = c.matrix;
  const { subgroups, keys, columns, lanesPerRow, perLane } = split(c);
  if (M !== N || N !== K) return `matrix shape ${M}x${N}x${K} is not square`;
  if (c.blockSize % c.tile !== 0) return `block size ${c.blockSize} is not a multiple of the tile ${c.tile}`;
  if (!Number.isInteger(subgroups) || subgroups < 1)
    return `${subgroups} subgroups is not a positive integer`;
  if (!Number.isInteger(keys) || keys % N !== 0) {
    return `tile ${c.tile} does not split into multiples of N = ${N} over ${subgroups} subgroups`;
  }
  if (c.d % K !== 0) return `d = ${c.d} is not a multiple of K = ${K}`;
  if (!Number.isInteger(columns) || columns % N !== 0) {
    return `dv = ${c.dv} does not split into multiples of N = ${N} over ${subgroups} subgroups`;
  }
  if (!isPowerOfTwo(lanesPerRow))
    return `subgroup size ${c.subgroupSize} is not a power-of-two multiple of the rows`;
  if (!Number.isInteger(perLane) || perLane % 4 !== 0) {
    return `${keys} keys per subgroup do not split into fours over ${lanesPerRow} lanes`;
  }
  return undefined;
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/** WGSL of the flash-shaped selected attention: f16 q, k, v, o; f32 lse `[tokens, heads]`. */
export function selectedLazyMatrixWgsl(c: SelectedLazyConfig): string {
  const { M, N, K } = c.matrix;
  const { left, right, result } = matrixTypes(c.matrix);
  const { fragments, rows, subgroups, threads, keys, columns, lanesPerRow, perLane } = split(c);
  const keyFrags = keys / N;
  const st = strides(c);
  const qf = fragmentGrid('qf', fragments, c.d / K);
  const of = fragmentGrid('of', fragments, columns / N);
  // Every workgroup array holds vectors of four; offsets and strides into them count vectors.
  const u = (elements: number) => elements / 4;
  const groups = perLane / 4;

  const staged = (src: 'k' | 'v'): StagedRowsVec4 => ({
    dest: 'Ks',
    vectorDest: true,
    src,
    width: src === 'k' ? c.d : c.dv,
    destStride: src === 'k' ? st.k : st.v,
    threads,
    wide: c.wideLoads,
    rows: c.tile,
    tokenStart: 'sq.start',
    heads: 'p.kvHeads',
    head: 'g',
    first: 'k0',
    end: 'pos + 1',
  });
  // V's values named apart from K's staging (f, not e).
  const values = prefetchedStagingSetsWgsl(threads, [stageRowsVec4Set(staged('v'), 'f')]);
  // S = Q·Kᵀ for the subgroup's keys of the tile, all its fragments together (independent
  // accumulators hide the latency), stored to its columns of Ss.
  const sf = fragmentGrid('sf', fragments, keyFrags);
  const scores = [
    ...sf.flat().map((f) => `      var ${f} = ${result}();`),
    ...range(c.d / K).flatMap((kk) =>
      range(keyFrags).flatMap((j) => [
        `      { let kf = subgroupMatrixLoad<${right}, col_major>(&Ks, (sgc * ${keyFrags}u + ${j}u) * ${u(N * st.k)}u + ${u(kk * K)}u, ${u(st.k)}u);`,
        ...range(fragments).map(
          (r) =>
            `        ${sf[r]?.[j]} = subgroupMatrixMultiplyAccumulate(${qf[r]?.[kk]}, kf, ${sf[r]?.[j]});`,
        ),
        '      }',
      ]),
    ),
    ...range(fragments).flatMap((r) =>
      range(keyFrags).map(
        (j) =>
          `      subgroupMatrixStore<row_major>(&Ss, ${u(r * M * st.s)}u + sgc * ${u(keys)}u + ${u(j * N)}u, ${sf[r]?.[j]}, ${u(st.s)}u);`,
      ),
    ),
  ].join('\n');
  const fold = (v: string, op: (a: string, b: string) => string) => shuffleFoldWgsl(v, lanesPerRow, op, rows);

  // This lane's keys of the subgroup's slice, four per vector: the vector's index in a row.
  const keyVectors = range(groups)
    .map((j) => `      let jv${j} = sgc * ${keys / 4}u + part * ${groups}u + ${j}u;`)
    .join('\n');
  const tileScores = range(groups)
    .map(
      (j) => `      { let s4 = Ss[row * ${u(st.s)}u + jv${j}] * scale2;
${range(4)
  .map(
    (i) =>
      `        x${4 * j + i} = select(${MASKED}, s4.${COMPONENTS[i]}, k0 + i32(4u * jv${j} + ${i}u) <= pos);`,
  )
  .join('\n')}
      }`,
    )
    .join('\n');
  const probabilities = range(groups)
    .map(
      (j) => `      {
${range(4)
  .map(
    (i) =>
      `        let pr${i} = select(0.0, exp2(x${4 * j + i} - m), x${4 * j + i} > ${MASKED}); l += pr${i};`,
  )
  .join('\n')}
        Ps[row * ${u(st.p)}u + jv${j}] = vec4<f16>(vec4<f32>(pr0, pr1, pr2, pr3));
      }`,
    )
    .join('\n');

  const products = range(c.tile / K)
    .map((kc) => {
      const lines = range(fragments).map(
        (r) =>
          `      let pf${r} = subgroupMatrixLoad<${left}, row_major>(&Ps, ${u(r * M * st.p + kc * K)}u, ${u(st.p)}u);`,
      );
      for (let n = 0; n < columns / N; n++) {
        lines.push(
          `      { let vf = subgroupMatrixLoad<${right}, row_major>(&Ks, ${u(kc * K * st.v)}u + sgc * ${u(columns)}u + ${u(n * N)}u, ${u(st.v)}u);`,
          ...range(fragments).map(
            (r) => `        ${of[r]?.[n]} = subgroupMatrixMultiplyAccumulate(pf${r}, vf, ${of[r]?.[n]});`,
          ),
          '      }',
        );
      }
      return `      {\n${lines.join('\n')}\n      }`;
    })
    .join('\n');

  // The accumulators reach the lanes through the subgroup's columns of Ss, `keys` columns at a time:
  // to be rescaled by RowScale (then loaded back), or at the end to be written out.
  const chunkFrags = Math.min(keyFrags, columns / N);
  const width = chunkFrags * N;
  const throughScores = (indent: string, lanes: (chunk: number) => string, back: boolean): string =>
    range(columns / N / chunkFrags)
      .map((chunk) => {
        const frags = range(chunkFrags).map((f) => [chunk * chunkFrags + f, f] as const);
        const at = (r: number, f: number) => `${u(r * M * st.s)}u + sgc * ${u(keys)}u + ${u(f * N)}u`;
        return [
          ...range(fragments).flatMap((r) =>
            frags.map(
              ([n, f]) => `subgroupMatrixStore<row_major>(&Ss, ${at(r, f)}, ${of[r]?.[n]}, ${u(st.s)}u);`,
            ),
          ),
          'workgroupBarrier();',
          // Narrower subgroups than built for repeat the last one's columns: one of them does the work.
          `if (sg < SUBGROUPS) {\n${lanes(chunk)}\n${indent}}`,
          'workgroupBarrier();',
          ...(back
            ? range(fragments).flatMap((r) =>
                frags.map(
                  ([n, f]) =>
                    `${of[r]?.[n]} = subgroupMatrixLoad<${result}, row_major>(&Ss, ${at(r, f)}, ${u(st.s)}u);`,
                ),
              )
            : []),
        ]
          .map((line) => `${indent}${line}`)
          .join('\n');
      })
      .join('\n');
  const rescale = throughScores(
    '        ',
    () => `          for (var e = lane; e < ${u(rows * width)}u; e += ${c.subgroupSize}u) {
            let at = (e / ${u(width)}u) * ${u(st.s)}u + sg * ${u(keys)}u + e % ${u(width)}u;
            Ss[at] *= RowScale[e / ${u(width)}u];
          }`,
    true,
  );
  const writeOut = throughScores(
    '  ',
    (chunk) => `    for (var e = lane; e < ${u(rows * width)}u; e += ${c.subgroupSize}u) {
      let r = e / ${u(width)}u;
      if (r < GROUP) {
        o[(firstRow + r) * ${u(c.dv)}u + sg * ${u(columns)}u + ${u(chunk * width)}u + e % ${u(width)}u] =
          vec4<f16>(Ss[r * ${u(st.s)}u + sg * ${u(keys)}u + e % ${u(width)}u] * RowScale[r]);
      }
    }`,
    false,
  );

  return `${enables({ subgroupMatrix: true })}
${c.pinSubgroupSize ? 'enable subgroup_size_control;' : ''}
${paramsStruct(SELECTED_PARAMS)}
@group(0) @binding(0) var<storage, read> q: array<vec4<f16>>;
@group(0) @binding(1) var<storage, read> k: array<${rowVectorType(c.wideLoads)}>;
@group(0) @binding(2) var<storage, read> v: array<${rowVectorType(c.wideLoads)}>;
@group(0) @binding(3) var<storage, read> selected: array<i32>;
@group(0) @binding(4) var<storage, read> tables: array<u32>;
@group(0) @binding(5) var<storage, read_write> o: array<vec4<f16>>;
@group(0) @binding(6) var<storage, read_write> lse: array<f32>;
@group(0) @binding(7) var<uniform> p: Params;

const TOPN = ${c.topN}u;
const GROUP = ${c.group}u;
const ROWS = ${rows}u;
const TILE = ${c.tile}u;
const SUBGROUPS = ${subgroups}u;
const LOG2E = 1.4426950408889634;

// The group's query rows, then each tile's keys, then its values.
var<workgroup> Ks: array<vec4<f16>, ${u(stagingElements(c))}>;
// A tile's scores, each subgroup's N columns; also where the accumulators are rescaled and written out.
var<workgroup> Ss: array<vec4<f32>, ${u(rows * st.s)}>;
var<workgroup> Ps: array<vec4<f16>, ${u(rows * st.p)}>;
// Each subgroup's part of a per-row statistic: a tile's max (base 2), at the end the row's sum.
var<workgroup> RowPart: array<f32, ${subgroups * rows}>;
// Each row's factor: the rescale of its accumulator in a tile, at the end 1 / its sum.
var<workgroup> RowScale: array<f32, ${rows}>;
// Whether some row's accumulator needs rescaling in this tile (a whole 16-byte unit).
var<workgroup> rescaleFlag: array<u32, 4>;

${NSA_SEQUENCE_WGSL}

${WORKGROUP_INDEX_WGSL}

@compute @workgroup_size(${threads})${c.pinSubgroupSize ? ` @subgroup_size(${c.subgroupSize})` : ''}
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) li: u32, @builtin(subgroup_id) sg: u32,
        @builtin(subgroup_invocation_id) lane: u32) {
${tokenOfWorkgroupWgsl(c)}
  // Narrower subgroups than built for would add subgroups: they repeat the last one's work.
  let sgc = min(sg, SUBGROUPS - 1u);
  // This lane's row, and its part of the subgroup's N keys of each tile.
  let row = lane % ROWS;
  let part = lane / ROWS;
  let scale2 = p.scale * LOG2E;
  ${stageRowsVec4Wgsl({ dest: 'Ks', src: 'q', width: c.d, destStride: st.k, threads, vectorDest: true, ...groupRowsOf(rows) })}
  workgroupBarrier();
${loadFragmentsWgsl(c.matrix, qf, 'Ks', st.k, undefined, 4)}
  if (li == 0u) { rescaleFlag[0] = 0u; }
  // This row's lazy max (base 2, the same in every lane of the row) and this lane's part of its sum.
  var m = ${MASKED};
  var l = 0.0;
${of
  .flat()
  .map((f) => `  var ${f} = ${result}();`)
  .join('\n')}
${values.declarations}
${selectedKeyTilesLoopWgsl(c)}
      // The last tile's products (and at first the query fragments' loads) are done with Ks.
      workgroupBarrier();
      ${stageRowsVec4Wgsl(staged('k'))}
      workgroupBarrier();
${scores}
      ${values.loads}
      workgroupBarrier();
${keyVectors}
${range(perLane)
  .map((k) => `      var x${k} = ${MASKED};`)
  .join('\n')}
${tileScores}
      var tileMax = ${range(perLane)
        .map((k) => `x${k}`)
        .reduce((a, b) => `max(${a}, ${b})`)};
      ${fold('tileMax', (a, b) => `max(${a}, ${b})`)}
      if (part == 0u) { RowPart[sgc * ROWS + row] = tileMax; }
      workgroupBarrier();
      for (var s = 0u; s < SUBGROUPS; s++) { tileMax = max(tileMax, RowPart[s * ROWS + row]); }
      var alpha = 1.0;
      if (tileMax > m + ${FLASH_LAZY_RESCALE.toFixed(1)}) {
        alpha = exp2(m - tileMax);
        // A row that saw keys before holds them in its accumulator, which must follow its max.
        if (m > ${MASKED}) { rescaleFlag[0] = 1u; }
        m = tileMax;
        l *= alpha;
      }
      if (sgc == 0u && part == 0u) { RowScale[row] = alpha; }
${probabilities}
      ${values.stores}
      // A full barrier before the uniform load (see core's flash forward).
      workgroupBarrier();
      if (workgroupUniformLoad(&rescaleFlag[0]) != 0u) {
${rescale}
        if (li == 0u) { rescaleFlag[0] = 0u; }
      }
${products}
    }
  }
  // Shuffles need the whole subgroup, so lanes that saw nothing take part with l = 0.
  ${fold('l', (a, b) => `${a} + ${b}`)}
  if (part == 0u) { RowPart[sgc * ROWS + row] = l; }
  workgroupBarrier();
  l = 0.0;
  for (var s = 0u; s < SUBGROUPS; s++) { l += RowPart[s * ROWS + row]; }
  let firstRow = t * p.heads + g * GROUP;
  if (sg == 0u && part == 0u) {
    // Every token selects its own block, so the sum is positive; the guard keeps a corrupt selection finite.
    RowScale[row] = select(0.0, 1.0 / l, l > 0.0);
    if (row < GROUP) { lse[firstRow + row] = (m + log2(l)) * ${Math.LN2}; }
  }
${writeOut}
}
`;
}

/**
 * The selected attention's tensor-core dQ kernel with its work split by role, as core's flash dQ
 * pass splits it: twice the subgroups of selectedDqMatrixWgsl over the same (token, KV head).
 * Subgroup `slice + SLICES · role` takes key slice `slice` (N keys) of each tile; role 0 holds the
 * group's Q fragments and computes S = Q·Kᵀ, role 1 holds dO's and computes dP = dO·Vᵀ; all
 * invocations then turn the tile into dS = P ∘ (dP − delta), and each subgroup accumulates its own
 * d / (2 · SLICES) columns of dQ += dS·K. Every subgroup runs the same code: the role only moves
 * offsets into arrays that hold both roles' operands (q then dO, K then V, S then dP), because a
 * branch on the subgroup would put the matrix operations and barriers out of uniform control flow.
 * Hence d = dv.
 *
 * Why: the plain kernel holds Q and dO (d/8 fragments a row fragment, 64 registers per lane at
 * d = 128) in every subgroup next to its share of dQ; here a subgroup holds half of them, and with
 * twice the invocations the tile's K and V are staged in one step.
 */
import {
  fragmentGridNames,
  prefetchedStagingSetsWgsl,
  stageRowsVec4Set,
  subgroupMainWgsl,
  subgroupMatrixTypes,
  unrolledStagingSetsWgsl,
} from '@webattn/core';
import { groupRowsOf } from '../matrix.wgsl.js';
import {
  dsKeyProductsWgsl,
  header,
  keyTileRows,
  roleSliceWgsl,
  rowBindings,
  rowStatsArraysWgsl,
  rowStatsSet,
  selectedBackwardMatrixUnsupported,
  split,
  strides,
  writeFragmentsWgsl,
} from './selected-backward-matrix.wgsl.js';
import {
  type SelectedMatrixConfig,
  selectedKeyTilesLoopWgsl,
  selectedPrefetchedKeyTilesLoopWgsl,
  tokenOfWorkgroupWgsl,
} from './selected-matrix.wgsl.js';

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/** How the work divides: key slices, subgroups (two roles of them), invocations, dQ columns each. */
function rolesSplit(c: SelectedMatrixConfig) {
  const { fragments, rows, subgroups: slices } = split(c);
  const subgroups = 2 * slices;
  return { fragments, rows, slices, subgroups, threads: subgroups * c.subgroupSize, cols: c.d / subgroups };
}

/** Elements of each role's half of the operand array: the group's rows, or a tile of keys. */
function halfElements(c: SelectedMatrixConfig): number {
  return Math.max(c.tile, rolesSplit(c).rows) * strides(c).k;
}

/** Why a shape cannot use the role-split dQ kernel, or undefined when it can. */
export function selectedDqRolesUnsupported(c: SelectedMatrixConfig): string | undefined {
  const { N } = c.matrix;
  const { rows, subgroups } = rolesSplit(c);
  const base = selectedBackwardMatrixUnsupported(c);
  if (base) return base;
  if (c.d !== c.dv) return `d = ${c.d} and dv = ${c.dv} differ`;
  if ((c.d / N) % subgroups !== 0) return `d = ${c.d} does not split into ${subgroups} slices of N = ${N}`;
  // dS takes the value tile's place once dP is taken.
  if (rows * strides(c).p > halfElements(c)) return `dS of ${rows} rows does not fit the value tile's place`;
  return undefined;
}

/** Workgroup memory of the role-split dQ kernel in bytes: operands, S then dP (f32), statistics. */
export function selectedDqRolesSharedBytes(c: SelectedMatrixConfig): number {
  const { rows } = rolesSplit(c);
  return 2 * halfElements(c) * 2 + 2 * rows * strides(c).s * 4 + rows * 8;
}

/** WGSL of the role-split dQ kernel. Bindings: q, k, v, selected, tables, dout, stats, dq. */
export function selectedDqRolesMatrixWgsl(c: SelectedMatrixConfig): string {
  const why = selectedDqRolesUnsupported(c);
  if (why) throw new Error(`selectedDqRolesMatrixWgsl: ${why}`);
  const { M, N, K } = c.matrix;
  const { left, right, result } = subgroupMatrixTypes(c.matrix);
  const { fragments, rows, slices, subgroups, threads, cols } = rolesSplit(c);
  const st = strides(c);
  const half = halfElements(c);
  const scoreHalf = rows * st.s;
  const held = fragmentGridNames('hf', fragments, c.d / K);
  const sf = range(fragments).map((r) => `sf${r}`);
  const dq = range(fragments).map((r) => range(cols / N).map((n) => `dq${r}_${n}`));
  const groupRows = { ...groupRowsOf(rows), wide: c.wideLoads };
  const ownRows = unrolledStagingSetsWgsl(threads, [
    stageRowsVec4Set({ dest: 'X', src: 'q', width: c.d, destStride: st.k, threads, ...groupRows }, 'eq'),
    stageRowsVec4Set(
      { dest: 'X', src: 'dout', width: c.d, destStride: st.k, destOffset: half, threads, ...groupRows },
      'eo',
    ),
    rowStatsSet(rows),
  ]);
  const keyRows = keyTileRows(c, threads, 'pos + 1');
  // K and V in one step: every load issued before the first store; with prefetchTiles a tile ahead.
  const keyTileSets = [
    stageRowsVec4Set({ dest: 'X', src: 'k', ...keyRows }, 'ek'),
    stageRowsVec4Set({ dest: 'X', src: 'v', destOffset: half, ...keyRows }, 'ev'),
  ];
  const tilesLoop = c.prefetchTiles
    ? selectedPrefetchedKeyTilesLoopWgsl(prefetchedStagingSetsWgsl(threads, keyTileSets))
    : `${selectedKeyTilesLoopWgsl(c)}
      workgroupBarrier();
      ${unrolledStagingSetsWgsl(threads, keyTileSets)}
      workgroupBarrier();`;
  // Role 0: S = Q·Kᵀ, role 1: dP = dO·Vᵀ, for the slice's N keys, into the role's half of SD.
  const scores = [
    ...sf.map((f) => `      var ${f} = ${result}();`),
    ...range(c.d / K).flatMap((kk) => [
      `      { let kf = subgroupMatrixLoad<${right}, col_major>(&X, role * ${half}u + slice * ${N * st.k}u + ${kk * K}u, ${st.k}u);`,
      ...sf.map((f, r) => `        ${f} = subgroupMatrixMultiplyAccumulate(${held[r]?.[kk]}, kf, ${f});`),
      '      }',
    ]),
    ...sf.map(
      (f, r) =>
        `      subgroupMatrixStore<row_major>(&SD, role * ${scoreHalf}u + ${r * M * st.s}u + slice * ${N}u, ${f}, ${st.s}u);`,
    ),
  ].join('\n');
  // The subgroup's dQ columns += dS·K; dS sits in V's place.
  const updates = dsKeyProductsWgsl(c, { ds: 'X', dsOffset: half, keys: 'X', cols, dq });
  const b = rowBindings(c);
  return `${header(c, [b.q, b.k, b.v, 'read> selected: array<i32>', 'read> tables: array<u32>', b.dout, 'read> stats: array<f32>', 'read_write> dq: array<f16>'])}
const SLICES = ${slices}u;
// Both roles' operands: the group's q then dO rows (until held), then each tile's K then V rows;
// once a tile's dP is taken, its dS [row][key] (row stride ${st.p}) in V's place.
var<workgroup> X: array<f16, ${2 * half}>;
// S then dP, [row][key]; at the end each subgroup's way out for its dQ fragments.
var<workgroup> SD: array<f32, ${2 * scoreHalf}>;
${rowStatsArraysWgsl(rows)}

${subgroupMainWgsl(threads, c)}
${tokenOfWorkgroupWgsl(c)}
${roleSliceWgsl(subgroups)}
  let role = sgc / SLICES;
  ${ownRows}
  workgroupBarrier();
${held
  .flatMap((frags, r) =>
    frags.map(
      (f, kk) =>
        `  let ${f} = subgroupMatrixLoad<${left}, row_major>(&X, role * ${half}u + ${r * M * st.k + kk * K}u, ${st.k}u);`,
    ),
  )
  .join('\n')}
${dq
  .flat()
  .map((name) => `  var ${name} = ${result}();`)
  .join('\n')}
  let scale2 = p.scale * LOG2E;
${tilesLoop}
${scores}
      workgroupBarrier();
      for (var e = li; e < ${rows * c.tile}u; e += ${threads}u) {
        let r = e / TILE;
        let col = e % TILE;
        let at = r * ${st.s}u + col;
        let prob = select(0.0, exp2(SD[at] * scale2 - Lse2[r]), k0 + i32(col) <= pos);
        X[${half}u + r * ${st.p}u + col] = f16(prob * (SD[${scoreHalf}u + at] - Delta[r]));
      }
      workgroupBarrier();
${updates}
    }
  }
${writeFragmentsWgsl(
  c,
  dq.flatMap((f, r) => f.map((name, n) => ({ name, row: `${r * M}u`, col: `sgc * ${cols}u + ${n * N}u` }))),
  (row, col) => `dq[(t * p.heads + g * GROUP + ${row}) * ${c.d}u + ${col}]`,
  (row) => `${row} < GROUP && sg < ${subgroups}u`,
  'p.scale',
  { array: 'SD', stride: N },
)}
}
`;
}

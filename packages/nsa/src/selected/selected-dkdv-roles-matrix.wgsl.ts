/**
 * The selected attention's tensor-core dK and dV in one kernel, its work split by role as core's
 * flash dK/dV pass splits it: over the same (chunk of a block's token list, key tile) as the
 * separate kernels, each token's S and dP are computed once for both gradients. Subgroup
 * `slice + SLICES · (role + 2 · part)` owns key slice `slice` (N keys) of the tile; for each token
 * of the chunk, role 0 computes S = Q·Kᵀ and accumulates dV += Pᵀ·dO, role 1 computes dP = dO·Vᵀ
 * and accumulates dK += dSᵀ·Q. `columnSplits` splits each role's work again over that many
 * subgroups (`part`): each computes its share of d's steps of the slice's S or dP (the parts are
 * added where P and dS are formed) and holds its share of the gradient's columns. Every subgroup
 * runs the same code: the role and part only move offsets into arrays that hold both roles'
 * operands (K then V, q then dO, S then dP, P then dS), because a branch on the subgroup would put
 * the matrix operations and barriers out of uniform control flow. Hence d = dv.
 *
 * Why: the separate dK and dV kernels compute S twice and walk every token list twice; dK's
 * products are S, dP and dSᵀ·Q, dV's S and Pᵀ·dO, five where this kernel does four.
 *
 * The key tile is the same for every token of the chunk, so each subgroup loads its K or V
 * fragments once, after the tile is staged, and holds them (16 registers per lane at d = 128 over
 * two column splits, 32 over one); the tile's array then takes each token's q and dO rows. At
 * d = 128 over two column splits that takes 32-key tiles from 37.1 to 28.6 KiB of workgroup
 * memory and 16-key tiles to 15.1, under the H200's first step (core's workgroup-memory-steps.ts).
 */
import {
  stageRowsVec4Set,
  subgroupMainWgsl,
  subgroupMatrixTypes,
  unrolledStagingSetsWgsl,
} from '@webattn/core';
import { groupRowsOf } from '../matrix.wgsl.js';
import {
  CHUNK_OF_LIST_WGSL,
  chunkTokensLoopWgsl,
  header,
  keyTileRows,
  roleSliceWgsl,
  rowBindings,
  rowStatsArraysWgsl,
  rowStatsSet,
  selectedBackwardMatrixUnsupported,
  split,
  strides,
} from './selected-backward-matrix.wgsl.js';
import type { SelectedMatrixConfig } from './selected-matrix.wgsl.js';

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/** The fused kernel's shape: a selected backward shape and its column splits per role. */
export interface SelectedDkDvRolesConfig extends SelectedMatrixConfig {
  columnSplits: number;
}

/** How the work divides: key slices, subgroups (two roles, each split by columns), invocations, columns each. */
function rolesSplit(c: SelectedDkDvRolesConfig) {
  const { fragments, rows, subgroups: slices } = split(c);
  const subgroups = 2 * slices * c.columnSplits;
  return {
    fragments,
    rows,
    slices,
    subgroups,
    threads: subgroups * c.subgroupSize,
    cols: c.d / c.columnSplits,
    steps: c.d / c.matrix.K / c.columnSplits,
  };
}

/** Invocations per workgroup of the fused kernel. */
export function selectedDkDvRolesInvocations(c: SelectedDkDvRolesConfig): number {
  return rolesSplit(c).threads;
}

/** Why a shape cannot use the fused dK/dV kernel, or undefined when it can. */
export function selectedDkDvRolesUnsupported(c: SelectedDkDvRolesConfig): string | undefined {
  const base = selectedBackwardMatrixUnsupported(c);
  if (base) return base;
  if (c.d !== c.dv) return `d = ${c.d} and dv = ${c.dv} differ`;
  if (!Number.isInteger(c.columnSplits) || c.columnSplits < 1)
    return `columnSplits ${c.columnSplits} is not a positive integer`;
  if (c.d % (c.columnSplits * c.matrix.N) !== 0 || c.d % (c.columnSplits * c.matrix.K) !== 0)
    return `d = ${c.d} does not split into ${c.columnSplits} parts of N = ${c.matrix.N}`;
  return undefined;
}

/**
 * Whether the kernel stages its key tile's K and V one after the other through one tile's place
 * (each role loading its fragments in turn), rather than side by side: where the tile has more rows
 * than the group, so that the operand array needs only a tile's rows, or q's and dO's. At d = 128
 * that takes 32-key tiles from 28.6 to 20.1 KiB (two workgroups per SM on the H200, not one) and
 * 64-key tiles from 48.3 to 38.6 KiB (within the device's 48 KiB).
 */
function stagesKeysApart(c: SelectedDkDvRolesConfig): boolean {
  return c.tile > rolesSplit(c).rows;
}

/** f16 elements of the operand array: K and V (together or in turn), then each token's q and dO. */
function operandElements(c: SelectedDkDvRolesConfig): number {
  const { rows } = rolesSplit(c);
  const { k } = strides(c);
  return stagesKeysApart(c) ? Math.max(c.tile, 2 * rows) * k : 2 * Math.max(c.tile, rows) * k;
}

/**
 * Workgroup memory of the fused kernel in bytes: K and V until held, then q and dO; each part's S
 * and dP, P and dS, statistics.
 */
export function selectedDkDvRolesSharedBytes(c: SelectedDkDvRolesConfig): number {
  const { rows } = rolesSplit(c);
  const st = strides(c);
  return operandElements(c) * 2 + 2 * c.columnSplits * rows * st.s * 4 + 2 * rows * st.p * 2 + rows * 8;
}

/**
 * WGSL of the fused kernel: each chunk's part of the tile's dV and dK to `partials` (f32), as
 * rows of 2·d columns (dV's, then dK's unscaled), for selectedKeysSumWgsl(c, 'dkdv'). Bindings: q,
 * k, v, inverse, tables, dout, stats, partials.
 */
export function selectedDkDvRolesMatrixWgsl(c: SelectedDkDvRolesConfig): string {
  const why = selectedDkDvRolesUnsupported(c);
  if (why) throw new Error(`selectedDkDvRolesMatrixWgsl: ${why}`);
  const { M, N, K } = c.matrix;
  const { left, right, result } = subgroupMatrixTypes(c.matrix);
  const { fragments, rows, slices, subgroups, threads, cols, steps } = rolesSplit(c);
  const st = strides(c);
  const tileHalf = c.tile * st.k;
  const rowsHalf = rows * st.k;
  const scoreSection = rows * st.s;
  const probHalf = rows * st.p;
  const sf = range(fragments).map((r) => `sf${r}`);
  const acc = range(cols / N).map((n) => `acc${n}`);
  // This subgroup's K (role 0) or V (role 1) fragments of its slice and part, one per d-step.
  const held = range(steps).map((kk) => `kv${kk}`);
  const keyRows = keyTileRows(c, threads, 'len');
  const groupRows = { width: c.d, destStride: st.k, threads, wide: c.wideLoads, ...groupRowsOf(rows) };
  // The tile's K and V, and each token's q, dO and statistics: every load of a step before its
  // first store.
  const apart = stagesKeysApart(c);
  const stageK = stageRowsVec4Set({ dest: 'X', src: 'k', ...keyRows }, 'ek');
  const stageV = stageRowsVec4Set(
    { dest: 'X', src: 'v', ...(!apart && { destOffset: tileHalf }), ...keyRows },
    'ev',
  );
  // This subgroup's held fragment for d-step kk, of the K or V rows staged at `offset`.
  const heldFragment = (kk: number, offset: string) =>
    `subgroupMatrixLoad<${right}, col_major>(&X, ${offset} + slice * ${N * st.k}u + part * ${steps * K}u + ${kk * K}u, ${st.k}u)`;
  // Each subgroup loads its fragments once: K and V staged side by side, or K, then V in its place.
  const heldFragments = apart
    ? `  ${unrolledStagingSetsWgsl(threads, [stageK])}
  workgroupBarrier();
${held.map((f) => `  var ${f} = ${right}();`).join('\n')}
  if (role == 0u) {
${held.map((f, kk) => `    ${f} = ${heldFragment(kk, '0u')};`).join('\n')}
  }
  workgroupBarrier();
  ${unrolledStagingSetsWgsl(threads, [stageV])}
  workgroupBarrier();
  if (role == 1u) {
${held.map((f, kk) => `    ${f} = ${heldFragment(kk, '0u')};`).join('\n')}
  }`
    : `  ${unrolledStagingSetsWgsl(threads, [stageK, stageV])}
  workgroupBarrier();
${held.map((f, kk) => `  let ${f} = ${heldFragment(kk, `role * ${tileHalf}u`)};`).join('\n')}`;
  const tokenRows = unrolledStagingSetsWgsl(threads, [
    stageRowsVec4Set({ dest: 'X', src: 'q', ...groupRows }, 'eq'),
    stageRowsVec4Set({ dest: 'X', src: 'dout', destOffset: rowsHalf, ...groupRows }, 'eo'),
    rowStatsSet(rows),
  ]);
  // Role 0: S = Q·Kᵀ, role 1: dP = dO·Vᵀ, for the slice's N keys, over the part's d-steps, into the
  // (role, part) section of SD.
  const scores = [
    ...sf.map((f) => `    var ${f} = ${result}();`),
    ...range(steps).flatMap((kk) => [
      `    { let kk = part * ${steps * K}u + ${kk * K}u;`,
      ...sf.map(
        (f, r) =>
          `      ${f} = subgroupMatrixMultiplyAccumulate(subgroupMatrixLoad<${left}, row_major>(&X, role * ${rowsHalf}u + ${r * M * st.k}u + kk, ${st.k}u), ${held[kk]}, ${f});`,
      ),
      '    }',
    ]),
    ...sf.map(
      (f, r) =>
        `    subgroupMatrixStore<row_major>(&SD, (role * ${c.columnSplits}u + part) * ${scoreSection}u + ${r * M * st.s}u + slice * ${N}u, ${f}, ${st.s}u);`,
    ),
  ].join('\n');
  const partSum = (role: number) =>
    range(c.columnSplits)
      .map((part) => `SD[${(role * c.columnSplits + part) * scoreSection}u + at]`)
      .join(' + ');
  // Role 0: the slice's dV += Pᵀ·dO; role 1: its dK += dSᵀ·Q; the part's columns.
  const updates = range(fragments)
    .map(
      (r) => `    {
      let lt = subgroupMatrixLoad<${left}, col_major>(&PD, role * ${probHalf}u + ${r * M * st.p}u + slice * ${N}u, ${st.p}u);
${acc
  .map(
    (name, n) =>
      `      ${name} = subgroupMatrixMultiplyAccumulate(lt, subgroupMatrixLoad<${right}, row_major>(&X, (1u - role) * ${rowsHalf}u + ${r * M * st.k + n * N}u + part * ${cols}u, ${st.k}u), ${name});`,
  )
  .join('\n')}
    }`,
    )
    .join('\n');
  const b = rowBindings(c);
  return `${header(c, [b.q, b.k, b.v, 'read> inverse: array<u32>', 'read> tables: array<u32>', b.dout, 'read> stats: array<f32>', 'read_write> partials: array<f32>'])}
const SLICES = ${slices}u;
// Both roles' operands: the tile's K and V rows (side by side or in turn) until each subgroup
// holds its fragments, then
// each token's q then dO rows; each part's S, then each part's dP (f32); P then dS (f16).
var<workgroup> X: array<f16, ${operandElements(c)}>;
var<workgroup> SD: array<f32, ${2 * c.columnSplits * scoreSection}>;
var<workgroup> PD: array<f16, ${2 * probHalf}>;
${rowStatsArraysWgsl(rows)}

${subgroupMainWgsl(threads, c)}
${CHUNK_OF_LIST_WGSL}
${roleSliceWgsl(subgroups)}
  let role = (sgc / SLICES) % 2u;
  let part = sgc / (2u * SLICES);
  let scale2 = p.scale * LOG2E;
${heldFragments}
${acc.map((name) => `  var ${name} = ${result}();`).join('\n')}
${chunkTokensLoopWgsl(c)}
    ${tokenRows}
    workgroupBarrier();
${scores}
    workgroupBarrier();
    for (var e = li; e < ${rows * c.tile}u; e += ${threads}u) {
      let r = e / TILE;
      let col = e % TILE;
      let key = k0 + i32(col);
      let at = r * ${st.s}u + col;
      let prob = select(0.0, exp2((${partSum(0)}) * scale2 - Lse2[r]), key <= pos && key < len);
      PD[r * ${st.p}u + col] = f16(prob);
      PD[${probHalf}u + r * ${st.p}u + col] = f16(prob * ((${partSum(1)}) - Delta[r]));
    }
    workgroupBarrier();
${updates}
  }
  // The chunk's part of the tile's dV and dK, f32, summed over the chunks in order (dK scaled) by
  // selectedKeysSumWgsl: [chunk][tile][key][dV's columns, then dK's].
  let out = ((chunk * tilesPerBlock + tile) * TILE + slice * ${N}u) * ${2 * c.d}u + role * ${c.d}u + part * ${cols}u;
${acc.map((name, n) => `  subgroupMatrixStore<row_major>(&partials, out + ${n * N}u, ${name}, ${2 * c.d}u);`).join('\n')}
}
`;
}

/**
 * The selected attention's tensor-core dK kernel with its work split by role, as the dQ kernel's
 * role split does it: twice the subgroups of selectedKeysMatrixWgsl(c, 'dk') over the same (chunk
 * of a block's token list, key tile). Subgroup `slice + SLICES · role` owns key slice `slice` (N
 * keys) of the tile; for each token of the chunk, role 0 computes S = Q·Kᵀ and role 1 dP = dO·Vᵀ
 * for the slice's keys, all invocations turn them into dS = P ∘ (dP − delta), and each subgroup
 * accumulates its half of d's columns of the slice's dK += dSᵀ·Q. Every subgroup runs the same
 * code: the role only moves offsets into arrays that hold both roles' operands (K then V, q then
 * dO, S then dP). Hence d = dv.
 *
 * Why: the plain kernel keeps d/16 accumulator fragments per subgroup (64 registers per lane at
 * d = 128) with two subgroups per workgroup at its 32-key tile; here a subgroup keeps half of them
 * and a workgroup runs four, K and V staged in one step.
 */
import { stageRowsVec4Set, unrolledStagingSetsWgsl } from '@webattn/core';
import { groupRowsOf, matrixTypes } from '../matrix.wgsl.js';
import {
  CHUNK_OF_LIST_WGSL,
  entry,
  header,
  rowStatsSet,
  selectedBackwardMatrixUnsupported,
  split,
  strides,
} from './selected-backward-matrix.wgsl.js';
import type { SelectedMatrixConfig } from './selected-matrix.wgsl.js';

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/** How the work divides: key slices, subgroups (two roles of them), invocations, dK columns each. */
function rolesSplit(c: SelectedMatrixConfig) {
  const { fragments, rows, subgroups: slices } = split(c);
  const subgroups = 2 * slices;
  return { fragments, rows, slices, subgroups, threads: subgroups * c.subgroupSize, cols: c.d / 2 };
}

/** Why a shape cannot use the role-split dK kernel, or undefined when it can. */
export function selectedDkRolesUnsupported(c: SelectedMatrixConfig): string | undefined {
  const base = selectedBackwardMatrixUnsupported(c);
  if (base) return base;
  if (c.d !== c.dv) return `d = ${c.d} and dv = ${c.dv} differ`;
  if (c.d % (2 * c.matrix.N) !== 0) return `d = ${c.d} does not split into two halves of N = ${c.matrix.N}`;
  return undefined;
}

/** Workgroup memory of the role-split dK kernel in bytes: K and V, q and dO, S and dP, dS, statistics. */
export function selectedDkRolesSharedBytes(c: SelectedMatrixConfig): number {
  const { rows } = rolesSplit(c);
  const st = strides(c);
  return 2 * c.tile * st.k * 2 + 2 * rows * st.k * 2 + 2 * rows * st.s * 4 + rows * st.p * 2 + rows * 8;
}

/**
 * WGSL of the role-split dK kernel: each chunk's part of the tile's dK to `partials` (f32) for
 * selectedKeysSumWgsl, as the plain kernel writes it. Bindings: q, k, v, inverse, tables, dout,
 * stats, partials.
 */
export function selectedDkRolesMatrixWgsl(c: SelectedMatrixConfig): string {
  const why = selectedDkRolesUnsupported(c);
  if (why) throw new Error(`selectedDkRolesMatrixWgsl: ${why}`);
  const { M, N, K } = c.matrix;
  const { left, right, result } = matrixTypes(c.matrix);
  const { fragments, rows, slices, subgroups, threads, cols } = rolesSplit(c);
  const st = strides(c);
  const tileHalf = c.tile * st.k;
  const rowsHalf = rows * st.k;
  const scoreHalf = rows * st.s;
  const sf = range(fragments).map((r) => `sf${r}`);
  const acc = range(cols / N).map((n) => `acc${n}`);
  const keyRows = {
    rows: c.tile,
    width: c.d,
    destStride: st.k,
    threads,
    tokenStart: 'sq.start',
    heads: 'p.kvHeads',
    head: 'g',
    first: 'k0',
    end: 'len',
  };
  const groupRows = { width: c.d, destStride: st.k, threads, ...groupRowsOf(rows) };
  // The tile's K and V, and each token's q, dO and statistics: every load of a step before its
  // first store.
  const keyTile = unrolledStagingSetsWgsl(threads, [
    stageRowsVec4Set({ dest: 'KV', src: 'k', ...keyRows }, 'ek'),
    stageRowsVec4Set({ dest: 'KV', src: 'v', destOffset: tileHalf, ...keyRows }, 'ev'),
  ]);
  const tokenRows = unrolledStagingSetsWgsl(threads, [
    stageRowsVec4Set({ dest: 'QO', src: 'q', ...groupRows }, 'eq'),
    stageRowsVec4Set({ dest: 'QO', src: 'dout', destOffset: rowsHalf, ...groupRows }, 'eo'),
    rowStatsSet(rows),
  ]);
  // Role 0: S = Q·Kᵀ, role 1: dP = dO·Vᵀ, for the slice's N keys, into the role's half of SD.
  const scores = [
    ...sf.map((f) => `      var ${f} = ${result}();`),
    ...range(c.d / K).flatMap((kk) => [
      `      { let kf = subgroupMatrixLoad<${right}, col_major>(&KV, role * ${tileHalf}u + slice * ${N * st.k}u + ${kk * K}u, ${st.k}u);`,
      ...sf.map(
        (f, r) =>
          `        ${f} = subgroupMatrixMultiplyAccumulate(subgroupMatrixLoad<${left}, row_major>(&QO, role * ${rowsHalf}u + ${r * M * st.k + kk * K}u, ${st.k}u), kf, ${f});`,
      ),
      '      }',
    ]),
    ...sf.map(
      (f, r) =>
        `      subgroupMatrixStore<row_major>(&SD, role * ${scoreHalf}u + ${r * M * st.s}u + slice * ${N}u, ${f}, ${st.s}u);`,
    ),
  ].join('\n');
  // The slice's dK, this subgroup's half of d's columns, += dSᵀ·Q.
  const updates = range(fragments)
    .map(
      (r) => `      {
        let dst = subgroupMatrixLoad<${left}, col_major>(&Ds, ${r * M * st.p}u + slice * ${N}u, ${st.p}u);
${acc
  .map(
    (name, n) =>
      `        ${name} = subgroupMatrixMultiplyAccumulate(dst, subgroupMatrixLoad<${right}, row_major>(&QO, role * ${cols}u + ${r * M * st.k + n * N}u, ${st.k}u), ${name});`,
  )
  .join('\n')}
      }`,
    )
    .join('\n');
  return `${header(c, ['read> q: array<vec4<f16>>', 'read> k: array<vec4<f16>>', 'read> v: array<vec4<f16>>', 'read> inverse: array<u32>', 'read> tables: array<u32>', 'read> dout: array<vec4<f16>>', 'read> stats: array<f32>', 'read_write> partials: array<f32>'])}
const SLICES = ${slices}u;
// Both roles' operands: the tile's K then V rows; the token's q then dO rows; S then dP (f32).
var<workgroup> KV: array<f16, ${2 * tileHalf}>;
var<workgroup> QO: array<f16, ${2 * rowsHalf}>;
var<workgroup> SD: array<f32, ${2 * scoreHalf}>;
// dS of the token's rows against the tile's keys, f16.
var<workgroup> Ds: array<f16, ${rows * st.p}>;
var<workgroup> Lse2: array<f32, ${rows}>;
var<workgroup> Delta: array<f32, ${rows}>;

${entry(c, threads)}
${CHUNK_OF_LIST_WGSL}
  // Narrower subgroups than built for would add subgroups: they repeat the last one's work.
  let sgc = min(sg, ${subgroups - 1}u);
  let slice = sgc % SLICES;
  let role = sgc / SLICES;
  let scale2 = p.scale * LOG2E;
  ${keyTile}
${acc.map((name) => `  var ${name} = ${result}();`).join('\n')}
  // The chunk's tokens that selected the block, in order, from the inverted selection: read-only
  // storage at uniform addresses, so the loop is uniform. Tokens before k0 cannot see the tile's keys.
  for (var m = mFirst; m < mEnd; m++) {
    let pos = i32(inverse[p.inverseEntries + m]);
    if (pos < k0) { continue; }
    workgroupBarrier();
    let t = sq.start + u32(pos);
    ${tokenRows}
    workgroupBarrier();
${scores}
    workgroupBarrier();
    for (var e = li; e < ${rows * c.tile}u; e += ${threads}u) {
      let r = e / TILE;
      let col = e % TILE;
      let key = k0 + i32(col);
      let at = r * ${st.s}u + col;
      let prob = select(0.0, exp2(SD[at] * scale2 - Lse2[r]), key <= pos && key < len);
      Ds[r * ${st.p}u + col] = f16(prob * (SD[${scoreHalf}u + at] - Delta[r]));
    }
    workgroupBarrier();
${updates}
  }
  // The chunk's part of the tile's dK, f32, summed over the chunks in order (and scaled) by
  // selectedKeysSumWgsl: [chunk][tile][key][column].
  let out = ((chunk * tilesPerBlock + tile) * TILE + slice * ${N}u) * ${c.d}u + role * ${cols}u;
${acc.map((name, n) => `  subgroupMatrixStore<row_major>(&partials, out + ${n * N}u, ${name}, ${c.d}u);`).join('\n')}
}
`;
}

/**
 * The tensor-core dK/dV pass with its work split by role: twice the subgroups of the plain kernel
 * (flashDkDvMatrixWgsl) over the same key rows, so that each subgroup holds half the accumulators.
 * Subgroup `half + 2 · role` owns key rows `half · M ..` of the workgroup; role 0 computes the
 * scores S = K·Qᵀ and accumulates dV += P·dO, role 1 computes dP = V·dOᵀ and accumulates
 * dK += dS·Q. Every subgroup runs the same code: the role only moves offsets into arrays that hold
 * both roles' operands (K and V, q and dO, S and dP, P and dS), because a branch on the subgroup
 * would put the matrix operations and barriers out of uniform control flow. Hence d = dv.
 *
 * Why: the plain kernel keeps 2 · d/16 accumulator fragments per subgroup (128 registers per lane at
 * d = 128) next to its operands, and runs two subgroups per workgroup; its time on the H200 went to
 * waiting on memory with few warps to hide it. Here a subgroup keeps d/16 and a workgroup runs four.
 *
 * With half the accumulators, a subgroup also has the registers to hold its own rows (K for role 0,
 * V for role 1: d/16 left fragments, 32 registers per lane at d = 128), so each score
 * multiply-accumulate loads one operand from workgroup memory instead of two. The own rows are
 * staged once through the query tile's array, which the first tile then overwrites, so the kernel
 * declares no array for them.
 *
 * `columnSplits` splits each role's work again, by columns, over that many subgroups: each computes
 * its part of the query tile's scores and holds its part of d's accumulator columns (subgroup
 * `half + 2 · role + 4 · part`), so a subgroup holds fewer registers and a workgroup runs more of
 * them.
 *
 * Its arrays may hold vectors (`vectorStaging`, `vectorScores`, as the plain kernels'): QO as
 * `vec4<f16>`, each staged load stored whole; SD, PD and the query statistics as vectors, each
 * lane reading S, dP, lse and delta and writing P or dS for four consecutive queries at once. Its
 * rows of SD, 36 or 20 words apart (tile + 4), put the 16-byte reads of eight lanes on different
 * banks.
 */
import { WORKGROUP_INDEX_WGSL } from '../dispatch.js';
import {
  COMPONENTS,
  type PrefetchedStaging,
  prefetchedStagingSetsWgsl,
  type StagingSet,
  unrolledStagingSetsWgsl,
} from '../wgsl.js';
import {
  dkDvHeaderWgsl,
  type MatrixBackwardConfig,
  ownRows,
  rowStatisticsArraysWgsl,
  rowStatisticsSet,
  scratchElements,
  scratchScalarWgsl,
  strides,
  tileRows,
  vectorUnits,
} from './backward-matrix.wgsl.js';
import {
  heldInTurnsWgsl,
  keyTileWgsl,
  openOrMaskedWgsl,
  SEQUENCE_WGSL,
  stageRowsVec4Set,
} from './common.wgsl.js';
import {
  matrixEntryPoint,
  matrixShape,
  fragmentNames as names,
  rowGroupsOf,
  rowGroupsUnsupported,
} from './matrix-kernel.js';

/**
 * The role-split kernel's parameters: a backward shape, and into how many parts each role's work is
 * split by columns (of the query tile for the scores, of d for the accumulators), one subgroup each.
 */
export interface RolesConfig extends MatrixBackwardConfig {
  columnSplits: number;
  /**
   * Whether each tile of the other side's rows is loaded while the one before it is worked on:
   * its loads issued right after that tile is staged, held in registers through its products,
   * stored when its own turn comes, so that their latency passes during that work instead of
   * stalling the workgroup at every tile (on the H200 at n = 16384, d = 128: dK/dV 105.3 -> 87.5
   * ms, dQ 63.2 -> 51.4, the same bits; with two or four workgroups per SM, little else covers it).
   */
  prefetchTiles?: boolean;
  /**
   * Whether the dK/dV kernel's column parts split each score's d-steps instead of the query tile's
   * columns: every part computes a partial S or dP over its share of d for the whole tile, the
   * partials added (in part order) where P and dS are formed, and holds its share of the own rows'
   * fragments. So a 16-key tile splits over two parts, where splitting its columns would leave a
   * part narrower than a fragment: at d = 128 about 22 KiB of workgroup memory against 31 for
   * 32-key tiles over two column parts, under the H200's second step (workgroup-memory-steps.ts).
   */
  splitSteps?: boolean;
  /**
   * Groups of the kernel's own rows (1 unless given): each group has the role-split kernel's
   * subgroups and rows of its own (its own rows staged, held, scored and written apart), and all
   * share each staged tile of the other side, as the forward's row groups share theirs
   * (MatrixForwardConfig.rowGroups): the tile's loads and barriers serve that many times the rows.
   */
  rowGroups?: number;
}

/** Why a shape cannot use the role-split kernel, or undefined when it can. */
export function matrixDkDvRolesUnsupported(c: RolesConfig): string | undefined {
  const { M, N } = c.matrix;
  const lanesPerRow = c.subgroupSize / M;
  if (c.d !== c.dv) return `d = ${c.d} and dv = ${c.dv} differ`;
  if (c.subgroups !== 2) return `${c.subgroups} row fragments per workgroup; the role split is built for 2`;
  // The scores split by columns need whole fragments per part; split by d-steps, whole fragments.
  const scoreColumns = c.splitSteps ? N : c.columnSplits * N;
  if (c.tile % scoreColumns !== 0 || (c.tile / c.columnSplits) % lanesPerRow !== 0) {
    return `tile ${c.tile} does not split into ${c.columnSplits} parts of N = ${N} columns over ${lanesPerRow} lanes per row`;
  }
  if (c.d % (c.columnSplits * N) !== 0)
    return `d = ${c.d} does not split into ${c.columnSplits} parts of N = ${N}`;
  if (c.splitSteps && c.d % (c.columnSplits * c.matrix.K) !== 0)
    return `d = ${c.d} does not split into ${c.columnSplits} parts of K = ${c.matrix.K} steps`;
  const queriesPerLane = c.tile / c.columnSplits / lanesPerRow;
  if (c.vectorScores && queriesPerLane % 4 !== 0)
    return `vector scores need 4 queries per lane or more, not ${queriesPerLane}`;
  return rowGroupsUnsupported(c);
}

/** Subgroups of a role-split kernel: two roles over the shape's row fragments, each split by columns. */
export function roleSubgroups(c: RolesConfig): number {
  return 2 * c.subgroups * c.columnSplits;
}

/**
 * Own rows of one workgroup of a role-split kernel (key rows of the dK/dV kernel, query rows of the
 * dQ kernel): every row group's.
 */
export function roleSplitRows(c: RolesConfig): number {
  return rowGroupsOf(c) * c.subgroups * c.matrix.M;
}

/** Subgroups of one workgroup of a role-split kernel (dK/dV or dQ): every row group's. */
export function roleSplitSubgroups(c: RolesConfig): number {
  return rowGroupsOf(c) * roleSubgroups(c);
}

/**
 * Whether the dK/dV kernel stages its own K and V rows one after the other (each role, and each
 * row group, loading its fragments in its turn) rather than side by side: with row groups, and
 * with its parts splitting d-steps where the tile is narrower than the own rows, so that the array
 * need only hold a tile of q and one of dO.
 */
function ownRowsInTurn(c: RolesConfig): boolean {
  return rowGroupsOf(c) > 1 || (c.splitSteps === true && c.tile < c.subgroups * c.matrix.M);
}

/**
 * f16 elements of the dK/dV kernel's staging array: both roles' own rows (K and V, side by side or
 * in turn), then, once those are held, both roles' rows of each tile (a quarter as many vectors with
 * vectorStaging).
 */
export function roleStagingElements(c: RolesConfig): number {
  if (ownRowsInTurn(c)) return stagingInTurnElements(c);
  return 2 * Math.max(c.subgroups * c.matrix.M, c.tile) * strides(c).d;
}

/**
 * f16 elements of a role-split kernel's staging array where its own rows are staged one role's at
 * a time (heldInTurnsWgsl): one role's own rows, or both roles' rows of a tile.
 */
export function stagingInTurnElements(c: RolesConfig): number {
  return Math.max(c.subgroups * c.matrix.M, 2 * c.tile) * strides(c).d;
}

/** The dK/dV kernel's score sections (f32, scratch.s elements each): S then dP, each per step part. */
function scoreSections(c: RolesConfig): number {
  return 2 * (c.splitSteps ? c.columnSplits : 1);
}

/**
 * The dK/dV kernel's row stride of P and dS (f16 elements): the backward kernels' 16 bytes of
 * padding, or with row groups 8 (their P and dS per group take two groups at d = 128, 16-query
 * tiles, from 25,216 bytes to 24,192, under the H200's second step: workgroup-memory-steps.ts).
 * Each subgroup loads one fragment of them per tile, so the bank conflicts of the narrower padding
 * cost little.
 */
function probabilityStride(c: RolesConfig): number {
  return rowGroupsOf(c) > 1 ? c.tile + 4 : strides(c).p;
}

/** One row group's scratch elements: its score sections (f32), then its P and dS (f16). */
function dkDvGroupScratch(c: RolesConfig) {
  return {
    s: scoreSections(c) * scratchElements(c).s,
    p: 2 * c.subgroups * c.matrix.M * probabilityStride(c),
  };
}

/**
 * WGSL defining a role-split subgroup's indices: `sgc` (narrower subgroups than built for repeat
 * the last one's work), its row fragment `half`, its `role` and its column part `colPart`; with
 * row groups also its `group` and its index `sgr` within the group.
 */
export function roleIndicesWgsl(c: RolesConfig): string {
  const groups = rowGroupsOf(c);
  const perGroup = roleSubgroups(c);
  // With row groups, `group` picks the rows and `sgr` the subgroup within them.
  const within = groups > 1 ? 'sgr' : 'sgc';
  const grouping = groups > 1 ? `\n  let group = sgc / ${perGroup}u;\n  let sgr = sgc % ${perGroup}u;` : '';
  return `  // Narrower subgroups than built for would add subgroups: they repeat the last one's work.
  let sgc = min(sg, ${groups * perGroup - 1}u);${grouping}
  let half = ${within} % ${c.subgroups}u;
  let role = (${within} / ${c.subgroups}u) % 2u;
  let colPart = ${within} / ${2 * c.subgroups}u;`;
}

/**
 * Workgroup memory of the role-split kernel, in bytes: staging, statistics, and each row group's
 * scores and probabilities.
 */
export function matrixDkDvRolesSharedBytes(c: RolesConfig): number {
  const scratch = dkDvGroupScratch(c);
  return roleStagingElements(c) * 2 + c.tile * 8 + rowGroupsOf(c) * (scratch.s * 4 + scratch.p * 2);
}

/**
 * WGSL that copies a role-split subgroup's accumulators out, fragment by fragment, through its own
 * part of the score scratch `SD`: M·N elements, which fit the M score rows of its role and half as
 * the tile splits into parts at least N wide. `write(column)` stores `x`, the element of row `r`
 * at `column` (the fragment's first column is `firstColumn`), in subgroups that exist. With row
 * groups (`group`: each group's scratch elements), `group`'s scratch and rows from `groupFirst`.
 */
export function roleAccumulatorsOutWgsl(
  c: RolesConfig,
  acc: string[],
  firstColumn: string,
  write: (column: string) => string,
  group?: { scratch: number },
): string {
  const { M, N } = c.matrix;
  const u = vectorUnits(c);
  // Parts split by d-steps each have a score section of their own (the rows of a half may be
  // narrower than the parts' fragments side by side). A row group's scratch and rows follow the
  // groups before it.
  const groupScratch = group ? `group * ${u.s(group.scratch)}u + ` : '';
  const scratchOf = c.splitSteps
    ? `${groupScratch}(role * ${c.columnSplits}u + colPart) * ${u.s(scratchElements(c).s)}u + half * ${u.s(M * strides(c).s)}u`
    : `${groupScratch}role * ${u.s(scratchElements(c).s)}u + half * ${u.s(M * strides(c).s)}u + colPart * ${u.s(M * N)}u`;
  const firstRow = group ? 'groupFirst' : 'first';
  return acc
    .map(
      (f, n) => `  subgroupMatrixStore<row_major>(&SD, ${scratchOf}, ${f}, ${u.s(N)}u);
  workgroupBarrier();
  for (var e = lane; e < ${M * N}u; e += ${c.subgroupSize}u) {
    let r = ${firstRow} + i32(half * ${M}u + e / ${N}u);
    let x = ${scratchScalarWgsl(c, 'SD', scratchOf, 'e')};
    ${write(`${firstColumn} + ${n * N}u + e % ${N}u`)}
  }
  workgroupBarrier();`,
    )
    .join('\n');
}

/**
 * WGSL of the role-split dK/dV pass: one workgroup per (key tile, KV head), of 2 · subgroups ·
 * columnSplits subgroups per row group.
 */
export function flashDkDvRolesMatrixWgsl(c: RolesConfig): string {
  const why = matrixDkDvRolesUnsupported(c);
  if (why) throw new Error(`flashDkDvRolesMatrixWgsl: ${why}`);
  const { M, N, K, rows, lanesPerRow, left, right, result } = matrixShape(c);
  const cs = c.columnSplits;
  const groups = rowGroupsOf(c);
  const grouped = groups > 1;
  const subgroups = roleSplitSubgroups(c);
  const threads = subgroups * c.subgroupSize;
  // This subgroup's part of the query tile's columns and of d, and its lanes' share of the former.
  const tilePart = c.tile / cs;
  const dPart = c.d / cs;
  // Split by d-steps, a part scores the whole tile over its steps of d (and holds those steps' own
  // fragments); split by columns, its columns of the tile over every step.
  const splitSteps = c.splitSteps === true;
  const scoredColumns = splitSteps ? c.tile : tilePart;
  const ownSteps = splitSteps ? c.d / K / cs : c.d / K;
  const inTurn = ownRowsInTurn(c);
  const queriesPerLane = tilePart / lanesPerRow;
  const st = strides(c);
  const scratch = scratchElements(c);
  // Offsets and strides below count f16 or f32 elements, `x` and `s` turning them into the
  // arrays' own (vectors of four where they hold vectors).
  const u = vectorUnits(c);
  const { x, s } = u;
  // Offsets of role 1's half of each two-role array (elements); `rows` are one row group's.
  const ownHalf = rows * st.d;
  const tileHalf = c.tile * st.d;
  const scoreHalf = scratch.s;
  const pStride = probabilityStride(c);
  const probHalf = rows * pStride;
  // Offsets into SD and PD past the row groups before this subgroup's.
  const perGroup = dkDvGroupScratch(c);
  const sdOf = (offset: string) => (grouped ? `group * ${s(perGroup.s)}u + ${offset}` : offset);
  const pdOf = (offset: string) => (grouped ? `group * ${s(perGroup.p)}u + ${offset}` : offset);
  const sf = names('sf', scoredColumns / N);
  const acc = names('acc', dPart / N);
  const ownf = names('ownf', ownSteps);
  const pdf = names('pdf', c.tile / K);
  // A row group's own rows of K or V (the workgroup's, without groups).
  const own = (src: 'k' | 'v', index: string, group = 0): StagingSet =>
    stageRowsVec4Set(
      {
        dest: 'QO',
        src,
        width: c.d,
        destStride: st.d,
        destOffset: src === 'k' || inTurn ? 0 : ownHalf,
        ...ownRows(c, 'keys', threads),
        ...(grouped && { first: `first + ${group * rows}` }),
      },
      index,
    );
  const queryTileSets = [
    tileRows(c, 'queries', 'QO', 'q', 'eq', { threads, destOffset: 0 }),
    tileRows(c, 'queries', 'QO', 'dout', 'eo', { threads, destOffset: tileHalf }),
    rowStatisticsSet(c),
  ];
  // The walk over the group's heads and each head's query tiles: nested loops, or with prefetched
  // tiles one loop over their steps, each step issuing the next step's loads.
  const walk = c.prefetchTiles
    ? prefetchedWalkWgsl(prefetchedStagingSetsWgsl(threads, queryTileSets))
    : {
        before: '',
        open: `  for (var g = 0u; g < p.group; g++) {
    let h = hk * p.group + g;
    for (var i0 = range.x; i0 < range.y; i0 += i32(TILE)) {
      workgroupBarrier();
      ${unrolledStagingSetsWgsl(threads, queryTileSets)}
      workgroupBarrier();`,
        close: `    }
  }`,
      };
  // Role 0: S = K·Qᵀ; role 1: dP = V·dOᵀ; each into its half of SD, its part of the tile's columns.
  const partColumns = splitSteps ? `colPart * ${x(ownSteps * K)}u` : `colPart * ${x(tilePart * st.d)}u`;
  const scores = sf
    .flatMap((f, jq) =>
      Array.from(
        { length: ownSteps },
        (_, kk) =>
          `      ${f} = subgroupMatrixMultiplyAccumulate(${ownf[kk]}, subgroupMatrixLoad<${right}, col_major>(&QO, role * ${x(tileHalf)}u + ${partColumns} + ${x(jq * N * st.d + kk * K)}u, ${x(st.d)}u), ${f});`,
      ),
    )
    .join('\n');
  // Split by d-steps, each (role, part) has a section of SD; split by columns, each role has one.
  const scoreAt = (jq: number) =>
    sdOf(
      splitSteps
        ? `(role * ${cs}u + colPart) * ${s(scoreHalf)}u + half * ${s(M * st.s)}u + ${s(jq * N)}u`
        : `role * ${s(scoreHalf)}u + half * ${s(M * st.s)}u + colPart * ${s(tilePart)}u + ${s(jq * N)}u`,
    );
  const storeScores = sf
    .map((f, jq) => `      subgroupMatrixStore<row_major>(&SD, ${scoreAt(jq)}, ${f}, ${s(st.s)}u);`)
    .join('\n');
  // A score of the tile at `at` (in SD's elements, within a section): S (role 0) or dP (role 1),
  // its parts added in order where they split d.
  const scoreOf = (role: number, at: string) => {
    if (!splitSteps) return `SD[${role === 0 ? '' : `${s(scoreHalf)}u + `}${at}]`;
    const parts = Array.from(
      { length: cs },
      (_, part) => `SD[${s((role * cs + part) * scoreHalf)}u + ${at}]`,
    );
    return `(${parts.join(' + ')})`;
  };
  // Role 0: dV += P·dO (dO is role 1's half of QO); role 1: dK += dS·Q (q is role 0's half). Each
  // P or dS fragment is loaded once and feeds d/16 multiply-accumulates.
  const updates = [
    ...pdf.map(
      (f, kc) =>
        `      let ${f} = subgroupMatrixLoad<${left}, row_major>(&PD, ${pdOf(`role * ${s(probHalf)}u + half * ${s(M * pStride)}u + ${s(kc * K)}u`)}, ${s(pStride)}u);`,
    ),
    ...acc.flatMap((f, n) =>
      pdf.map(
        (pf, kc) =>
          `      ${f} = subgroupMatrixMultiplyAccumulate(${pf}, subgroupMatrixLoad<${right}, row_major>(&QO, (1u - role) * ${x(tileHalf)}u + colPart * ${x(dPart)}u + ${x(kc * K * st.d + n * N)}u, ${x(st.d)}u), ${f});`,
      ),
    ),
  ].join('\n');
  // Each subgroup copies its accumulators out: dV (role 0), dK scaled (role 1).
  const writeOut = roleAccumulatorsOutWgsl(
    c,
    acc,
    `colPart * ${dPart}u`,
    (column) => `let at = ((sp.kStart + u32(r)) * p.hkv + hk) * D + ${column};
    if (r <= last && sg < ${subgroups}u) {
      if (role == 0u) { dv[at] = f16(x); } else { dk[at] = f16(x * p.scale); }
    }`,
    grouped ? { scratch: perGroup.s } : undefined,
  );
  // The lane's queries of its row, one at a time, or four (vectors `qv` of the row and of the
  // statistics; each query still masked on its own).
  const seen = (ii: string, masked: boolean) =>
    masked ? `j <= last && ${ii} < range.y && visible(sp, ${ii}, j)` : 'j <= last';
  const elementwise = (masked: boolean) =>
    c.vectorScores
      ? `      let firstGroup = colPart * ${tilePart / 4}u + part * ${queriesPerLane / 4}u;
      for (var qv = firstGroup; qv < firstGroup + ${queriesPerLane / 4}u; qv++) {
        let at = ${sdOf(`half * ${s(M * st.s)}u + row * ${s(st.s)}u + qv`)};
        let sv = ${scoreOf(0, 'at')};
        let dpv = ${scoreOf(1, 'at')};
        let lsev = Lq[qv];
        let deltav = Dq[qv];
        var x = vec4<f32>(0.0);
${COMPONENTS.map(
  (c4, k) => `        {
          let ii = i0 + i32(4u * qv + ${k}u);
          if (${seen('ii', masked)}) {
            let prob = exp(sv.${c4} * p.scale - lsev.${c4});
            x.${c4} = select(prob, prob * (dpv.${c4} - deltav.${c4}), role == 1u);
          }
        }`,
).join('\n')}
        PD[${pdOf(`role * ${s(probHalf)}u + half * ${s(M * pStride)}u + row * ${s(pStride)}u + qv`)}] = vec4<f16>(x);
      }`
      : `      let firstColumn = colPart * ${tilePart}u + part * ${queriesPerLane}u;
      for (var qq = firstColumn; qq < firstColumn + ${queriesPerLane}u; qq++) {
        let ii = i0 + i32(qq);
        let at = ${sdOf(`half * ${M * st.s}u + row * ${st.s}u + qq`)};
        var x = 0.0;
        if (${seen('ii', masked)}) {
          let prob = exp(${scoreOf(0, 'at')} * p.scale - Lq[qq]);
          x = select(prob, prob * (${scoreOf(1, 'at')} - Dq[qq]), role == 1u);
        }
        PD[${pdOf(`role * ${probHalf}u + half * ${M * pStride}u + row * ${pStride}u + qq`)}] = f16(x);
      }`;
  // This subgroup's own fragments (K for role 0, V for role 1), its part's d-steps where the parts
  // split them.
  const ownStep = (kk: number) => `${splitSteps ? `colPart * ${x(ownSteps * K)}u + ` : ''}${x(kk * K)}u`;
  const ownRowsSideBySideWgsl = () => `  ${unrolledStagingSetsWgsl(threads, [own('k', 'ek'), own('v', 'ev')])}
  workgroupBarrier();
${ownf.map((f, kk) => `  let ${f} = subgroupMatrixLoad<${left}, row_major>(&QO, role * ${x(ownHalf)}u + half * ${x(M * st.d)}u + ${ownStep(kk)}, ${x(st.d)}u);`).join('\n')}`;
  // K rows, role 0 loads its fragments, a barrier, V rows, role 1 loads (a row group's at a time);
  // the walk's first barrier waits for the last loads before a tile overwrites the rows.
  const ownRowsInTurnWgsl = () =>
    heldInTurnsWgsl(
      ownf.map((name, kk) => ({
        name,
        load: `subgroupMatrixLoad<${left}, row_major>(&QO, half * ${x(M * st.d)}u + ${ownStep(kk)}, ${x(st.d)}u)`,
      })),
      left,
      Array.from({ length: groups }, (_, group) =>
        (['k', 'v'] as const).map((src, role) => ({
          staging: unrolledStagingSetsWgsl(threads, [own(src, src === 'k' ? 'ek' : 'ev', group)]),
          when: grouped ? `group == ${group}u && role == ${role}u` : `role == ${role}u`,
        })),
      ).flat(),
    );
  return `${dkDvHeaderWgsl(grouped ? { ...c, subgroups: groups * c.subgroups } : c)}
// Both roles' operands: ${grouped ? "each row group's" : "the workgroup's"} K then V rows (until held), then each tile's q then
// dO rows; S then dP (f32)${grouped ? ' per row group' : ''}, P then dS (f16)${grouped ? ' per row group' : ''}; rows padded.
var<workgroup> QO: array<${u.staged}, ${x(roleStagingElements(c))}>;
${rowStatisticsArraysWgsl(c)}
var<workgroup> SD: array<${u.scores}, ${s(groups * perGroup.s)}>;
var<workgroup> PD: array<${u.probabilities}, ${s(groups * perGroup.p)}>;

${SEQUENCE_WGSL}

${WORKGROUP_INDEX_WGSL}

${matrixEntryPoint({ ...c, subgroups })}
${keyTileWgsl('ROWS')}
${roleIndicesWgsl(c)}
  let row = lane % ${M}u;
  let part = lane / ${M}u;
${
  grouped
    ? `  let groupFirst = first + i32(group * ${rows}u);
`
    : ''
}  let j = ${grouped ? 'groupFirst' : 'first'} + i32(half * ${M}u + row);
${inTurn ? ownRowsInTurnWgsl() : ownRowsSideBySideWgsl()}
${acc.map((f) => `  var ${f} = ${result}();`).join('\n')}
  let range = queryRange(sp, first, last);
${walk.before}${walk.open}
${sf.map((f) => `      var ${f} = ${result}();`).join('\n')}
${scores}
${storeScores}
      workgroupBarrier();
      // Role 0 writes P, role 1 dS = P ∘ (dP - delta), both from S; a query tile that sees every
      // key of this one whole skips the per-score mask test.
      let open = i0 + i32(TILE) <= range.y && blockVisible(sp, i0, i0 + i32(TILE) - 1, first, last);
${openOrMaskedWgsl(elementwise, '      ')}
      workgroupBarrier();
${updates}
${walk.close}
${writeOut}
}
`;
}

/**
 * The dK/dV walk with prefetched query tiles: one loop over (head of the group, query tile) steps,
 * the first step's loads issued before it, each step storing its loaded tile and then issuing the
 * next step's loads. Defines `h` and `i0` in the loop body like the nested loops it replaces.
 */
function prefetchedWalkWgsl(tile: PrefetchedStaging): { before: string; open: string; close: string } {
  const at = (walk: string) => `let h = hk * p.group + ${walk} / tilesPerHead;
      let i0 = range.x + i32(${walk} % tilesPerHead) * i32(TILE);`;
  return {
    before: `  // Query tiles per head, and the walk's steps: every tile of every head of the group.
  let tilesPerHead = u32(range.y - range.x + i32(TILE) - 1) / TILE;
  let steps = p.group * tilesPerHead;
${tile.declarations}
  if (steps > 0u) {
      ${at('0u')}
      ${tile.loads}
  }
`,
    open: `  for (var walk = 0u; walk < steps; walk++) {
      ${at('walk')}
      workgroupBarrier();
      ${tile.stores}
      workgroupBarrier();
      // The next step's loads (its h and i0 shadowing this step's), in flight through this step's work.
      if (walk + 1u < steps) {
        let next = walk + 1u;
        ${at('next')}
        ${tile.loads}
      }`,
    close: '  }',
  };
}

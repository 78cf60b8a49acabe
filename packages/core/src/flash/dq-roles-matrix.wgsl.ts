/**
 * The tensor-core dQ pass with its work split by role, as the dK/dV pass's role split does it:
 * twice the subgroups of the plain kernel (flashDqMatrixWgsl) over the same query rows. Subgroup
 * `half + 2 · role` owns query rows `half · M ..` of the workgroup; role 0 holds Q's fragments and
 * computes S = Q·Kᵀ, role 1 holds dO's and computes dP = dO·Vᵀ; both then turn their half of the
 * tile's columns into dS = P ∘ (dP − delta), and each accumulates its half of dQ's columns,
 * dQ += dS·K. Every subgroup runs the same code: the role only moves offsets into arrays that hold
 * both roles' operands, because a branch on the subgroup would put the matrix operations and
 * barriers out of uniform control flow. Hence d = dv.
 *
 * Why: the plain kernel holds Q and dO (d/8 fragments) and the whole dQ accumulator (d/16) in every
 * subgroup, 128 registers per lane at d = 128 before any operand of the tile, with two subgroups
 * per workgroup. Here a subgroup holds half of each: 64.
 *
 * `columnSplits` splits each role's work again, by columns, as in the dK/dV kernel: subgroup
 * `half + 2 · role + 4 · part` computes its part of the tile's scores and holds its part of the
 * role's dQ columns.
 *
 * Its arrays may hold vectors (`vectorStaging`, `vectorScores`), as the dK/dV kernel's do: X as
 * `vec4<f16>`, SD and Ds as vectors, each lane reading S and dP and writing dS for four
 * consecutive keys at once.
 *
 * `rowGroups` stacks groups of such subgroups over consecutive query rows, each with its own
 * scores and probabilities, all sharing each staged key tile (the forward's row groups do the
 * same): the tile's loads and barriers serve twice the rows.
 */
import { WORKGROUP_INDEX_WGSL } from '../dispatch.js';
import { COMPONENTS, prefetchedStagingSetsWgsl, rowVectorType, unrolledStagingSetsWgsl } from '../wgsl.js';
import {
  ownRows,
  ROW_STATISTICS_WGSL,
  scratchElements,
  strides,
  tileRows,
  vectorUnits,
} from './backward-matrix.wgsl.js';
import {
  type RolesConfig,
  roleAccumulatorsOutWgsl,
  roleIndicesWgsl,
  roleSplitSubgroups,
  stagingInTurnElements,
} from './backward-roles-matrix.wgsl.js';
import {
  backwardInputsWgsl,
  heldInTurnsWgsl,
  openOrMaskedWgsl,
  queryTileWgsl,
  SEQUENCE_WGSL,
  stageRowsVec4Set,
} from './common.wgsl.js';
import {
  matrixConstantsWgsl,
  matrixEntryPoint,
  matrixKernelHeader,
  matrixShape,
  fragmentNames as names,
  rowGroupsOf,
  rowGroupsUnsupported,
} from './matrix-kernel.js';

/** Why a shape cannot use the role-split dQ kernel, or undefined when it can. */
export function matrixDqRolesUnsupported(c: RolesConfig): string | undefined {
  const { M, N } = c.matrix;
  const parts = 2 * c.columnSplits;
  if (c.d !== c.dv) return `d = ${c.d} and dv = ${c.dv} differ`;
  if (c.subgroups !== 2) return `${c.subgroups} row fragments per workgroup; the role split is built for 2`;
  if (c.d % (parts * N) !== 0) return `d = ${c.d} does not split into ${parts} parts of N = ${N} columns`;
  if (c.tile % (c.columnSplits * N) !== 0 || c.tile % (parts * (c.subgroupSize / M)) !== 0) {
    return `tile ${c.tile} does not split into ${parts} parts over ${c.subgroupSize / M} lanes per row`;
  }
  const keysPerLane = c.tile / parts / (c.subgroupSize / M);
  if (c.vectorScores && keysPerLane % 4 !== 0)
    return `vector scores need 4 keys per lane or more, not ${keysPerLane}`;
  return rowGroupsUnsupported(c);
}

/** f32 and f16 scratch elements of one row group: S then dP (f32), dS (f16). */
function groupScratch(c: RolesConfig) {
  const scratch = scratchElements(c);
  return { s: 2 * scratch.s, p: scratch.p };
}

/**
 * Workgroup memory of the role-split dQ kernel, in bytes: staging, and each row group's S then dP
 * (f32) and dS (f16). Each row group's q rows, then its dO rows, are staged in turn (each role
 * holds one of them from then on), then each tile's K and V rows: staged side by side, q and dO
 * took the kernel to 23.5 KiB at d = 128, past the 16 KiB under which the H200 runs more of its
 * workgroups per SM (15.0 in turn; the dQ pass 51.4 -> 40.9 ms, workgroup-padding, 2026-12-01).
 */
export function matrixDqRolesSharedBytes(c: RolesConfig): number {
  const scratch = groupScratch(c);
  return stagingInTurnElements(c) * 2 + rowGroupsOf(c) * (scratch.s * 4 + scratch.p * 2);
}

/**
 * WGSL of the role-split dQ pass: one workgroup per (query tile, head), of 2 · subgroups ·
 * columnSplits subgroups per row group.
 */
export function flashDqRolesMatrixWgsl(c: RolesConfig): string {
  const why = matrixDqRolesUnsupported(c);
  if (why) throw new Error(`flashDqRolesMatrixWgsl: ${why}`);
  const { M, N, K, lanesPerRow, left, right, result } = matrixShape(c);
  const cs = c.columnSplits;
  const groups = rowGroupsOf(c);
  const grouped = groups > 1;
  const subgroups = roleSplitSubgroups(c);
  const threads = subgroups * c.subgroupSize;
  // A row group's rows, and its scratch after the groups' before it (none without groups).
  const groupRows = c.subgroups * M;
  const perGroup = groupScratch(c);
  // This subgroup's part of the tile's score columns.
  const tilePart = c.tile / cs;
  const st = strides(c);
  const scratch = scratchElements(c);
  // Offsets and strides below count f16 or f32 elements, `x` and `s` turning them into the
  // arrays' own (vectors of four where they hold vectors).
  const u = vectorUnits(c);
  const { x, s } = u;
  const tileHalf = c.tile * st.d;
  const scoreHalf = scratch.s;
  // Each (role, part) turns its share of the tile's columns into dS, each lane of a row a part of
  // that, and accumulates its share of dQ's columns.
  const dsColumns = c.tile / 2 / cs;
  const perLane = dsColumns / lanesPerRow;
  const columns = c.d / 2 / cs;
  const held = names('hf', c.d / K);
  const sf = names('sf', tilePart / N);
  const dsf = names('dsf', c.tile / K);
  const acc = names('acc', columns / N);
  // A row group's own rows of q or dO (the workgroup's, without groups).
  const own = (src: 'q' | 'dout', index: string, group: number) =>
    stageRowsVec4Set(
      {
        dest: 'X',
        src,
        width: c.d,
        destStride: st.d,
        destOffset: 0,
        ...ownRows(c, 'queries', threads),
        ...(grouped && { first: `first + ${group * groupRows}` }),
      },
      index,
    );
  // Offsets into SD and Ds past the row groups before this subgroup's.
  const sdOf = (offset: string) => (grouped ? `group * ${s(perGroup.s)}u + ${offset}` : offset);
  const dsOf = (offset: string) => (grouped ? `group * ${s(perGroup.p)}u + ${offset}` : offset);
  const keyTileSets = [
    tileRows(c, 'keys', 'X', 'k', 'ek', { threads, destOffset: 0 }),
    tileRows(c, 'keys', 'X', 'v', 'ev', { threads, destOffset: tileHalf }),
  ];
  // Each key tile staged in its turn, or (prefetchTiles) loaded during the tile before it: the
  // first tile's loads issued before the loop, each tile's stores then the next tile's loads.
  const prefetched = c.prefetchTiles ? prefetchedStagingSetsWgsl(threads, keyTileSets) : undefined;
  const stageKeyTile = prefetched
    ? `${prefetched.stores}
    workgroupBarrier();
    // The next tile's loads, in flight through this tile's work.
    if (k0 + i32(TILE) < range.y) {
      let kNext = k0 + i32(TILE);
      let k0 = kNext;
      ${prefetched.loads}
    }`
    : `${unrolledStagingSetsWgsl(threads, keyTileSets)}
    workgroupBarrier();`;
  const beforeKeyTiles = prefetched
    ? `${prefetched.declarations}
  if (range.x < range.y) {
    let k0 = range.x;
    ${prefetched.loads}
  }
`
    : '';
  // Role 0: S = Q·Kᵀ (K is role 0's half of X); role 1: dP = dO·Vᵀ (V is role 1's); into SD.
  const scores = [
    ...sf.flatMap((f, j) =>
      held.map(
        (a, kk) =>
          `    ${f} = subgroupMatrixMultiplyAccumulate(${a}, subgroupMatrixLoad<${right}, col_major>(&X, role * ${x(tileHalf)}u + colPart * ${x(tilePart * st.d)}u + ${x(j * N * st.d + kk * K)}u, ${x(st.d)}u), ${f});`,
      ),
    ),
    ...sf.map(
      (f, j) =>
        `    subgroupMatrixStore<row_major>(&SD, ${sdOf(`role * ${s(scoreHalf)}u + half * ${s(M * st.s)}u + colPart * ${s(tilePart)}u + ${s(j * N)}u`)}, ${f}, ${s(st.s)}u);`,
    ),
  ].join('\n');
  // The dQ columns this subgroup owns += dS·K; each dS fragment feeds all of them.
  const updates = [
    ...dsf.map(
      (f, kc) =>
        `    let ${f} = subgroupMatrixLoad<${left}, row_major>(&Ds, ${dsOf(`half * ${s(M * st.p)}u + ${s(kc * K)}u`)}, ${s(st.p)}u);`,
    ),
    ...acc.flatMap((f, n) =>
      dsf.map(
        (a, kc) =>
          `    ${f} = subgroupMatrixMultiplyAccumulate(${a}, subgroupMatrixLoad<${right}, row_major>(&X, ${x(kc * K * st.d)}u + dsPart * ${x(columns)}u + ${x(n * N)}u, ${x(st.d)}u), ${f});`,
      ),
    ),
  ].join('\n');
  // Each subgroup copies its accumulators out, scaled.
  const writeOut = roleAccumulatorsOutWgsl(
    c,
    acc,
    `dsPart * ${columns}u`,
    (column) => `if (r <= last && sg < ${subgroups}u) {
      dq[((sp.qStart + u32(r)) * p.hq + h) * D + ${column}] = f16(x * p.scale);
    }`,
    grouped ? { scratch: perGroup.s } : undefined,
  );
  // dS = P ∘ (dP − delta), P = exp(S · scale − lse), over the lane's keys of its row: one at a
  // time, or four (vectors `jv` of the row; each key still masked on its own).
  const seen = (j: string, masked: boolean) =>
    masked ? `i <= last && ${j} < range.y && visible(sp, i, ${j})` : 'i <= last';
  const dsStep = (masked: boolean) =>
    c.vectorScores
      ? `    let firstGroup = dsPart * ${dsColumns / 4}u + part * ${perLane / 4}u;
    for (var jv = firstGroup; jv < firstGroup + ${perLane / 4}u; jv++) {
      let at = ${sdOf(`half * ${s(M * st.s)}u + row * ${s(st.s)}u + jv`)};
      let sv = SD[at];
      let dpv = SD[${s(scoreHalf)}u + at];
      var ds = vec4<f32>(0.0);
${COMPONENTS.map(
  (c4, k) => `      {
        let j = k0 + i32(4u * jv + ${k}u);
        if (${seen('j', masked)}) {
          ds.${c4} = exp(sv.${c4} * p.scale - rowLse) * (dpv.${c4} - rowDelta);
        }
      }`,
).join('\n')}
      Ds[${dsOf(`half * ${s(M * st.p)}u + row * ${s(st.p)}u + jv`)}] = vec4<f16>(ds);
    }`
      : `    let firstColumn = dsPart * ${dsColumns}u + part * ${perLane}u;
    for (var jj = firstColumn; jj < firstColumn + ${perLane}u; jj++) {
      let j = k0 + i32(jj);
      let at = ${sdOf(`half * ${M * st.s}u + row * ${st.s}u + jj`)};
      var ds = 0.0;
      if (${seen('j', masked)}) {
        ds = exp(SD[at] * p.scale - rowLse) * (SD[${scoreHalf}u + at] - rowDelta);
      }
      Ds[${dsOf(`half * ${M * st.p}u + row * ${st.p}u + jj`)}] = f16(ds);
    }`;
  return `${matrixKernelHeader(c)}
${backwardInputsWgsl(rowVectorType(c.wideLoads))}
@group(0) @binding(6) var<storage, read_write> dq: array<f16>;
@group(0) @binding(7) var<uniform> p: Params;

${matrixConstantsWgsl(grouped ? { ...c, subgroups: groups * c.subgroups } : c)}
// ${grouped ? "Each row group's" : "The workgroup's"} q rows, then its dO rows (until held), then each tile's K then V rows; S then
// dP (f32)${grouped ? ' per row group' : ''}; dS (f16)${grouped ? ' per row group' : ''}; rows padded by 16 bytes.
var<workgroup> X: array<${u.staged}, ${x(stagingInTurnElements(c))}>;
var<workgroup> SD: array<${u.scores}, ${s(groups * perGroup.s)}>;
var<workgroup> Ds: array<${u.probabilities}, ${s(groups * perGroup.p)}>;

${SEQUENCE_WGSL}

${WORKGROUP_INDEX_WGSL}

${matrixEntryPoint({ ...c, subgroups })}
${queryTileWgsl('ROWS')}
${roleIndicesWgsl(c)}
  // This subgroup's share of the dS columns and of dQ's columns.
  let dsPart = role * ${cs}u + colPart;
  let row = lane % ${M}u;
  let part = lane / ${M}u;
${
  grouped
    ? `  let groupFirst = first + i32(group * ${groupRows}u);
`
    : ''
}  let i = ${grouped ? 'groupFirst' : 'first'} + i32(half * ${M}u + row);
  // Role 0 holds its rows of Q, role 1 its rows of dO, each staged in its turn${grouped ? ", a row group's at a time" : ''}.
${heldInTurnsWgsl(
  held.map((name, kk) => ({
    name,
    load: `subgroupMatrixLoad<${left}, row_major>(&X, half * ${x(M * st.d)}u + ${x(kk * K)}u, ${x(st.d)}u)`,
  })),
  left,
  // The key loop's first barrier waits for the last turn's loads.
  Array.from({ length: groups }, (_, group) =>
    (['q', 'dout'] as const).map((src, role) => ({
      staging: unrolledStagingSetsWgsl(threads, [own(src, src === 'q' ? 'eq' : 'eo', group)]),
      when: grouped ? `group == ${group}u && role == ${role}u` : `role == ${role}u`,
    })),
  ).flat(),
)}
${ROW_STATISTICS_WGSL}
${acc.map((f) => `  var ${f} = ${result}();`).join('\n')}
  let range = keyRange(sp, first, last);
${beforeKeyTiles}  for (var k0 = range.x; k0 < range.y; k0 += i32(TILE)) {
    workgroupBarrier();
    ${stageKeyTile}
${sf.map((f) => `    var ${f} = ${result}();`).join('\n')}
${scores}
    workgroupBarrier();
    // A tile every row sees whole skips the per-score mask test.
    let open = k0 + i32(TILE) <= range.y && blockVisible(sp, first, last, k0, k0 + i32(TILE) - 1);
${openOrMaskedWgsl(dsStep, '    ')}
    workgroupBarrier();
${updates}
  }
${writeOut}
}
`;
}

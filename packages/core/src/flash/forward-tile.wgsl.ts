/**
 * The steps of one key tile of the tensor-core forward (forward-matrix.wgsl.ts), generated apart
 * from its walk over the keys so that kernels walking other keys can run the same tile: NSA's
 * selected attention walks each token's selected blocks with the group's query heads as its rows.
 *
 * What a kernel using them declares: the staged tile's array (keys, then values), `Ss` (scores, and
 * where accumulators round-trip), `Ps` (probabilities), the arrays of {@link lazyRowArraysWgsl};
 * per invocation `sgc` (its subgroup, clamped), `sg`, `lane`, `li`, `row` and `part` (lane = row +
 * rows · part), the row's lazy max `m` and the lane's part of its sum `l`, `x0..` (the lane's
 * scores of the tile, base 2, masked ones at MASKED); constants `ROWS` and `SUBGROUPS`.
 */
import { shuffleFoldWgsl } from '../wgsl.js';
import { MASKED } from './common.wgsl.js';

/** Base-2 distance a row's max may fall behind a tile's before its accumulator is rescaled. */
export const FLASH_LAZY_RESCALE = 8;

/** The shape of a tile: fragments, the subgroup's share of keys and columns, array strides and units. */
export interface ForwardTileShape {
  matrix: { M: number; N: number; K: number };
  /** Row fragments the workgroup owns (every subgroup multiplies all of them). */
  rowFragments: number;
  /** Keys of the tile each subgroup scores, and output columns each accumulates. */
  keys: number;
  columns: number;
  /** Lanes sharing a row, and the tile's keys each lane holds. */
  lanesPerRow: number;
  perLane: number;
  /** The staged tile's array, its key and value row strides (elements) and elements per entry. */
  staging: string;
  keyStride: number;
  valueStride: number;
  stagingUnit: number;
  /** Row strides (elements) of `Ss` (f32) and `Ps` (f16), and elements per entry of both. */
  scoreStride: number;
  probabilityStride: number;
  scoreUnit: number;
  /** The accumulators' names, `[row fragment][column fragment]`, and the fragment types. */
  accumulators: string[][];
  types: { left: string; right: string; result: string };
  /** The loop variable over subgroups in the row statistics (`g` unless given). */
  counter?: string;
  /**
   * Where the workgroup's rows are split into groups, each with subgroups of its own sharing the
   * staged tiles: this subgroup's first row (a WGSL expression) and the workgroup's subgroups (in
   * place of `SUBGROUPS`, which then counts one group's: its slices of the keys and columns, `sgc`
   * the subgroup's slice). `row` is then the lane's row in the workgroup and `ROWS` the
   * workgroup's rows; `rowFragments` counts one group's. Absent: every subgroup over every row.
   */
  rowGroup?: { rowBase: string; subgroups: string };
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/** Query rows of the workgroup, or of one of its row groups: its row fragments of M rows. */
const rowsOf = (s: ForwardTileShape) => s.rowFragments * s.matrix.M;

/** The offset of the subgroup's first row in an array of rows `stride` entries apart, with ` + `. */
const rowBaseOffset = (s: ForwardTileShape, stride: number) =>
  s.rowGroup ? `${s.rowGroup.rowBase} * ${stride}u + ` : '';

/**
 * Where a subgroup's lanes work on what throughScoresWgsl hands them: the row its rows start at (a
 * WGSL prefix ending in ` + `, empty without row groups) and its slice of the columns (`sg`, or
 * within a row group `sgc`).
 */
export function subgroupPlace(s: ForwardTileShape): { firstRow: string; slice: string } {
  return s.rowGroup ? { firstRow: `${s.rowGroup.rowBase} + `, slice: 'sgc' } : { firstRow: '', slice: 'sg' };
}

/** Names of a grid of fragments: `prefix{r}_{j}`. */
export function fragmentGridNames(prefix: string, rows: number, cols: number): string[][] {
  return Array.from({ length: rows }, (_, r) => Array.from({ length: cols }, (_, j) => `${prefix}${r}_${j}`));
}

/** The per-row statistics' workgroup arrays and the rescale flag. */
export function lazyRowArraysWgsl(subgroups: number, rows: number): string {
  return `// Each subgroup's part of a per-row statistic: a tile's max (base 2), at the end the row's sum.
var<workgroup> RowPart: array<f32, ${subgroups * rows}>;
// Each row's factor: the rescale of its accumulator in a tile, at the end 1 / its sum.
var<workgroup> RowScale: array<f32, ${rows}>;
// Whether some row's accumulator needs rescaling in this tile (a whole 16-byte unit, like every
// workgroup variable of a subgroup-matrix kernel; see workgroup-alignment.ts).
var<workgroup> rescaleFlag: array<u32, 4>;`;
}

/**
 * S = Q·Kᵀ for the subgroup's keys of the staged tile, stored to its columns of `Ss`. All of its
 * score fragments are computed together: independent accumulators hide the latency. `query(r, kk)`
 * is row fragment r's left operand at step kk (a name or a load).
 */
export function tileScoresWgsl(
  s: ForwardTileShape,
  steps: number,
  query: (r: number, kk: number) => string | undefined,
  indent: string,
): string {
  const { M, N, K } = s.matrix;
  const keyFrags = s.keys / N;
  const xs = (elements: number) => elements / s.stagingUnit;
  const sv = (elements: number) => elements / s.scoreUnit;
  const sf = fragmentGridNames('sf', s.rowFragments, keyFrags);
  return [
    ...sf.flat().map((f) => `${indent}var ${f} = ${s.types.result}();`),
    ...range(steps).flatMap((kk) =>
      range(keyFrags).flatMap((j) => [
        `${indent}{ let kf = subgroupMatrixLoad<${s.types.right}, col_major>(&${s.staging}, (sgc * ${keyFrags}u + ${j}u) * ${xs(N * s.keyStride)}u + ${xs(kk * K)}u, ${xs(s.keyStride)}u);`,
        ...range(s.rowFragments).map(
          (r) =>
            `${indent}  ${sf[r]?.[j]} = subgroupMatrixMultiplyAccumulate(${query(r, kk)}, kf, ${sf[r]?.[j]});`,
        ),
        `${indent}}`,
      ]),
    ),
    ...range(s.rowFragments).flatMap((r) =>
      range(keyFrags).map(
        (j) =>
          `${indent}subgroupMatrixStore<row_major>(&Ss, ${rowBaseOffset(s, sv(s.scoreStride))}${sv(r * M * s.scoreStride)}u + sgc * ${sv(s.keys)}u + ${sv(j * N)}u, ${sf[r]?.[j]}, ${sv(s.scoreStride)}u);`,
      ),
    ),
  ].join('\n');
}

/**
 * The tile's max of each row from the lanes' `x` (over the lanes sharing the row, then through
 * `RowPart` over the subgroups, so every lane of a row holds the same), then the lazy max: the row's
 * max moves only past {@link FLASH_LAZY_RESCALE}, raising the rescale flag where the row's
 * accumulator already holds keys; `RowScale` gets each row's factor.
 */
export function lazyTileMaxWgsl(s: ForwardTileShape, indent: string): string {
  const g = s.counter ?? 'g';
  return `${indent}var tileMax = ${range(s.perLane)
    .map((k) => `x${k}`)
    .reduce((a, b) => `max(${a}, ${b})`)};
${indent}${shuffleFoldWgsl('tileMax', s.lanesPerRow, (a, b) => `max(${a}, ${b})`, rowsOf(s))}
${indent}if (part == 0u) { RowPart[sgc * ROWS + row] = tileMax; }
${indent}workgroupBarrier();
${indent}for (var ${g} = 0u; ${g} < SUBGROUPS; ${g}++) { tileMax = max(tileMax, RowPart[${g} * ROWS + row]); }
${indent}var alpha = 1.0;
${indent}if (tileMax > m + ${FLASH_LAZY_RESCALE.toFixed(1)}) {
${indent}  alpha = exp2(m - tileMax);
${indent}  // A row that saw keys before holds them in the accumulator, which must follow its max.
${indent}  if (m > ${MASKED}) { rescaleFlag[0] = 1u; }
${indent}  m = tileMax;
${indent}  l *= alpha;
${indent}}
${indent}if (sgc == 0u && part == 0u) { RowScale[row] = alpha; }`;
}

/** P = exp2(x − m), a masked key's 0: one key. */
export function probabilityWgsl(k: number): string {
  return `select(0.0, exp2(x${k} - m), x${k} > ${MASKED})`;
}

/**
 * The lane's probabilities four at a time, added to its sum in key order and stored as one
 * `vec4<f16>` at vector `jv{g}` of its row of `Ps`.
 */
export function vectorProbabilitiesWgsl(s: ForwardTileShape, indent: string): string {
  return range(s.perLane / 4)
    .map(
      (g) => `${indent}{
${range(4)
  .map((i) => `${indent}  let pr${i} = ${probabilityWgsl(4 * g + i)}; l += pr${i};`)
  .join('\n')}
${indent}  Ps[row * ${s.probabilityStride / 4}u + jv${g}] = vec4<f16>(vec4<f32>(pr0, pr1, pr2, pr3));
${indent}}`,
    )
    .join('\n');
}

/** The accumulators += P·V over the staged value tile, the subgroup's columns. */
export function valueProductsWgsl(s: ForwardTileShape, tile: number, indent: string): string {
  const { M, N, K } = s.matrix;
  const xs = (elements: number) => elements / s.stagingUnit;
  const sv = (elements: number) => elements / s.scoreUnit;
  return range(tile / K)
    .map((kc) => {
      const lines = range(s.rowFragments).map(
        (r) =>
          `${indent}let pf${r} = subgroupMatrixLoad<${s.types.left}, row_major>(&Ps, ${rowBaseOffset(s, sv(s.probabilityStride))}${sv(r * M * s.probabilityStride + kc * K)}u, ${sv(s.probabilityStride)}u);`,
      );
      for (let n = 0; n < s.columns / N; n++) {
        lines.push(
          `${indent}{ let vf = subgroupMatrixLoad<${s.types.right}, row_major>(&${s.staging}, ${xs(kc * K * s.valueStride)}u + sgc * ${xs(s.columns)}u + ${xs(n * N)}u, ${xs(s.valueStride)}u);`,
          ...range(s.rowFragments).map(
            (r) =>
              `${indent}  ${s.accumulators[r]?.[n]} = subgroupMatrixMultiplyAccumulate(pf${r}, vf, ${s.accumulators[r]?.[n]});`,
          ),
          `${indent}}`,
        );
      }
      return `${indent}{\n${lines.join('\n')}\n${indent}}`;
    })
    .join('\n');
}

/**
 * The accumulators through the subgroup's columns of `Ss`, `keys` columns at a time: stored, then
 * `lanes(chunk, width)` (the lanes' work on the chunk's `width` columns, for `sg < SUBGROUPS`:
 * narrower subgroups than built for repeat the last one's columns, and one of them does the work),
 * then, with `back`, loaded again.
 */
export function throughScoresWgsl(
  s: ForwardTileShape,
  indent: string,
  lanes: (chunk: number, width: number) => string,
  back: boolean,
): string {
  const { M, N } = s.matrix;
  const sv = (elements: number) => elements / s.scoreUnit;
  const chunkFrags = Math.min(s.keys / N, s.columns / N);
  return range(Math.ceil(s.columns / N / chunkFrags))
    .map((chunk) => {
      const frags = range(chunkFrags).map((f) => chunk * chunkFrags + f);
      const width = frags.length * N;
      const to = (r: number, f: number) =>
        `${rowBaseOffset(s, sv(s.scoreStride))}${sv(r * M * s.scoreStride)}u + sgc * ${sv(s.keys)}u + ${sv(f * N)}u`;
      const stores = range(s.rowFragments).flatMap((r) =>
        frags.map(
          (n, f) =>
            `subgroupMatrixStore<row_major>(&Ss, ${to(r, f)}, ${s.accumulators[r]?.[n]}, ${sv(s.scoreStride)}u);`,
        ),
      );
      const loads = range(s.rowFragments).flatMap((r) =>
        frags.map(
          (n, f) =>
            `${s.accumulators[r]?.[n]} = subgroupMatrixLoad<${s.types.result}, row_major>(&Ss, ${to(r, f)}, ${sv(s.scoreStride)}u);`,
        ),
      );
      return [
        ...stores,
        'workgroupBarrier();',
        `if (sg < ${s.rowGroup?.subgroups ?? 'SUBGROUPS'}) {\n${lanes(chunk, width)}\n${indent}}`,
        'workgroupBarrier();',
        ...(back ? loads : []),
      ]
        .map((line) => `${indent}${line}`)
        .join('\n');
    })
    .join('\n');
}

/**
 * Where some row's max moved (the flag, read uniformly after a full barrier), every accumulator
 * scaled by its row's `RowScale` through `Ss`. `indent` is the block's; its body is indented two
 * more.
 */
export function lazyRescaleWgsl(s: ForwardTileShape, indent: string): string {
  const rows = rowsOf(s);
  // A subgroup's lanes: those sharing each of the rows.
  const subgroupSize = s.lanesPerRow * rows;
  const sv = (elements: number) => elements / s.scoreUnit;
  const inner = `${indent}  `;
  const rescale = throughScoresWgsl(
    s,
    inner,
    (_, width) => {
      const { firstRow, slice } = subgroupPlace(s);
      return `${inner}  for (var e = lane; e < ${sv(rows * width)}u; e += ${subgroupSize}u) {
${inner}    let at = (${firstRow}e / ${sv(width)}u) * ${sv(s.scoreStride)}u + ${slice} * ${sv(s.keys)}u + e % ${sv(width)}u;
${inner}    Ss[at] *= RowScale[${firstRow}e / ${sv(width)}u];
${inner}  }`;
    },
    true,
  );
  return `${indent}// A full barrier before the uniform load: workgroupUniformLoad right after the stores has read
${indent}// stale values on the H200's driver.
${indent}workgroupBarrier();
${indent}if (workgroupUniformLoad(&rescaleFlag[0]) != 0u) {
${rescale}
${inner}if (li == 0u) { rescaleFlag[0] = 0u; }
${indent}}`;
}

/** After the walk: each row's sum from its lanes and subgroups, in `l` of every lane of the row. */
export function rowSumWgsl(s: ForwardTileShape): string {
  const g = s.counter ?? 'g';
  return `  // Shuffles need the whole subgroup, so lanes that saw nothing take part with l = 0.
  ${shuffleFoldWgsl('l', s.lanesPerRow, (a, b) => `${a} + ${b}`, rowsOf(s))}
  if (part == 0u) { RowPart[sgc * ROWS + row] = l; }
  workgroupBarrier();
  l = 0.0;
  for (var ${g} = 0u; ${g} < SUBGROUPS; ${g}++) { l += RowPart[${g} * ROWS + row]; }`;
}

/**
 * Pieces of WGSL the NSA tensor-core kernels share: the staging of a token's group of query rows,
 * and the product of the group's rows with a subgroup's 16-key slice of a staged key tile
 * (S = Q·Kᵀ, or dP = dO·Vᵀ).
 */
import { subgroupMatrixTypes } from '@webattn/core';

/** The fragment shape of a kernel. */
export interface MatrixShape {
  M: number;
  N: number;
  K: number;
}

/** Which rows a staging copies: see core's stageRowsVec4Wgsl. */
export interface RowsOf {
  rows: number;
  tokenStart: string;
  heads: string;
  head: string;
  first: string;
  end: string;
}

/** The G query-head rows of KV head `g` of token `t`, padded with zero rows to `rows`. */
export function groupRowsOf(rows: number): RowsOf {
  return {
    rows,
    tokenStart: 't * p.heads + g * GROUP',
    heads: '1u',
    head: '0u',
    first: '0',
    end: 'i32(GROUP)',
  };
}

/** The key rows of the tile at `k0` of token t's sequence for KV head `g`, zero from `end` on. */
export function keyRowsOf(rows: number, end = 'pos + 1'): RowsOf {
  return { rows, tokenStart: 'sq.start', heads: 'p.kvHeads', head: 'g', first: 'k0', end };
}

/** What {@link sliceProductWgsl} multiplies. */
export interface SliceProduct {
  matrix: MatrixShape;
  /** Result fragment names: `${into}${r}` for each row fragment r. */
  into: string;
  fragments: number;
  /** Multiply-accumulate steps over the shared dimension (its length / K). */
  steps: number;
  /** The left operand of row fragment r at step kk: a fragment name or a load expression. */
  left: (r: number, kk: number) => string;
  /** Workgroup array of the staged key rows and its row stride; the subgroup's slice starts at key `slice · N`. */
  keys: string;
  stride: number;
  indent: string;
  /** The subgroup's key slice, a WGSL u32 expression: `sgc` unless given. */
  slice?: string;
  /** The first column of the shared dimension, a WGSL u32 expression in `unit`s: 0 unless given. */
  firstColumn?: string;
  /**
   * Elements per entry of the keys' array: 4 where it holds `vec4<f16>` (subgroup-matrix loads then
   * count offsets and strides in vectors), 1 by default. `stride` still counts elements.
   */
  unit?: number;
}

/**
 * Lines computing `into_r = left_r · keysᵀ` for the subgroup's N keys: independent accumulators per
 * row fragment, each key fragment loaded once (column-major, so the staged rows act as Kᵀ).
 */
export function sliceProductWgsl(o: SliceProduct): string[] {
  const { N, K } = o.matrix;
  const { result, right } = subgroupMatrixTypes(o.matrix);
  const rows = Array.from({ length: o.fragments }, (_, r) => r);
  const unit = o.unit ?? 1;
  return [
    ...rows.map((r) => `${o.indent}var ${o.into}${r} = ${result}();`),
    ...Array.from({ length: o.steps }, (_, kk) => [
      `${o.indent}{ let kf = subgroupMatrixLoad<${right}, col_major>(&${o.keys}, ${o.slice ?? 'sgc'} * ${(N * o.stride) / unit}u + ${o.firstColumn ? `${o.firstColumn} + ` : ''}${(kk * K) / unit}u, ${o.stride / unit}u);`,
      ...rows.map(
        (r) =>
          `${o.indent}  ${o.into}${r} = subgroupMatrixMultiplyAccumulate(${o.left(r, kk)}, kf, ${o.into}${r});`,
      ),
      `${o.indent}}`,
    ]).flat(),
  ];
}

/**
 * Lines storing each row fragment `${from}${r}` to the subgroup's N columns of `dest` (row-major),
 * those of key slice `slice` (`sgc` unless given) from entry `first` (0 unless given). `unit`:
 * elements per entry of `dest` (4 for an array of vectors; `stride` still counts elements).
 */
export function storeSliceWgsl(o: {
  matrix: MatrixShape;
  from: string;
  fragments: number;
  dest: string;
  stride: number;
  indent: string;
  slice?: string;
  first?: string;
  unit?: number;
}): string[] {
  const unit = o.unit ?? 1;
  return Array.from(
    { length: o.fragments },
    (_, r) =>
      `${o.indent}subgroupMatrixStore<row_major>(&${o.dest}, ${o.first ? `${o.first} + ` : ''}${(r * o.matrix.M * o.stride) / unit}u + ${o.slice ?? 'sgc'} * ${o.matrix.N / unit}u, ${o.from}${r}, ${o.stride / unit}u);`,
  );
}

/**
 * Lines loading a fragment grid (row-major, left operands) from the rows staged in `src`, from
 * column `firstColumn` (a WGSL u32 expression in `unit`s; 0 unless given). `unit`: elements per
 * entry of `src` (4 for an array of vectors; `stride` still counts elements).
 */
export function loadFragmentsWgsl(
  matrix: MatrixShape,
  grid: string[][],
  src: string,
  stride: number,
  firstColumn?: string,
  unit = 1,
): string {
  const { left } = subgroupMatrixTypes(matrix);
  return grid
    .flatMap((frags, r) =>
      frags.map(
        (f, kk) =>
          `  let ${f} = subgroupMatrixLoad<${left}, row_major>(&${src}, ${firstColumn ? `${firstColumn} + ` : ''}${(r * matrix.M * stride + kk * matrix.K) / unit}u, ${stride / unit}u);`,
      ),
    )
    .join('\n');
}

/**
 * The scores of the group's query fragments `qf` against the subgroup's N keys of the tile staged
 * in `Ks` (row stride `keyStride`), stored to the subgroup's columns of `dest`. Where the scores
 * are split over parts of d, `slice` is the subgroup's key slice, `firstColumn` its part's first
 * column of d and `first` where in `dest` its part's scores go (WGSL u32 expressions).
 */
export function groupScoresWgsl(o: {
  matrix: MatrixShape;
  qf: string[][];
  keyStride: number;
  dest: string;
  destStride: number;
  slice?: string;
  firstColumn?: string;
  first?: string;
  /** Elements per entry of `Ks` and of `dest` (4 where they hold vectors; see sliceProductWgsl). */
  keyUnit?: number;
  destUnit?: number;
}): string {
  const fragments = o.qf.length;
  return [
    ...sliceProductWgsl({
      matrix: o.matrix,
      into: 'sf',
      fragments,
      steps: o.qf[0]?.length ?? 0,
      left: (r, kk) => o.qf[r]?.[kk] ?? '',
      keys: 'Ks',
      stride: o.keyStride,
      indent: '    ',
      slice: o.slice,
      firstColumn: o.firstColumn,
      unit: o.keyUnit,
    }),
    ...storeSliceWgsl({
      matrix: o.matrix,
      from: 'sf',
      fragments,
      dest: o.dest,
      stride: o.destStride,
      indent: '    ',
      slice: o.slice,
      first: o.first,
      unit: o.destUnit,
    }),
  ].join('\n');
}

/**
 * What every tensor-core flash kernel derives from its configuration: fragment types, workgroup
 * shape, how lanes share a row, and the WGSL header and entry point they all open with.
 */
import type { SubgroupMatrixConfig } from '../capabilities.js';
import { paramsStruct } from '../params.js';
import { enables, subgroupMainWgsl, subgroupMatrixTypes } from '../wgsl.js';
import { FLASH_PARAMS } from './common.wgsl.js';

/** Generation parameters shared by the tensor-core flash kernels. */
export interface MatrixKernelConfig {
  d: number;
  dv: number;
  matrix: Pick<SubgroupMatrixConfig, 'M' | 'N' | 'K'>;
  /** The subgroup size the kernel is built for, pinned with `@subgroup_size` when `pinSubgroupSize`. */
  subgroupSize: number;
  pinSubgroupSize: boolean;
  /** Subgroups per workgroup; the workgroup covers `subgroups · M` rows of its own side. */
  subgroups: number;
  /** Rows of the other side per staged tile (a multiple of N and K). */
  tile: number;
  /**
   * Whether q, k, v and dO are read 16 bytes per load (bound as `vec4<u32>`, eight f16 unpacked
   * per load) rather than 8 (`vec4<f16>`); d and dv are multiples of 16 wherever the kernels apply.
   */
  wideLoads?: boolean;
}

/** Quantities and WGSL type names derived from a configuration. */
export function matrixShape(c: MatrixKernelConfig) {
  const { M, N, K } = c.matrix;
  const lanesPerRow = c.subgroupSize / M;
  return {
    M,
    N,
    K,
    rows: c.subgroups * M,
    threads: c.subgroups * c.subgroupSize,
    /** Lanes sharing one row of a score tile (lane = row + M · part). */
    lanesPerRow,
    /** Tile columns each of those lanes handles. */
    perLane: c.tile / lanesPerRow,
    ...subgroupMatrixTypes(c.matrix),
  };
}

/** `count` WGSL variable names: prefix0, prefix1, ... (matrices cannot live in arrays). */
export function fragmentNames(prefix: string, count: number): string[] {
  return Array.from({ length: count }, (_, i) => `${prefix}${i}`);
}

/** The extensions and the parameter struct. */
export function matrixKernelHeader(c: MatrixKernelConfig): string {
  return `${enables({ subgroupMatrix: true, subgroupSizeControl: c.pinSubgroupSize })}
${paramsStruct(FLASH_PARAMS)}`;
}

/**
 * A kernel's groups of rows sharing each staged tile (the forward's and the role-split backward
 * kernels' `rowGroups`): 1 unless given.
 */
export function rowGroupsOf(c: { rowGroups?: number }): number {
  return c.rowGroups ?? 1;
}

/** Why a config's row groups are not a positive integer, or undefined. */
export function rowGroupsUnsupported(c: { rowGroups?: number }): string | undefined {
  const groups = rowGroupsOf(c);
  return Number.isInteger(groups) && groups >= 1
    ? undefined
    : `rowGroups ${groups} is not a positive integer`;
}

/** A config as it is without row groups (one group). */
export function withoutRowGroups<C extends { rowGroups?: number }>(c: C): Omit<C, 'rowGroups'> {
  const { rowGroups: _, ...ungrouped } = c;
  return ungrouped;
}

/** The constants the kernel bodies use: head dims, rows per workgroup, tile, invocations, subgroups. */
export function matrixConstantsWgsl(c: MatrixKernelConfig): string {
  const { rows, threads } = matrixShape(c);
  return `const D = ${c.d}u;
const DV = ${c.dv}u;
const ROWS = ${rows}u;
const TILE = ${c.tile}u;
const THREADS = ${threads}u;
const SUBGROUPS = ${c.subgroups}u;`;
}

/** The entry point's attributes and builtins, up to its opening brace. */
export function matrixEntryPoint(c: MatrixKernelConfig): string {
  return subgroupMainWgsl(c.subgroups * c.subgroupSize, c);
}

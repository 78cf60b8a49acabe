/** The parameter block every matmul kernel reads, and the index math they share. */
import type { ParamLayout } from '../params.js';

/** C[batch, M, N] = A[batch, M, K] x B, with B shared ([K, N]) or batched; `transposeB` reads B as [N, K]. */
export const MATMUL_PARAMS: ParamLayout = [
  ['M', 'u32'],
  ['N', 'u32'],
  ['K', 'u32'],
  ['batch', 'u32'],
  /** Elements between consecutive batches of B; 0 when B is shared. */
  ['batchStrideB', 'u32'],
  /** Work items (tiles or output groups) in the launch; workgroups past it return at once. */
  ['items', 'u32'],
  /** Output tiles along N, for kernels that tile. */
  ['tilesN', 'u32'],
  /** Output tiles per batch, for kernels that tile. */
  ['tilesPerBatch', 'u32'],
];

/** WGSL expression for the flat index of B[k][n] in either layout. */
export function bIndex(transposeB: boolean, k: string, n: string): string {
  return transposeB ? `bBase + (${n}) * p.K + (${k})` : `bBase + (${k}) * p.N + (${n})`;
}

/**
 * WGSL that maps a workgroup to its output tile of C: early return past the launch, then `batch`,
 * `row0`, `col0` and the batch offsets `aBase`, `bBase`, `cBase`. Needs `TM`, `TN`, `p`, `wid`, `nwg`.
 */
export const MATMUL_TILE_WGSL = `  let tile = workgroupIndex(wid, nwg);
  if (tile >= p.items) { return; }
  let batch = tile / p.tilesPerBatch;
  let t = tile % p.tilesPerBatch;
  let row0 = (t / p.tilesN) * TM;
  let col0 = (t % p.tilesN) * TN;
  let aBase = batch * p.M * p.K;
  let bBase = batch * p.batchStrideB;
  let cBase = batch * p.M * p.N;`;

/**
 * Selected-block attention on tensor cores, shaped like core's flash forward: one small workgroup
 * per (token, KV head), whose subgroups split each key tile and the output's columns, the G query
 * heads of the group as the rows of one (or two) 16-row fragments held in registers. Each tile is
 * core's forward tile (forward-tile.wgsl.ts) over the token's selected keys: the output accumulates
 * in matrix fragments across every tile of every selected block, with the lazy max (a row's max
 * moves only when a tile's passes it by more than FLASH_LAZY_RESCALE, base 2, and only then do the
 * accumulators round-trip through workgroup memory to be rescaled). The other selected kernel
 * (selected-matrix.wgsl.ts) adds each tile's products to a running output in registers, through
 * workgroup memory at every tile, in workgroups four times as wide.
 *
 * Per tile: K staged (16-byte loads), S = Q·Kᵀ by slices into workgroup memory, V's loads issued
 * before the softmax and stored after it, P = exp2(S − m) in f16, then P·V into the accumulators.
 * With `prefetchKeys` (a block is one tile), the next tile's K loads are issued right after this
 * tile's K is stored and held in registers through its products: the kernel's registers are few
 * enough (16 rows of Q, a quarter of the output per subgroup) that this pays here, where it lost
 * in core's forward. Keys after the token are masked; K and V rows past it are not loaded.
 */
import {
  COMPONENTS,
  type ForwardTileShape,
  fragmentGridNames,
  lazyRescaleWgsl,
  lazyRowArraysWgsl,
  lazyTileMaxWgsl,
  MASKED,
  prefetchedStagingSetsWgsl,
  rowSumWgsl,
  type StagedRowsVec4,
  stageRowsVec4Set,
  stageRowsVec4Wgsl,
  subgroupMainWgsl,
  subgroupMatrixTypes,
  throughScoresWgsl,
  tileScoresWgsl,
  valueProductsWgsl,
  vectorProbabilitiesWgsl,
  WORKGROUP_INDEX_WGSL,
} from '@webattn/core';
import { NSA_SEQUENCE_WGSL } from '../layout.js';
import { groupRowsOf, keyRowsOf, loadFragmentsWgsl } from '../matrix.wgsl.js';
import {
  type SelectedMatrixConfig,
  selectedForwardHeaderWgsl,
  selectedKeyTilesLoopWgsl,
  slotBlockWgsl,
  tokenOfWorkgroupWgsl,
} from './selected-matrix.wgsl.js';

/**
 * Generation parameters of the flash-shaped selected attention: the tensor-core selected kernels'
 * shape, and `subgroups`, over which each tile's keys (tile / subgroups each, whole fragments) and
 * the output's columns split; one N-key slice per subgroup unless given.
 */
export type SelectedLazyConfig = {
  subgroups?: number;
  /**
   * Whether each tile's key loads are issued during the tile before (held in registers through
   * its scores, softmax and P·V) and stored when its turn comes. Needs one tile per block.
   */
  prefetchKeys?: boolean;
} & Pick<
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
  if (c.prefetchKeys && c.tile !== c.blockSize) {
    return `keys loaded a tile ahead need one tile per block, not ${c.blockSize / c.tile}`;
  }
  return undefined;
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/**
 * The walk over the token's selected blocks, one tile each, when each tile's keys are loaded during
 * the tile before: the slots' blocks are read two ahead (`nextBlock`, `thenBlock`), so that the
 * next block's key loads wait on no index read, and the first block's keys are loaded before the
 * walk. Opens two scopes, `k0` the tile's first key, like selectedKeyTilesLoopWgsl.
 */
function keyPrefetchLoopWgsl(keyLoads: string): string {
  return `  var nextBlock = ${slotBlockWgsl('0u')};
  var thenBlock = -1;
  if (TOPN > 1u) { thenBlock = ${slotBlockWgsl('1u')}; }
  if (nextBlock >= 0) {
    let k0 = nextBlock * p.blockSize;
    ${keyLoads}
  }
  for (var slot = 0u; slot < TOPN; slot++) {
    let J = nextBlock;
    if (J < 0) { break; }
    nextBlock = thenBlock;
    thenBlock = -1;
    if (slot + 2u < TOPN) { thenBlock = ${slotBlockWgsl('slot + 2u')}; }
    {
      let k0 = J * p.blockSize;`;
}

/** WGSL of the flash-shaped selected attention: f16 q, k, v, o; f32 lse `[tokens, heads]`. */
export function selectedLazyMatrixWgsl(c: SelectedLazyConfig): string {
  const { N, K } = c.matrix;
  const { fragments, rows, subgroups, threads, keys, columns, lanesPerRow, perLane } = split(c);
  const st = strides(c);
  const qf = fragmentGridNames('qf', fragments, c.d / K);
  // Every workgroup array holds vectors of four; offsets and strides into them count vectors.
  const u = (elements: number) => elements / 4;
  const groups = perLane / 4;
  // Core's forward tile in this kernel's shape; `s` counts subgroups (`g` is the KV head here).
  const tile: ForwardTileShape = {
    matrix: c.matrix,
    rowFragments: fragments,
    keys,
    columns,
    lanesPerRow,
    perLane,
    staging: 'Ks',
    keyStride: st.k,
    valueStride: st.v,
    stagingUnit: 4,
    scoreStride: st.s,
    probabilityStride: st.p,
    scoreUnit: 4,
    accumulators: fragmentGridNames('of', fragments, columns / N),
    types: subgroupMatrixTypes(c.matrix),
    counter: 's',
  };

  const staged = (src: 'k' | 'v'): StagedRowsVec4 => ({
    dest: 'Ks',
    vectorDest: true,
    src,
    width: src === 'k' ? c.d : c.dv,
    destStride: src === 'k' ? st.k : st.v,
    threads,
    wide: c.wideLoads,
    ...keyRowsOf(c.tile),
  });
  // V's values named apart from K's staging (ev, not e; an index f16 would name the type).
  const values = prefetchedStagingSetsWgsl(threads, [stageRowsVec4Set(staged('v'), 'ev')]);
  const keyLoads = prefetchedStagingSetsWgsl(threads, [stageRowsVec4Set(staged('k'), 'e')]);

  // This lane's keys of the subgroup's slice, four per vector: the vector's index in a row.
  const keyVectors = range(groups)
    .map((j) => `      let jv${j} = sgc * ${keys / 4}u + part * ${groups}u + ${j}u;`)
    .join('\n');
  // Its scores in base 2, keys after the token masked.
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
  // RowScale holds each row's 1 / sum by then.
  const writeOut = throughScoresWgsl(
    tile,
    '  ',
    (chunk, width) => `    for (var e = lane; e < ${u(rows * width)}u; e += ${c.subgroupSize}u) {
      let r = e / ${u(width)}u;
      if (r < GROUP) {
        o[(firstRow + r) * ${u(c.dv)}u + sg * ${u(columns)}u + ${u(chunk * width)}u + e % ${u(width)}u] =
          vec4<f16>(Ss[r * ${u(st.s)}u + sg * ${u(keys)}u + e % ${u(width)}u] * RowScale[r]);
      }
    }`,
    false,
  );

  return `${selectedForwardHeaderWgsl(c, 'vec4<f16>', { rows, subgroups })}

// The group's query rows, then each tile's keys, then its values.
var<workgroup> Ks: array<vec4<f16>, ${u(stagingElements(c))}>;
// A tile's scores, each subgroup's columns; also where the accumulators are rescaled and written out.
var<workgroup> Ss: array<vec4<f32>, ${u(rows * st.s)}>;
var<workgroup> Ps: array<vec4<f16>, ${u(rows * st.p)}>;
${lazyRowArraysWgsl(subgroups, rows)}

${NSA_SEQUENCE_WGSL}

${WORKGROUP_INDEX_WGSL}

${subgroupMainWgsl(threads, c)}
${tokenOfWorkgroupWgsl(c)}
  // Narrower subgroups than built for would add subgroups: they repeat the last one's work.
  let sgc = min(sg, SUBGROUPS - 1u);
  // This lane's row, and its part of the subgroup's keys of each tile.
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
${tile.accumulators
  .flat()
  .map((f) => `  var ${f} = ${tile.types.result}();`)
  .join('\n')}
${values.declarations}
${
  c.prefetchKeys
    ? `${keyLoads.declarations}
${keyPrefetchLoopWgsl(keyLoads.loads)}
      // The last tile's products (and at first the query fragments' loads) are done with Ks.
      workgroupBarrier();
      ${keyLoads.stores}
      workgroupBarrier();
      // The next block's keys, loaded through this tile.
      if (nextBlock >= 0) {
        let k0 = nextBlock * p.blockSize;
        ${keyLoads.loads}
      }`
    : `${selectedKeyTilesLoopWgsl(c)}
      // The last tile's products (and at first the query fragments' loads) are done with Ks.
      workgroupBarrier();
      ${stageRowsVec4Wgsl(staged('k'))}
      workgroupBarrier();`
}
${tileScoresWgsl(tile, c.d / K, (r, kk) => qf[r]?.[kk], '      ')}
      ${values.loads}
      workgroupBarrier();
${keyVectors}
${range(perLane)
  .map((k) => `      var x${k} = ${MASKED};`)
  .join('\n')}
${tileScores}
${lazyTileMaxWgsl(tile, '      ')}
${vectorProbabilitiesWgsl(tile, '      ')}
      ${values.stores}
${lazyRescaleWgsl(tile, '      ')}
${valueProductsWgsl(tile, c.tile, '      ')}
    }
  }
${rowSumWgsl(tile)}
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

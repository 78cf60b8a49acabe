/**
 * The masked products on tensor cores (subgroup matrices, f16 operands, f32 accumulation): the
 * blocked kernel's `out_r = Σ_{h ∈ heads(out)} Σ_u scale (x_r · y_u) M'_ru z_u` (see
 * blocked.wgsl.ts), which is the forward (x, y, z = q, k, v), dq (dO, v, k), dv (k, q, dO, mask
 * transposed, summed over the group's query heads) and dk (v, dO, q, the same).
 *
 * Described for the forward: a workgroup owns `rowFragments · M` query rows of one sequence and
 * head and walks the keys in tiles of `tile`. Its subgroups split each key tile by columns for `S = Q Kᵀ` (every subgroup holds
 * all of Q's fragments in registers) and split the value columns for `O += P V`, so each keeps only
 * its share of the output accumulator. Between the two products the scores go through workgroup
 * memory, where every invocation applies `scale · M_ij` (and zeroes the rows and keys past n) and
 * rounds `P` to f16. Without a softmax there is nothing to rescale, so one pass over the keys does.
 * A `P` entry beyond the f16 range becomes inf and reaches the output, where the host's non-finite
 * check reports it.
 */
import {
  computeAttributesWgsl,
  enables,
  paramsStruct,
  type SubgroupMatrixConfig,
  storeVec4Wgsl,
  subgroupMatrixTypes,
  WORKGROUP_INDEX_WGSL,
} from '@webattn/core';
import { MASK_AT_WGSL, MASKED_PARAMS, TO_F16_WGSL } from './params.js';

/** Generation parameters of the tensor-core product. */
export interface FusedMatrixConfig {
  /** Length of the dot products x · y (dk for the forward). */
  dk: number;
  /** Columns of z and of the output (dv for the forward). */
  dv: number;
  /**
   * `false` (the forward, dq): the output and x belong to a query head, y and z to its kv head.
   * `true` (dk, dv): the output and x belong to a kv head; the kernel sums over its query heads,
   * whose y and z they are, and reads the mask transposed.
   */
  kvOutput?: boolean;
  matrix: Pick<SubgroupMatrixConfig, 'M' | 'N' | 'K'>;
  /** The subgroup size it is built for, pinned with `@subgroup_size` when `pinSubgroupSize`. */
  subgroupSize: number;
  pinSubgroupSize: boolean;
  /** Subgroups per workgroup: each owns `tile / subgroups` keys of a tile and `dv / subgroups` output columns. */
  subgroups: number;
  /** Fragments of M query rows per workgroup. */
  rowFragments: number;
  /** Keys per staged tile, a multiple of `subgroups · N` and of K. */
  tile: number;
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/** Row strides of the workgroup arrays, padded by 16 bytes so matrix rows start on different banks. */
/** Row strides (elements) of the staged rows, the f32 scores and the f16 probabilities: 16 bytes of padding each. */
export function fusedStrides(c: FusedMatrixConfig) {
  return { x: Math.max(c.dk, c.dv) + 8, s: c.tile + 4, p: c.tile + 8 };
}

/**
 * WGSL staging `count` rows of `width` f16 of head `head` (of `heads`) of the token-major tensor
 * `src` (vec4 entries), from token `first`, into Xs at row stride `stride`; zeros past p.n.
 */
export function stageTokenRowsWgsl(r: {
  src: string;
  first: string;
  count: number;
  width: number;
  heads: string;
  head: string;
  stride: number;
}): string {
  return `    for (var e = li; e < ${(r.count * r.width) / 4}u; e += THREADS) {
      let rr = e / ${r.width / 4}u;
      let cv = e % ${r.width / 4}u;
      let t = ${r.first} + rr;
      var val = vec4<f16>();
      if (t < p.n) { val = ${r.src}[((b * p.n + t) * ${r.heads} + ${r.head}) * ${r.width / 4}u + cv]; }
      let at = rr * ${r.stride}u + 4u * cv;
      ${storeVec4Wgsl('Xs', 'at', 'val')}
    }`;
}

/** Query rows per workgroup. */
export function fusedMatrixRows(c: FusedMatrixConfig): number {
  return c.rowFragments * c.matrix.M;
}

/** Workgroup memory the kernel declares, in bytes. */
export function fusedMatrixSharedBytes(c: FusedMatrixConfig): number {
  const st = fusedStrides(c);
  const rows = fusedMatrixRows(c);
  return Math.max(rows, c.tile) * st.x * 2 + rows * st.s * 4 + rows * st.p * 2;
}

/** Why a configuration cannot run, or undefined when it can. */
export function fusedMatrixUnsupported(c: FusedMatrixConfig): string | undefined {
  const { M, N, K } = c.matrix;
  if (c.dk % K !== 0) return `dk = ${c.dk} is not a multiple of the matrix K = ${K}`;
  if (c.dv % (N * c.subgroups) !== 0)
    return `dv = ${c.dv} does not split into multiples of N = ${N} over ${c.subgroups} subgroups`;
  if (c.tile % (N * c.subgroups) !== 0 || c.tile % K !== 0)
    return `tile ${c.tile} does not split over ${c.subgroups} subgroups`;
  if (c.subgroupSize % 4 !== 0 || M < 1) return `subgroup size ${c.subgroupSize} is not supported`;
  return undefined;
}

/**
 * The configuration for dk, dv on a device with this matrix shape, subgroup size (and largest
 * subgroup size) and workgroup memory, or undefined when none fits.
 */
export function fusedMatrixConfig(
  dk: number,
  dv: number,
  matrix: Pick<SubgroupMatrixConfig, 'M' | 'N' | 'K'>,
  subgroupSize: number,
  pinSubgroupSize: boolean,
  maxSharedBytes: number,
  subgroupMaxSize = subgroupSize,
): FusedMatrixConfig | undefined {
  return searchFusedConfig(
    { dk, dv, matrix, subgroupSize, pinSubgroupSize },
    subgroupMaxSize,
    (c) => fusedMatrixUnsupported(c) === undefined && fusedMatrixSharedBytes(c) <= maxSharedBytes,
  );
}

/**
 * The first candidate shape that `fits`, in the order both tensor-core kernels prefer: the most
 * subgroups and the longest key tile (fewer barriers per key), two row fragments per workgroup
 * where the memory allows (half the key and value traffic). Dawn wants the workgroup a multiple
 * of the adapter's largest subgroup size, so other subgroup counts are skipped.
 */
export function searchFusedConfig(
  base: Pick<FusedMatrixConfig, 'dk' | 'dv' | 'matrix' | 'subgroupSize' | 'pinSubgroupSize'>,
  subgroupMaxSize: number,
  fits: (c: FusedMatrixConfig) => boolean,
): FusedMatrixConfig | undefined {
  for (const subgroups of [4, 2, 1]) {
    if ((subgroups * base.subgroupSize) % subgroupMaxSize !== 0) continue;
    for (const [tile, rowFragments] of [
      [64, 2],
      [64, 1],
      [32, 1],
      [16, 1],
    ] as const) {
      const c: FusedMatrixConfig = { ...base, subgroups, rowFragments, tile };
      if (fits(c)) return c;
    }
  }
  return undefined;
}

/** WGSL of the tensor-core masked product (f16 x, y, z, mask and out; bindings in that order). */
export function fusedMatrixWgsl(c: FusedMatrixConfig): string {
  const kv = c.kvOutput === true;
  const outHeads = kv ? 'p.hkv' : 'p.hq';
  const yHeads = kv ? 'p.hq' : 'p.hkv';
  const yHead = kv ? 'hs' : 'hk';
  const mask = kv ? 'maskAt(b, hs, j, i)' : 'maskAt(b, hs, i, j)';
  const { M, N, K } = c.matrix;
  const { left, right, result } = subgroupMatrixTypes(c.matrix);
  const st = fusedStrides(c);
  const R = c.rowFragments;
  const rows = fusedMatrixRows(c);
  const threads = c.subgroups * c.subgroupSize;
  const keys = c.tile / c.subgroups;
  const keyFrags = keys / N;
  const columns = c.dv / c.subgroups;
  const colFrags = columns / N;
  const dkFrags = c.dk / K;
  const qf = (r: number, kk: number) => `qf${r}_${kk}`;
  const of = (r: number, j: number) => `of${r}_${j}`;
  const sf = (r: number, j: number) => `sf${r}_${j}`;

  const scores = [
    ...range(R).flatMap((r) => range(keyFrags).map((j) => `    var ${sf(r, j)} = ${result}();`)),
    ...range(dkFrags).flatMap((kk) =>
      range(keyFrags).flatMap((j) => [
        `    { let kf = subgroupMatrixLoad<${right}, col_major>(&Xs, (sgc * ${keys}u + ${j * N}u) * ${st.x}u + ${kk * K}u, ${st.x}u);`,
        ...range(R).map(
          (r) => `      ${sf(r, j)} = subgroupMatrixMultiplyAccumulate(${qf(r, kk)}, kf, ${sf(r, j)});`,
        ),
        '    }',
      ]),
    ),
    ...range(R).flatMap((r) =>
      range(keyFrags).map(
        (j) =>
          `    subgroupMatrixStore<row_major>(&Ss, ${r * M * st.s}u + sgc * ${keys}u + ${j * N}u, ${sf(r, j)}, ${st.s}u);`,
      ),
    ),
  ].join('\n');

  const products = range(c.tile / K)
    .map((kc) =>
      [
        '    {',
        ...range(R).map(
          (r) =>
            `    let pf${r} = subgroupMatrixLoad<${left}, row_major>(&Ps, ${r * M * st.p + kc * K}u, ${st.p}u);`,
        ),
        ...range(colFrags).flatMap((j) => [
          `    { let vf = subgroupMatrixLoad<${right}, row_major>(&Xs, ${kc * K * st.x}u + sgc * ${columns}u + ${j * N}u, ${st.x}u);`,
          ...range(R).map(
            (r) => `      ${of(r, j)} = subgroupMatrixMultiplyAccumulate(pf${r}, vf, ${of(r, j)});`,
          ),
          '    }',
        ]),
        '    }',
      ].join('\n'),
    )
    .join('\n');

  // The output leaves through each subgroup's `keys` columns of Ss, `chunkFrags` fragments at a time.
  const chunkFrags = Math.min(keyFrags, colFrags);
  const writeOut = range(Math.ceil(colFrags / chunkFrags))
    .map((chunk) => {
      const frags = range(chunkFrags)
        .map((f) => chunk * chunkFrags + f)
        .filter((j) => j < colFrags);
      const width = frags.length * N;
      return `  workgroupBarrier();
${range(R)
  .flatMap((r) =>
    frags.map(
      (j, f) =>
        `  subgroupMatrixStore<row_major>(&Ss, ${r * M * st.s}u + sgc * ${keys}u + ${f * N}u, ${of(r, j)}, ${st.s}u);`,
    ),
  )
  .join('\n')}
  workgroupBarrier();
  for (var e = li; e < ROWS * ${c.subgroups * width}u; e += THREADS) {
    let rr = e / ${c.subgroups * width}u;
    let g = (e / ${width}u) % SUBGROUPS;
    let cc = e % ${width}u;
    let i = q0 + rr;
    if (i < p.n) {
      o[((b * p.n + i) * ${outHeads} + h) * ${c.dv}u + g * ${columns}u + ${chunk * chunkFrags * N}u + cc] = toF16(Ss[rr * ${st.s}u + g * ${keys}u + cc]);
    }
  }`;
    })
    .join('\n');

  const stage = (src: string, first: string, count: number, width: number, heads: string, head: string) =>
    stageTokenRowsWgsl({ src, first, count, width, heads, head, stride: st.x });

  return `${enables({ subgroupMatrix: true, subgroupSizeControl: c.pinSubgroupSize })}
${paramsStruct(MASKED_PARAMS)}
${TO_F16_WGSL}
@group(0) @binding(0) var<storage, read> x: array<vec4<f16>>;
@group(0) @binding(1) var<storage, read> y: array<vec4<f16>>;
@group(0) @binding(2) var<storage, read> z: array<vec4<f16>>;
@group(0) @binding(3) var<storage, read> m: array<f16>;
@group(0) @binding(4) var<storage, read_write> o: array<f16>;
@group(0) @binding(5) var<uniform> p: Params;

const ROWS = ${rows}u;
const TILE = ${c.tile}u;
const THREADS = ${threads}u;
const SUBGROUPS = ${c.subgroups}u;
var<workgroup> Xs: array<f16, ${Math.max(rows, c.tile) * st.x}>;
var<workgroup> Ss: array<f32, ${rows * st.s}>;
var<workgroup> Ps: array<f16, ${rows * st.p}>;

${MASK_AT_WGSL}

${WORKGROUP_INDEX_WGSL}

${computeAttributesWgsl(threads, c)}
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) li: u32, @builtin(subgroup_id) sg: u32) {
  let w = workgroupIndex(wid, nwg);
  if (w >= p.count) { return; }
  let tileIndex = w % p.tiles;
  let h = (w / p.tiles) % ${outHeads};
  let b = w / (p.tiles * ${outHeads});
  let hk = h / p.group;
  let q0 = tileIndex * ROWS;
  // Narrower subgroups than built for would add subgroups: they repeat the last one's work.
  let sgc = min(sg, SUBGROUPS - 1u);
${stage('x', 'q0', rows, c.dk, outHeads, 'h')}
  workgroupBarrier();
${range(R)
  .flatMap((r) =>
    range(dkFrags).map(
      (kk) =>
        `  let ${qf(r, kk)} = subgroupMatrixLoad<${left}, row_major>(&Xs, ${r * M * st.x + kk * K}u, ${st.x}u);`,
    ),
  )
  .join('\n')}
${range(R)
  .flatMap((r) => range(colFrags).map((j) => `  var ${of(r, j)} = ${result}();`))
  .join('\n')}
  let h0 = ${kv ? 'h * p.group' : 'h'};
  let h1 = ${kv ? '(h + 1u) * p.group' : 'h + 1u'};
  for (var hs = h0; hs < h1; hs++) {
  for (var k0 = 0u; k0 < p.n; k0 += TILE) {
    workgroupBarrier();
${stage('y', 'k0', c.tile, c.dk, yHeads, yHead)}
    workgroupBarrier();
${scores}
    workgroupBarrier();
    for (var e = li; e < ROWS * TILE; e += THREADS) {
      let rr = e / TILE;
      let cc = e % TILE;
      let i = q0 + rr;
      let j = k0 + cc;
      var val = 0.0;
      if (i < p.n && j < p.n) { val = Ss[rr * ${st.s}u + cc] * p.scale * ${mask}; }
      Ps[rr * ${st.p}u + cc] = toF16(val);
    }
${stage('z', 'k0', c.tile, c.dv, yHeads, yHead)}
    workgroupBarrier();
${products}
  }
  }
${writeOut}
}
`;
}

/**
 * dM on tensor cores: `dM_ij = Σ scale (q_i · k_j)(dO_i · v_j)` over the sequences and heads the mask
 * broadcasts over. A workgroup owns `rowFragments · M` rows and `tile` columns of one dm slice; per
 * (sequence, head) its subgroups compute their key columns of `A = Q Kᵀ` and then of `G = dO Vᵀ` as
 * f32 fragments, which reach the invocations through workgroup memory: each keeps its entries of A
 * in registers while G takes A's place, then accumulates `A ⊙ G`. Every dm entry's sum belongs to
 * one invocation: deterministic, no atomics.
 */
import {
  computeAttributesWgsl,
  enables,
  paramsStruct,
  subgroupMatrixTypes,
  WORKGROUP_INDEX_WGSL,
} from '@webattn/core';
import {
  type FusedMatrixConfig,
  fusedMatrixUnsupported,
  fusedStrides,
  searchFusedConfig,
  stageTokenRowsWgsl,
} from './fused-matrix.wgsl.js';
import { MASKED_PARAMS, TO_F16_WGSL } from './params.js';

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/** Rows of dm per workgroup. */
export function fusedDmRows(c: FusedMatrixConfig): number {
  return c.rowFragments * c.matrix.M;
}

/** Workgroup memory the dM kernel declares, in bytes. */
export function fusedDmSharedBytes(c: FusedMatrixConfig): number {
  const st = fusedStrides(c);
  const rows = fusedDmRows(c);
  return Math.max(rows, c.tile) * st.x * 2 + rows * st.s * 4;
}

/** Why a configuration cannot run the dM kernel, or undefined when it can. */
export function fusedDmUnsupported(c: FusedMatrixConfig): string | undefined {
  const { K } = c.matrix;
  if (c.dv % K !== 0) return `dv = ${c.dv} is not a multiple of the matrix K = ${K}`;
  if (((fusedDmRows(c) * c.tile) / (c.subgroups * c.subgroupSize)) % 1 !== 0) {
    return `${fusedDmRows(c)} x ${c.tile} entries do not split over the workgroup`;
  }
  // The product kernel's rules on dk and the tile hold here too (its dv rule does not apply).
  const why = fusedMatrixUnsupported({ ...c, dv: c.subgroups * c.matrix.N });
  return why;
}

/** The dM configuration for dk, dv on such a device, or undefined when none fits. */
export function fusedDmConfig(
  dk: number,
  dv: number,
  matrix: FusedMatrixConfig['matrix'],
  subgroupSize: number,
  pinSubgroupSize: boolean,
  maxSharedBytes: number,
  subgroupMaxSize = subgroupSize,
): FusedMatrixConfig | undefined {
  return searchFusedConfig(
    { dk, dv, matrix, subgroupSize, pinSubgroupSize },
    subgroupMaxSize,
    (c) => fusedDmUnsupported(c) === undefined && fusedDmSharedBytes(c) <= maxSharedBytes,
  );
}

/** WGSL of the tensor-core dM (f16 q, k, v, dO and dm; bindings in that order). */
export function fusedDmWgsl(c: FusedMatrixConfig): string {
  const { M, N, K } = c.matrix;
  const { left, right, result } = subgroupMatrixTypes(c.matrix);
  const st = fusedStrides(c);
  const R = c.rowFragments;
  const rows = fusedDmRows(c);
  const threads = c.subgroups * c.subgroupSize;
  const keys = c.tile / c.subgroups;
  const keyFrags = keys / N;
  const entries = (rows * c.tile) / threads;
  const es = range(entries);

  const stage = (src: string, first: string, count: number, width: number, heads: string, head: string) =>
    stageTokenRowsWgsl({ src, first, count, width, heads, head, stride: st.x });

  // One product `rows x tile` of `left` rows i0.. by `right` rows j0.. over `dim`, stored to Ss.
  const product = (l: string, r: string, dim: number) => {
    const frags = dim / K;
    const lf = (row: number, kk: number) => `lf${row}_${kk}`;
    const sf = (row: number, j: number) => `sf${row}_${j}`;
    return `    {
      workgroupBarrier();
${stage(l, 'i0', rows, dim, 'p.hq', 'h')}
      workgroupBarrier();
${range(R)
  .flatMap((row) =>
    range(frags).map(
      (kk) =>
        `      let ${lf(row, kk)} = subgroupMatrixLoad<${left}, row_major>(&Xs, ${row * M * st.x + kk * K}u, ${st.x}u);`,
    ),
  )
  .join('\n')}
      workgroupBarrier();
${stage(r, 'j0', c.tile, dim, 'p.hkv', 'hk')}
      workgroupBarrier();
${range(R)
  .flatMap((row) => range(keyFrags).map((j) => `      var ${sf(row, j)} = ${result}();`))
  .join('\n')}
${range(frags)
  .flatMap((kk) =>
    range(keyFrags).flatMap((j) => [
      `      { let rf = subgroupMatrixLoad<${right}, col_major>(&Xs, (sgc * ${keys}u + ${j * N}u) * ${st.x}u + ${kk * K}u, ${st.x}u);`,
      ...range(R).map(
        (row) =>
          `        ${sf(row, j)} = subgroupMatrixMultiplyAccumulate(${lf(row, kk)}, rf, ${sf(row, j)});`,
      ),
      '      }',
    ]),
  )
  .join('\n')}
${range(R)
  .flatMap((row) =>
    range(keyFrags).map(
      (j) =>
        `      subgroupMatrixStore<row_major>(&Ss, ${row * M * st.s}u + sgc * ${keys}u + ${j * N}u, ${sf(row, j)}, ${st.s}u);`,
    ),
  )
  .join('\n')}
      workgroupBarrier();
    }`;
  };
  const at = (k: number) => `((li + ${k * threads}u) / TILE) * ${st.s}u + (li + ${k * threads}u) % TILE`;

  return `${enables({ subgroupMatrix: true, subgroupSizeControl: c.pinSubgroupSize })}
${paramsStruct(MASKED_PARAMS)}
${TO_F16_WGSL}
@group(0) @binding(0) var<storage, read> q: array<vec4<f16>>;
@group(0) @binding(1) var<storage, read> k: array<vec4<f16>>;
@group(0) @binding(2) var<storage, read> v: array<vec4<f16>>;
@group(0) @binding(3) var<storage, read> dout: array<vec4<f16>>;
@group(0) @binding(4) var<storage, read_write> dm: array<f16>;
@group(0) @binding(5) var<uniform> p: Params;

const ROWS = ${rows}u;
const TILE = ${c.tile}u;
const THREADS = ${threads}u;
const SUBGROUPS = ${c.subgroups}u;
var<workgroup> Xs: array<f16, ${Math.max(rows, c.tile) * st.x}>;
var<workgroup> Ss: array<f32, ${rows * st.s}>;

${WORKGROUP_INDEX_WGSL}

${computeAttributesWgsl(threads, c)}
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) li: u32, @builtin(subgroup_id) sg: u32) {
  let w = workgroupIndex(wid, nwg);
  if (w >= p.count) { return; }
  // p.tiles: row tiles; column tiles follow from the tile width.
  let colTiles = (p.n + TILE - 1u) / TILE;
  let tj = w % colTiles;
  let ti = (w / colTiles) % p.tiles;
  let mh = (w / (colTiles * p.tiles)) % p.maskHeads;
  let mb = w / (colTiles * p.tiles * p.maskHeads);
  let i0 = ti * ROWS;
  let j0 = tj * TILE;
  // Narrower subgroups than built for would add subgroups: they repeat the last one's work.
  let sgc = min(sg, SUBGROUPS - 1u);
  let b0 = select(mb, 0u, p.maskBatch == 1u);
  let b1 = select(mb + 1u, p.batch, p.maskBatch == 1u);
  let h0 = select(mh, 0u, p.maskHeads == 1u);
  let h1 = select(mh + 1u, p.hq, p.maskHeads == 1u);
${es.map((k) => `  var acc${k} = 0.0;`).join('\n')}
  for (var b = b0; b < b1; b++) {
    for (var h = h0; h < h1; h++) {
    let hk = h / p.group;
${product('q', 'k', c.dk)}
${es.map((k) => `    let a${k} = Ss[${at(k)}];`).join('\n')}
${product('dout', 'v', c.dv)}
${es.map((k) => `    acc${k} += a${k} * Ss[${at(k)}];`).join('\n')}
    }
  }
${es
  .map(
    (k) => `  {
    let i = i0 + (li + ${k * threads}u) / TILE;
    let j = j0 + (li + ${k * threads}u) % TILE;
    if (i < p.n && j < p.n) { dm[((mb * p.maskHeads + mh) * p.n + i) * p.n + j] = toF16(acc${k} * p.scale); }
  }`,
  )
  .join('\n')}
}
`;
}

/**
 * The prefill's W_UV epilogue on tensor cores: `o[t, h] = latent[t, h] · w_uv[h]` as one matrix
 * product per head, `[tokens, r] · [r, dv]`. The scalar epilogue (prefill.wgsl.ts) runs one
 * workgroup per (token, head) row, each reading its head's whole `w_uv[h]` (32 KiB at MiniCPM3's
 * dims) for 2·r·dv FLOPs: on the H200 it took 1.56 ms of the 8192-token prefill's 11.8.
 *
 * Here each subgroup computes 16 tokens × dv of one head: its latent fragments load straight from
 * storage (a head's rows are `heads · r` elements apart), `w_uv[h]`'s fragments likewise, and each
 * result fragment passes through the subgroup's 16×16 slice of workgroup memory to be converted to
 * f16 and written. A workgroup holds SUBGROUPS such blocks of consecutive tokens of one head. The
 * last block of tokens starts at `tokens - 16` so that no fragment reads past the latent tensor:
 * the rows it shares with the block before are computed twice, to the same bits, and written twice.
 * Needs at least 16 tokens; fewer take the scalar epilogue.
 */
import {
  computeAttributesWgsl,
  enables,
  paramsStruct,
  subgroupMatrixTypes,
  WORKGROUP_INDEX_WGSL,
} from '@webattn/core';

/** Uniform parameters of the tensor-core epilogue. */
export const MLA_EPILOGUE_MATRIX_PARAMS = [['tokens', 'u32']] as const;

/** Fragment side: the kernel is built for 16×16×16 f16 matrices with f32 results. */
const F = 16;

/** Subgroups per workgroup, each 16 tokens of the workgroup's head. */
export const MLA_EPILOGUE_MATRIX_SUBGROUPS = 4;

/** Generation parameters of the tensor-core epilogue. */
export interface MlaEpilogueMatrixConfig {
  heads: number;
  /** Latent rank, a multiple of 16. */
  r: number;
  /** Value head dim, a multiple of 16. */
  dv: number;
  subgroupSize: number;
  pinSubgroupSize: boolean;
}

/** Why the dims cannot use the kernel, or undefined when they can. */
export function mlaEpilogueMatrixUnsupported(c: MlaEpilogueMatrixConfig): string | undefined {
  if (c.r % F !== 0) return `r = ${c.r} is not a multiple of ${F}`;
  if (c.dv % F !== 0) return `dv = ${c.dv} is not a multiple of ${F}`;
  return undefined;
}

/** Workgroups for `tokens` tokens (at least 16): one per (head, SUBGROUPS blocks of 16 tokens). */
export function mlaEpilogueMatrixWorkgroups(
  c: Pick<MlaEpilogueMatrixConfig, 'heads'>,
  tokens: number,
): number {
  return c.heads * Math.ceil(tokens / (F * MLA_EPILOGUE_MATRIX_SUBGROUPS));
}

/** WGSL of the tensor-core epilogue (f16 latent, w_uv and o). */
export function mlaEpilogueMatrixWgsl(c: MlaEpilogueMatrixConfig): string {
  const why = mlaEpilogueMatrixUnsupported(c);
  if (why) throw new Error(`mlaEpilogueMatrixWgsl: ${why}`);
  const S = MLA_EPILOGUE_MATRIX_SUBGROUPS;
  const threads = S * c.subgroupSize;
  const steps = c.r / F;
  const columns = c.dv / F;
  const { left, right, result } = subgroupMatrixTypes({ M: F, N: F, K: F });
  const range = (n: number) => Array.from({ length: n }, (_, i) => i);
  return `${enables({ subgroupMatrix: true, subgroupSizeControl: c.pinSubgroupSize })}
${paramsStruct(MLA_EPILOGUE_MATRIX_PARAMS)}
@group(0) @binding(0) var<storage, read> latent: array<f16>;
@group(0) @binding(1) var<storage, read> wuv: array<f16>;
@group(0) @binding(2) var<storage, read_write> o: array<f16>;
@group(0) @binding(3) var<uniform> p: Params;

// Each subgroup's result fragment on its way to f16.
var<workgroup> Rs: array<f32, ${S * F * F}>;

${WORKGROUP_INDEX_WGSL}

${computeAttributesWgsl(threads, c)}
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(subgroup_id) sg: u32, @builtin(subgroup_invocation_id) lane: u32,
        @builtin(subgroup_size) sgSize: u32) {
  let w = workgroupIndex(wid, nwg);
  let blocks = (p.tokens + ${F * S - 1}u) / ${F * S}u;
  if (w >= blocks * ${c.heads}u) { return; }
  let h = w % ${c.heads}u;
  // This subgroup's 16 tokens, the last block pulled back inside the tensor. Narrower subgroups
  // than built for (unpinned) add subgroups: they repeat the last block, to the same bits.
  let sgc = min(sg, ${S - 1}u);
  let t0 = min((w / ${c.heads}u) * ${F * S}u + sgc * ${F}u, p.tokens - ${F}u);
${range(columns)
  .map((n) => `  var acc${n} = ${result}();`)
  .join('\n')}
  for (var k = 0u; k < ${steps}u; k++) {
    let a = subgroupMatrixLoad<${left}, row_major>(&latent, (t0 * ${c.heads}u + h) * ${c.r}u + k * ${F}u, ${c.heads * c.r}u);
${range(columns)
  .map(
    (n) =>
      `    acc${n} = subgroupMatrixMultiplyAccumulate(a, subgroupMatrixLoad<${right}, row_major>(&wuv, (h * ${c.r}u + k * ${F}u) * ${c.dv}u + ${n * F}u, ${c.dv}u), acc${n});`,
  )
  .join('\n')}
  }
${range(columns)
  .map(
    (n) => `  subgroupMatrixStore<row_major>(&Rs, sgc * ${F * F}u, acc${n}, ${F}u);
  workgroupBarrier();
  for (var i = lane; i < ${F * F}u; i += sgSize) {
    o[((t0 + i / ${F}u) * ${c.heads}u + h) * ${c.dv}u + ${n * F}u + i % ${F}u] = f16(Rs[sgc * ${F * F}u + i]);
  }
  workgroupBarrier();`,
  )
  .join('\n')}
}
`;
}

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  alignedWorkgroupLength,
  type Gpu,
  misalignedWorkgroupVariables,
  WebAttnError,
} from '../src/index.js';
import { nullGpu } from '../src/testing.js';

describe('workgroup alignment of subgroup-matrix kernels', () => {
  it('rounds lengths up to whole 16-byte units', () => {
    expect(alignedWorkgroupLength(10, 4)).toBe(12);
    expect(alignedWorkgroupLength(12, 4)).toBe(12);
    expect(alignedWorkgroupLength(1, 2)).toBe(8);
    expect(alignedWorkgroupLength(0, 4)).toBe(0);
  });

  it('finds variables that are not whole 16-byte units, with constants resolved', () => {
    const code = `const TILE = 64u;
const TOPN = 10u;
var<workgroup> Ks: array<f16, 4608>;
var<workgroup> probability: array<f32, TILE>;
var<workgroup> score: array<f32, 10>;
var<workgroup> slots: array<i32, TOPN>;
var<workgroup> flag: u32;
var<workgroup> flags: array<u32, 4>;
var<workgroup> partial: array<vec2f, 64>;
var<workgroup> pair: array<vec2f, 3>;
var<workgroup> counts: array<atomic<u32>, TILE>;
var<workgroup> masks: array<array<u32, 4>, TOPN>;
var<workgroup> rows: array<array<u32, 3>, 2>;
var<workgroup> odd: array<MyStruct, 4>;`;
    expect(misalignedWorkgroupVariables(code)).toEqual([
      'score: array<f32, 10> (40 bytes, not a multiple of 16)',
      'slots: array<i32, TOPN> (40 bytes, not a multiple of 16)',
      'flag: u32 (4 bytes, not a multiple of 16)',
      'pair: array<vec2f, 3> (24 bytes, not a multiple of 16)',
      'rows: array<array<u32, 3>, 2> (24 bytes, not a multiple of 16)',
      'odd: array<MyStruct, 4> (size not readable from the source)',
    ]);
  });

  describe('the pipeline cache', () => {
    let gpu: Gpu;
    beforeAll(async () => {
      gpu = await nullGpu();
    });
    afterAll(() => gpu.destroy());

    const kernel = (flag: string) => `enable f16;
enable subgroups;
enable chromium_experimental_subgroup_matrix;
@group(0) @binding(0) var<storage, read_write> out: array<f32>;
var<workgroup> Ks: array<f16, 256>;
var<workgroup> Ss: array<f32, 256>;
${flag}
@compute @workgroup_size(128)
fn main() {
  let a = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(&Ks, 0u, 16u);
  let b = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, col_major>(&Ks, 0u, 16u);
  var c = subgroup_matrix_result<f32, 16, 16>();
  c = subgroupMatrixMultiplyAccumulate(a, b, c);
  subgroupMatrixStore<row_major>(&Ss, 0u, c, 16u);
  workgroupBarrier();
  out[0] = Ss[0];
}`;

    it('refuses a subgroup-matrix kernel with a misaligned workgroup variable, naming it', async () => {
      const refused = gpu.pipelines.get(kernel('var<workgroup> flag: u32;'), 'misaligned');
      await expect(refused).rejects.toBeInstanceOf(WebAttnError);
      await expect(refused).rejects.toThrow(/flag: u32 \(4 bytes/);
    });

    it('compiles the same kernel with the variable padded to 16 bytes', async () => {
      await expect(
        gpu.pipelines.get(kernel('var<workgroup> flag: array<u32, 4>;'), 'aligned'),
      ).resolves.toBeDefined();
    });
  });
});

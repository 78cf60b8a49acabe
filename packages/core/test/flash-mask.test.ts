import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dispatch, WORKGROUP_INDEX_WGSL } from '../src/dispatch.js';
import { FLASH_PARAMS, SEQUENCE_WGSL } from '../src/flash/common.wgsl.js';
import type { Gpu } from '../src/gpu.js';
import { paramsStruct } from '../src/params.js';
import { Tensor } from '../src/tensor.js';
import { testGpu } from '../src/testing.js';

// Rows and keys per side the kernel below walks: every block [qFirst, qLast] x [kFirst, kLast].
const SIDE = 12;
const BLOCKS = SIDE ** 4;

/**
 * For each block of query rows and keys, whether `blockVisible` agrees with the per-pair mask test
 * of every pair in it: 1 where it claims a block whole that holds a hidden pair (a tile would skip
 * a mask it needs), 2 where it misses a block that is whole (correct, only slower), 0 otherwise.
 */
const code = `${paramsStruct(FLASH_PARAMS)}
@group(0) @binding(0) var<storage, read> launch: array<u32>;
@group(0) @binding(1) var<storage, read_write> verdict: array<u32>;
@group(0) @binding(2) var<uniform> p: Params;

${SEQUENCE_WGSL}

${WORKGROUP_INDEX_WGSL}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let id = workgroupIndex(wid, nwg) * 64u + li;
  if (id >= ${BLOCKS}u) { return; }
  let qFirst = i32(id % ${SIDE}u);
  let qLast = i32((id / ${SIDE}u) % ${SIDE}u);
  let kFirst = i32((id / ${SIDE ** 2}u) % ${SIDE}u);
  let kLast = i32(id / ${SIDE ** 3}u);
  let sp = span(0u);
  var v = 0u;
  if (qFirst <= qLast && kFirst <= kLast && qLast < i32(sp.qLen) && kLast < i32(sp.kLen)) {
    var whole = true;
    for (var i = qFirst; i <= qLast; i++) {
      for (var j = kFirst; j <= kLast; j++) { whole = whole && visible(sp, i, j); }
    }
    let claimed = blockVisible(sp, qFirst, qLast, kFirst, kLast);
    v = select(select(0u, 2u, whole && !claimed), 1u, claimed && !whole);
  }
  verdict[id] = v;
}
`;

describe('the flash kernels’ whole-tile mask test', () => {
  let gpu: Gpu;
  beforeAll(async () => {
    gpu = await testGpu();
  });
  afterAll(() => gpu.destroy());

  it('holds exactly when every pair of the block is visible, for windows, alignments and key blocks', async () => {
    const failures: string[] = [];
    for (const [keyStride, keySize] of [
      [1, 1],
      [2, 4],
      [4, 4],
    ] as const) {
      for (const [qLen, kLen] of [
        [SIDE, SIDE],
        [5, SIDE],
        [SIDE, 7],
      ] as const) {
        for (const left of [-1, 0, 1, 3, 7]) {
          for (const right of [-1, 0, 2, 5]) {
            // The sequence table's one entry: queries and keys from 0, lse at 0.
            const words = Uint32Array.from([0, qLen, 0, kLen, 0]);
            using launch = Tensor.from(gpu, new Float32Array(words.buffer), [words.length]);
            using verdict = Tensor.empty(gpu, [BLOCKS]);
            await dispatch(gpu, {
              label: 'block visibility test',
              code,
              buffers: [launch, verdict],
              params: {
                layout: FLASH_PARAMS,
                values: {
                  hq: 1,
                  hkv: 1,
                  group: 1,
                  scale: 1,
                  left,
                  right,
                  tiles: 0,
                  lseHeadStride: 0,
                  tileBase: 5,
                  statsDelta: 0,
                  negInf: Number.NEGATIVE_INFINITY,
                  keyStride,
                  keySize,
                  splits: 1,
                  splitKeys: 0,
                  splitRows: 0,
                  lseSplit: 0,
                },
              },
              workgroups: Math.ceil(BLOCKS / 64),
            });
            const bits = new Uint32Array((await verdict.read()).buffer);
            const wrong = bits.findIndex((v) => v !== 0);
            if (wrong >= 0) {
              const [qf, ql, kf, kl] = [
                wrong % SIDE,
                (wrong / SIDE) % SIDE,
                (wrong / SIDE ** 2) % SIDE,
                wrong / SIDE ** 3,
              ].map(Math.floor);
              failures.push(
                `keys ${keyStride}/${keySize}, ${qLen} x ${kLen}, window [${left}, ${right}]: rows ${qf}..${ql}, keys ${kf}..${kl} -> ${bits[wrong] === 1 ? 'claimed whole, is not' : 'whole, not claimed'}`,
              );
            }
          }
        }
      }
    }
    expect(failures).toEqual([]);
  });
});

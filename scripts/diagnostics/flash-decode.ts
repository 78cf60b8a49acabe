// Diagnostic (not the bench): core's flash forward over the decode shapes the benches run it on,
// with and without GQA decodes grouped (FLASH_DECODE_GROUPS), unsplit and with split-KV at several
// settings (FLASH_SPLIT_KV), f16 on the tensor-core tier:
// the NSA decode table's dense column (8 packed sequences of one query, hq=64, hkv=4, d=128) and
// the MLA decode table's unabsorbed column (one query per sequence, 40 heads, d=96, dv=64). Prints
// each setting's span, its kernels and how far its o is from the first setting's.
// `pnpm gpu:bundle` builds it into .gpu-kit/flash-decode.mjs; on the GPU machine:
//   node .gpu-kit/flash-decode.mjs

import {
  createGpu,
  FLASH_DECODE_GROUPS,
  FLASH_SPLIT_KV,
  type FlashAttentionOptions,
  flashAttention,
  measure,
  randomNormal,
  type SplitKvSettings,
  type Tensor,
} from '../../packages/core/src/index.js';
import { kernelTimes } from './flash-problem.js';

const gpu = await createGpu({ fast: true, maxPooledBytes: 16 * 2 ** 30 });
const defaults: SplitKvSettings = { ...FLASH_SPLIT_KV };

interface DecodeShape {
  name: string;
  batch: number;
  keys: number;
  hq: number;
  hkv: number;
  d: number;
  dv: number;
  /** Packed sequences (NSA's dense column) or a dense batch (MLA's unabsorbed column). */
  packed: boolean;
}

const SHAPES: DecodeShape[] = [
  { name: 'NSA dense decode', batch: 8, keys: 16384, hq: 64, hkv: 4, d: 128, dv: 128, packed: true },
  { name: 'NSA dense decode', batch: 8, keys: 65536, hq: 64, hkv: 4, d: 128, dv: 128, packed: true },
  { name: 'MLA unabsorbed decode', batch: 1, keys: 4096, hq: 40, hkv: 40, d: 96, dv: 64, packed: false },
  { name: 'MLA unabsorbed decode', batch: 32, keys: 4096, hq: 40, hkv: 40, d: 96, dv: 64, packed: false },
  { name: 'MLA unabsorbed decode', batch: 64, keys: 4096, hq: 40, hkv: 40, d: 96, dv: 64, packed: false },
];

const SETTINGS: [string, Partial<SplitKvSettings>, boolean][] = [
  ['ungrouped, unsplit', { targetWorkgroups: 0 }, false],
  ['ungrouped, target 4096', {}, false],
  ['unsplit', { targetWorkgroups: 0 }, true],
  ['target 1024', { targetWorkgroups: 1024 }, true],
  ['target 2048', { targetWorkgroups: 2048 }, true],
  ['target 4096 (default)', {}, true],
  ['target 8192', { targetWorkgroups: 8192 }, true],
  ['target 4096, parts >= 128', { minSplitKeys: 128 }, true],
];

const maxDifference = (a: Float32Array, b: Float32Array) =>
  a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i]!)), 0);

for (const s of SHAPES) {
  const f16 = (shape: number[], seed: number) => randomNormal(gpu, shape, seed, { dtype: 'f16' });
  // Packed: q [batch, hq, d], k [batch · keys, hkv, d]; dense: q [batch, 1, hq, d], k [batch, keys, hkv, d].
  const queries = s.packed ? [s.batch] : [s.batch, 1];
  const keys = s.packed ? [s.batch * s.keys] : [s.batch, s.keys];
  const q = await f16([...queries, s.hq, s.d], 1);
  const k = await f16([...keys, s.hkv, s.d], 2);
  const v = await f16([...keys, s.hkv, s.dv], 3);
  const sequences = Array.from({ length: s.batch + 1 }, (_, b) => b);
  const options: FlashAttentionOptions = {
    causal: true,
    tier: 'subgroup-matrix',
    ...(s.packed && { cuSeqlensQ: sequences, cuSeqlensK: sequences.map((b) => b * s.keys) }),
  };
  let first: Float32Array | undefined;
  for (const [label, settings, grouped] of SETTINGS) {
    Object.assign(FLASH_SPLIT_KV, defaults, settings);
    FLASH_DECODE_GROUPS.enabled = grouped;
    const run = async () => {
      const r = await flashAttention(gpu, q, k, v, options);
      r.lse.dispose();
      return r.o;
    };
    const m = await measure(gpu, async () => (await run()).dispose(), { warmup: 2, iters: 5 });
    using o: Tensor = await run();
    const out = await o.read();
    first ??= out;
    console.log(
      `${s.name} b=${s.batch} keys=${s.keys} ${label}: ${(m.median * 1000).toFixed(1)} us [${kernelTimes(m)}] max |o - first| ${maxDifference(out, first).toExponential(2)}`,
    );
  }
  for (const t of [q, k, v]) t.dispose();
}
Object.assign(FLASH_SPLIT_KV, defaults);
FLASH_DECODE_GROUPS.enabled = true;
gpu.destroy();

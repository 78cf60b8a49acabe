// What the NSA diagnostics share: the bench's reference problem (b=1, hq=64, hkv=4, d=128, f16,
// the reference config) on a fast device, n tokens from the command line (65536 by default).

import { createGpu, randomNormal } from '../../packages/core/src/index.js';
import { resolveNsaConfig } from '../../packages/nsa/src/index.js';

/** The device, config and inputs of the NSA diagnostics. */
export async function nsaProblem() {
  const n = Number(process.argv[2] ?? 65536);
  const gpu = await createGpu({ fast: true, maxPooledBytes: 16 * 2 ** 30 });
  const c = resolveNsaConfig({ heads: 64, kvHeads: 4, headDim: 128 });
  const q = await randomNormal(gpu, [1, n, 64, 128], 1, { dtype: 'f16' });
  const k = await randomNormal(gpu, [1, n, 4, 128], 2, { dtype: 'f16' });
  const v = await randomNormal(gpu, [1, n, 4, 128], 3, { dtype: 'f16' });
  const g = await randomNormal(gpu, [1, n, 64, 3], 4, { dtype: 'f16' });
  return { n, gpu, c, q, k, v, g };
}

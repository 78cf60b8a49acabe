/** `webattn verify core`: every matmul variant the adapter runs, against the reference matmul. */
import {
  type Gpu,
  launchMatmul,
  type MatmulVariant,
  matmulProblem,
  matmulVariantName,
  matmulVariants,
  matmulWgsl,
  Tensor,
  tierDtype,
} from '@webattn/core';
import { compare, randn, matmul as referenceMatmul, TOLERANCES } from '@webattn/reference';
import type { Check } from './check.js';

/** Small shapes with ragged edges: [M, K, N]. */
const SHAPES: [number, number, number][] = [
  [1, 70, 33],
  [67, 45, 130],
];

/** Lets tests swap a kernel's source to prove that a wrong kernel fails verification. */
export type KernelSource = (variant: MatmulVariant) => string;

/** The matmul checks for every variant `gpu` can run. */
export function coreChecks(gpu: Gpu, source: KernelSource = matmulWgsl): Check[] {
  const checks: Check[] = [];
  for (const variant of matmulVariants(gpu.caps)) {
    for (const [M, K, N] of SHAPES) {
      checks.push({
        suite: 'core',
        name: `${matmulVariantName(variant)} ${M}x${K}x${N}`,
        tier: variant.tier,
        async run(device) {
          const dtype = tierDtype(variant.tier);
          const a = randn(M * K, 11);
          const b = randn(K * N, 12);
          using ta = Tensor.from(device, a, [M, K], dtype);
          using tb = Tensor.from(device, b, variant.transposeB ? [N, K] : [K, N], dtype);
          using tc = Tensor.empty(device, [M, N], dtype);
          // Compare against the product of what the GPU holds (f16 inputs are rounded on upload).
          const [ha, hb] = await Promise.all([ta.read(), tb.read()]);
          await launchMatmul(
            device,
            variant,
            ta,
            tb,
            tc,
            matmulProblem(ta, tb, variant.transposeB),
            source(variant),
          );
          const expected = referenceMatmul(ha, hb, M, K, N, { transposeB: variant.transposeB });
          return [{ output: 'c', comparison: compare(expected, await tc.read(), TOLERANCES[dtype]) }];
        },
      });
    }
  }
  return checks;
}

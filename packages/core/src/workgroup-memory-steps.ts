/**
 * Workgroup memory and occupancy on the H200's Vulkan driver (measured 2026-12-01).
 *
 * A kernel's declared workgroup memory alone sets its speed in steps. Core's tensor-core flash
 * forward (15.9 KiB, 64 invocations) at n = 16384, nothing changed but an array it never reads
 * (scripts/diagnostics workgroup-padding and flash-ablations shared): 31.6 ms with up to 16,384
 * bytes declared, 41.9 ms at 16,400 and 41 ms up to 24,464, 76 ms at 32,656 and up to 48 KiB. The
 * first step is at 16 KiB; the second lies somewhere above 24,464 bytes and at most at 32,656.
 * Core's dQ kernel ran 1.75x slower at 32.5 KiB than at 23.5. Kernels whose workgroups per SM are
 * bounded by that memory therefore gain from staying under a step, even at the cost of narrower
 * tiles. Every measurement so far fits an SM that gives its workgroups 48 KiB in all, so that it
 * holds floor(48 KiB / declared) of them (steps at 24 KiB, 16, 12, ...); the steps listed here are
 * the sizes measured under them (docs/perf-notes.md, 2026-12-01).
 */

/**
 * Declared workgroup-memory sizes, in bytes, up to which the H200 was measured to run as fast as
 * with less: 16 KiB (16,400 bytes ran 1.3x slower), and 24,464, the largest size measured under the
 * second step.
 */
export const WORKGROUP_MEMORY_STEPS: readonly number[] = [16 * 1024, 24_464];

/**
 * The first of `candidates` (in order of preference) within the lowest step of
 * {@link WORKGROUP_MEMORY_STEPS} that any of them fits, else the first within `limit` (the
 * device's), else undefined: a narrower tile under a step is taken over a wider one above it.
 */
export function withinWorkgroupMemorySteps<T>(
  candidates: readonly T[],
  bytes: (candidate: T) => number,
  limit: number,
): T | undefined {
  for (const step of [...WORKGROUP_MEMORY_STEPS.filter((s) => s < limit), limit]) {
    const found = candidates.find((c) => bytes(c) <= step);
    if (found !== undefined) return found;
  }
  return undefined;
}

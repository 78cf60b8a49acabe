/**
 * Workgroup memory and occupancy on the H200's Vulkan driver (measured 2026-12-01).
 *
 * A kernel's declared workgroup memory alone sets its speed in steps. Core's tensor-core flash
 * forward (15.9 KiB, 64 invocations) ran at 31.6 ms at n = 16384 with up to 16384 bytes declared,
 * at 41 ms with 16 bytes more and up to 24.6 KiB, and at 76 ms from 32.6 KiB on, nothing else
 * changed (an array kept live behind a condition no invocation meets; scripts/diagnostics
 * workgroup-padding and flash-ablations shared). The dQ kernel ran 1.75x slower at 32.5 KiB than
 * at 23.5. Kernels limited by how many workgroups an SM holds therefore gain from staying within
 * 16 or 32 KiB, even at the cost of narrower tiles; kernels limited by registers (the MLA decode,
 * one workgroup per SM) do not move.
 */

/** Declared workgroup-memory sizes past which the H200 runs fewer workgroups per SM. */
export const WORKGROUP_MEMORY_STEPS: readonly number[] = [16 * 1024, 32 * 1024];

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

/**
 * Workgroup memory and occupancy on the H200's Vulkan driver (measured 2026-12-01).
 *
 * A kernel's declared workgroup memory alone sets its speed in steps: an SM gives its workgroups
 * 48 KiB in all, so it holds floor(48 KiB / declared) of them. Core's tensor-core flash forward
 * (15.9 KiB, 64 invocations) at n = 16384, nothing changed but an array it never reads
 * (scripts/diagnostics flash-ablations shared): 31.6 ms up to 16,384 bytes declared (three
 * workgroups per SM), 41.9 ms from 16,400 to 24,576 (two), 79.0 ms at 24,592 and up to 48 KiB
 * (one). The NSA selected backward's dQ kernel (11.1 KiB) at 65,536 tokens (workgroup-padding):
 * 36.6 ms at 12,288 bytes (four), 42.4 at 12,304 (three). Kernels whose workgroups per SM are
 * bounded by that memory therefore gain from staying under a step, even at the cost of narrower
 * tiles (docs/perf-notes.md, the two 2026-12-01 sections).
 */

/** Workgroup memory an H200 SM shares among its resident workgroups, in bytes. */
export const SM_WORKGROUP_MEMORY = 48 * 1024;

/**
 * Declared workgroup-memory sizes, in bytes, at which the H200 holds one workgroup fewer per SM
 * just above: 16 KiB (three up to it, two above) and 24 KiB (two up to it, one above).
 */
export const WORKGROUP_MEMORY_STEPS: readonly number[] = [SM_WORKGROUP_MEMORY / 3, SM_WORKGROUP_MEMORY / 2];

/** Workgroups of a kernel declaring `bytes` of workgroup memory that an H200 SM holds at once. */
export function workgroupsPerSm(bytes: number): number {
  return Math.floor(SM_WORKGROUP_MEMORY / Math.max(bytes, 1));
}

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

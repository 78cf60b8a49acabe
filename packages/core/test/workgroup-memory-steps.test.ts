import { describe, expect, it } from 'vitest';
import { WORKGROUP_MEMORY_STEPS, withinWorkgroupMemorySteps } from '../src/workgroup-memory-steps.js';

describe('withinWorkgroupMemorySteps', () => {
  const kib = (n: number) => n * 1024;
  const pick = (sizes: number[], limit = kib(48)) =>
    withinWorkgroupMemorySteps(sizes, (bytes) => bytes, limit);

  it('steps at 16 KiB and 24,464 bytes, the sizes measured under them', () => {
    expect(WORKGROUP_MEMORY_STEPS).toEqual([16384, 24464]);
  });

  it('takes a narrower candidate under a step over a wider one above it', () => {
    // Widest first, as the planners list their tiles: 42.6, 21.6 and 11.1 KiB.
    expect(pick([43648, 22144, 11392])).toBe(11392);
    expect(pick([43648, 22144])).toBe(22144);
    // Within one step the order of preference decides.
    expect(pick([kib(15), kib(10)])).toBe(kib(15));
    expect(pick([kib(23), kib(20)])).toBe(kib(23));
  });

  it('counts a step inclusively: 16384 bytes are under the first step, 16400 are not', () => {
    expect(pick([16400, 16384])).toBe(16384);
    expect(pick([kib(30), 24464])).toBe(24464);
  });

  it('falls back to the device limit, and to nothing past it', () => {
    expect(pick([kib(40), kib(60)])).toBe(kib(40));
    expect(pick([kib(60)])).toBeUndefined();
    // A device limit below a step bounds that step.
    expect(pick([kib(20), kib(12)], kib(16))).toBe(kib(12));
    expect(pick([kib(20)], kib(16))).toBeUndefined();
  });
});

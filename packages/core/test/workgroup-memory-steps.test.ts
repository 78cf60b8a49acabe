import { describe, expect, it } from 'vitest';
import {
  WORKGROUP_MEMORY_STEPS,
  withinWorkgroupMemorySteps,
  workgroupsPerSm,
} from '../src/workgroup-memory-steps.js';

describe('withinWorkgroupMemorySteps', () => {
  const kib = (n: number) => n * 1024;
  const pick = (sizes: number[], limit = kib(48)) =>
    withinWorkgroupMemorySteps(sizes, (bytes) => bytes, limit);

  it('steps at 16 and 24 KiB, where an SM sharing 48 KiB holds one workgroup fewer', () => {
    expect(WORKGROUP_MEMORY_STEPS).toEqual([16384, 24576]);
    expect([16384, 16400, 24576, 24592].map(workgroupsPerSm)).toEqual([3, 2, 2, 1]);
    expect([12288, 12304, kib(48), kib(48) + 16].map(workgroupsPerSm)).toEqual([4, 3, 1, 0]);
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
    expect(pick([kib(30), 24576])).toBe(24576);
    expect(pick([24592, kib(30)])).toBe(24592);
  });

  it('falls back to the device limit, and to nothing past it', () => {
    expect(pick([kib(40), kib(60)])).toBe(kib(40));
    expect(pick([kib(60)])).toBeUndefined();
    // A device limit below a step bounds that step.
    expect(pick([kib(20), kib(12)], kib(16))).toBe(kib(12));
    expect(pick([kib(20)], kib(16))).toBeUndefined();
  });
});

import { describe, expect, it } from 'vitest';
import { TOLERANCES, toleranceFor } from '../src/index.js';

describe('tolerances', () => {
  it('are looser for f16 than for f32', () => {
    expect(TOLERANCES.f16.rmsRel).toBeGreaterThan(TOLERANCES.f32.rmsRel);
    expect(TOLERANCES.f16.maxAbs).toBeGreaterThan(TOLERANCES.f32.maxAbs);
  });

  it('scale only the max-abs bound with the magnitude', () => {
    expect(toleranceFor('f16')).toEqual(TOLERANCES.f16);
    expect(toleranceFor('f32', 4)).toEqual({
      rmsRel: TOLERANCES.f32.rmsRel,
      maxAbs: TOLERANCES.f32.maxAbs * 4,
    });
  });

  it('cannot be loosened for everyone by one caller', () => {
    const t = toleranceFor('f32');
    t.maxAbs = 1;
    expect(TOLERANCES.f32.maxAbs).not.toBe(1);
    expect(() => {
      (TOLERANCES.f32 as { maxAbs: number }).maxAbs = 1;
    }).toThrow(TypeError);
  });

  it('reject a magnitude that is not a positive finite number', () => {
    for (const bad of [0, -1, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(() => toleranceFor('f32', bad)).toThrow(/magnitude/);
    }
  });
});

/** Choosing a kernel tier for an op from the device's capabilities and the tensors' dtype. */
import type { Capabilities, Tier } from './capabilities.js';
import { TIERS } from './capabilities.js';
import type { Dtype } from './dtype.js';
import { WebAttnError } from './errors.js';

/** The storage dtype each tier's kernels read and write. */
export function tierDtype(tier: Tier): Dtype {
  return tier === 'f16' || tier === 'subgroup-matrix' ? 'f16' : 'f32';
}

/** What a tier needs that an adapter may lack, for error messages. */
const TIER_NEEDS: Record<Tier, string> = {
  portable: 'nothing',
  subgroups: "the 'subgroups' feature",
  f16: "the 'shader-f16' feature",
  'subgroup-matrix':
    "'chromium-experimental-subgroup-matrix' with an f16->f32 matrix shape, plus 'shader-f16' and 'subgroups'",
};

/**
 * The tier an op runs: `requested` if given (checked against the device and dtype), otherwise the
 * fastest tier for `dtype` this device has.
 */
export function pickTier(caps: Capabilities, dtype: Dtype, requested?: Tier, op = 'op'): Tier {
  if (requested !== undefined) {
    if (!TIERS.includes(requested)) {
      throw new WebAttnError(
        'invalid-argument',
        `${op}: tier: expected one of ${TIERS.join(', ')}, got ${JSON.stringify(requested)}`,
      );
    }
    if (!caps.tiers.includes(requested)) {
      throw new WebAttnError(
        'missing-feature',
        `${op}: tier '${requested}' needs ${TIER_NEEDS[requested]}; this adapter offers ${caps.tiers.join(', ')}`,
      );
    }
    if (tierDtype(requested) !== dtype) {
      throw new WebAttnError(
        'dtype-mismatch',
        `${op}: tier '${requested}' runs on ${tierDtype(requested)} tensors, got ${dtype}`,
      );
    }
    return requested;
  }
  if (dtype === 'f16') {
    if (caps.tiers.includes('subgroup-matrix')) return 'subgroup-matrix';
    if (caps.tiers.includes('f16')) return 'f16';
    throw new WebAttnError(
      'missing-feature',
      `${op}: f16 tensors need ${TIER_NEEDS.f16}, which this adapter lacks`,
    );
  }
  return caps.tiers.includes('subgroups') ? 'subgroups' : 'portable';
}

/** The `tier` key every `webattn run` op accepts in its config. */
import { TIERS, type Tier } from '@webattn/core';

/** The tier a run config asks for, or undefined for the fastest; an unknown name is an error naming the choices. */
export function tierConfig(config: Record<string, unknown>): Tier | undefined {
  const tier = config.tier;
  if (tier === undefined) return undefined;
  if (!TIERS.includes(tier as Tier)) {
    throw new Error(`config.tier: expected one of ${TIERS.join(', ')}, got ${JSON.stringify(tier)}`);
  }
  return tier as Tier;
}

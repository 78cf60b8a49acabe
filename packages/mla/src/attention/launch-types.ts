/** What one launch of the absorbed attention reads, after the host checks. */
import type { Tensor, Tier } from '@webattn/core';

/** The keys a launch reads: a dense cache or a paged one. */
export type MlaKeys =
  | { source: 'dense'; cKv: Tensor; kPe: Tensor; slots: number }
  | { source: 'paged'; pages: Tensor; table: Tensor; pageSize: number; maxPages: number };

/** One checked launch of the absorbed attention. */
export interface MlaLaunch {
  qLatent: Tensor;
  qPe: Tensor;
  keys: MlaKeys;
  wUv: Tensor;
  lengths: ArrayLike<number>;
  scale: number;
  tier: Tier;
  splits?: number;
}

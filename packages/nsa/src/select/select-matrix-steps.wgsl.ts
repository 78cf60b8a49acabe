/**
 * Two steps of the tensor-core selection (select-matrix.wgsl.ts), each generated on its own: what a
 * tile of compressed keys adds to its tokens' selection-block scores once its scores are stored,
 * and the picks once every tile has been added.
 */
import { COMPONENTS } from '@webattn/core';
import { type BlockGeometry, overlapTerms } from './select.wgsl.js';
import { carriedScoreWgsl, offerFinalBlocksWgsl } from './select-streaming.wgsl.js';

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/** What {@link tileProbabilitiesWgsl} needs of the kernel's shape. */
export interface TileProbabilitiesShape {
  tile: number;
  tokens: number;
  geometry: BlockGeometry;
  /** Query rows per token (the group padded to whole fragments) and the score array's row stride. */
  tokenRows: number;
  scoreStride: number;
  /** Entries per token of the selection-block scores. */
  scoreLength: number;
  /** Pass the probabilities by shuffles (see selectMatrixShuffles) rather than workgroup memory. */
  shuffles: boolean;
  /**
   * Offer each selection block to the token's kept top-n once final (select-streaming.wgsl.ts)
   * instead of adding to a score array; needs `shuffles`, whose lanes carry the partial scores.
   */
  streaming?: boolean;
  /**
   * Whether the scores are head-major (`Ss` and `lse2` arrays of vec4<f32>: a compressed block's
   * heads consecutive, `scoreStride` f32 apart per block), read four heads at a time, for a
   * group of `group` heads; row-major (`Ss[row][block]`, scalars) otherwise.
   */
  headMajor?: { group: number };
}

/**
 * WGSL of a tile's step after its scores: each (token, compressed block)'s probability summed over
 * the heads, added, weighted by overlap, to the selection blocks it overlaps. Needs the kernel's
 * `Ss`, `lse2`, `score`, `tokenVisible`, `tokenOwn` (and `probability` without shuffles), and
 * `c0`, `u0`, `u1`, `sgc`, `sgLane`, `li`, `scale2`.
 */
export function tileProbabilitiesWgsl(o: TileProbabilitiesShape): string {
  // Each (token, compressed block of the tile)'s probability summed over the heads.
  // Head-major, a block's heads are read four at a time, the terms added in the same order of heads.
  const headMajor = o.headMajor;
  const sumOverHeads = headMajor
    ? (u: string, i: string) =>
        Array.from({ length: o.tokenRows / 4 }, (_, hv) => {
          const heads = Array.from({ length: 4 }, (_, c) => 4 * hv + c).filter((h) => h < headMajor.group);
          if (heads.length === 0) return '';
          return `          { let s4 = Ss[(${u} * TILE + u32(${i})) * ${o.scoreStride / 4}u + ${hv}u] * scale2;
            let l4 = lse2[${u} * ${o.tokenRows / 4}u + ${hv}u];
${heads.map((h) => `            sum += exp2(s4.${COMPONENTS[h % 4]} - l4.${COMPONENTS[h % 4]});`).join('\n')} }`;
        })
          .filter((line) => line !== '')
          .join('\n')
    : (u: string, i: string) => `          for (var h = 0u; h < GROUP; h++) {
            let r = ${u} * ${o.tokenRows}u + h;
            sum += exp2(Ss[r * ${o.scoreStride}u + u32(${i})] * scale2 - lse2[r]);
          }`;
  const probabilitySum = (u: string, i: string) => `var sum = 0.0;
        if (${u} >= u0 && ${u} < u1 && c0 + ${i} < tokenVisible[${u}]) {
${sumOverHeads(u, i)}
        }`;
  // The probabilities through workgroup memory, then each (token, selection block the tile
  // overlaps) adds its terms (addOverlaps).
  const sharedOverlaps = `      for (var e = li; e < ${o.tokens * o.tile}u; e += THREADS) {
        let u = e / TILE;
        let i = i32(e % TILE);
        ${probabilitySum('u', 'i')}
        probability[e] = sum;
      }
      workgroupBarrier();
      // The selection blocks this tile's compressed blocks overlap, per token of the run.
      let firstJ = (c0 * p.stride) / p.blockSize;
      let spanJ = u32(((c0 + i32(TILE) - 1) * p.stride + p.kernelSize - 1) / p.blockSize - firstJ + 1);
      for (var e = li; e < TOKENS * spanJ; e += THREADS) {
        let u = e / spanJ;
        let J = firstJ + i32(e % spanJ);
        if (u >= u0 && u < u1 && J <= tokenOwn[u]) {
          addOverlaps(u * ${o.scoreLength}u, u * TILE, J, c0, min(tokenVisible[u], c0 + i32(TILE)));
        }
      }`;
  // One subgroup per token, one lane per compressed block of the tile: the lane's probability, then
  // lane L takes the tile's L-th selection block and adds the probabilities of the blocks
  // overlapping it, shuffled from their lanes, in addOverlaps' order (the same sums) and without
  // a barrier or a round trip through workgroup memory.
  const terms = overlapTerms(o.geometry);
  const R = o.geometry.blockSize / o.geometry.stride;
  const streaming = o.streaming === true;
  // Whether the token walks this tile, then the block's score so far and what follows the tile's
  // terms: from and back to the score array, or carried in a register to the offers of the
  // streaming top-n (select-streaming.wgsl.ts; one lane per compressed block of the tile).
  const inRun = 'u >= u0 && u < u1';
  const adds = streaming ? `let inRun = ${inRun};\n        let adds = inRun` : `let adds = ${inRun}`;
  const scoreSoFar = streaming
    ? carriedScoreWgsl({ shift: o.tile / R, subgroupSize: o.tile })
    : `var total = 0.0;
        if (adds) { total = score[u * ${o.scoreLength}u + u32(J)]; }`;
  const afterTerms = streaming
    ? offerFinalBlocksWgsl({ blockStrides: R })
    : `        if (adds) { score[u * ${o.scoreLength}u + u32(J)] = total; }`;
  const shuffledOverlaps = `      {
        let u = sgc;
        let i = i32(sgLane);
        ${probabilitySum('u', 'i')}
        let J = (c0 * p.stride) / p.blockSize + i;
        let i0 = ${terms.first('J')};
        let end = min(tokenVisible[u], c0 + i32(TILE));
        ${adds} && J <= tokenOwn[u] && i0 < end && i0 + ${terms.weights.length - 1} >= c0;
        ${scoreSoFar}
${terms.weights
  .map(
    (weight, m) =>
      `        { let pm = subgroupShuffle(sum, u32(clamp(i0 + ${m} - c0, 0, ${o.tile - 1})));
          if (adds && i0 + ${m} >= c0 && i0 + ${m} < end) { total += ${weight}.0 * pm; } }`,
  )
  .join('\n')}
${afterTerms}
      }`;
  return o.shuffles ? shuffledOverlaps : sharedOverlaps;
}

/**
 * `pickable(base, J, own, initEnd, localCount)`: block J's score for a token's picks, or -3e38
 * where the block is forced into its slots or past its own block. Needs the kernel's `score`.
 */
export const PICKABLE_WGSL = `// Block J's score for the picks of the token whose scores start at base, or -3e38 for a block
// forced into its slots or past its own.
fn pickable(base: u32, J: u32, own: i32, initEnd: i32, localCount: i32) -> f32 {
  let j = i32(J);
  if (j > own || j < initEnd || j > own - localCount) { return -3.0e38; }
  return score[base + J];
}`;

/**
 * WGSL of the picks, once every tile has been added: one subgroup per token (rounds of them where
 * tokens outnumber subgroups) writes the forced blocks, then picks the rest by repeated arg-max
 * with subgroup operations, each lane's first `cached` blocks held in registers.
 */
export function picksWgsl(o: { scoreLength: number; cached: number }): string {
  return `  // Each token's slots, one subgroup per token: the forced blocks (the first initBlocks up to its
  // own, then localBlocks more ending at its own), then the picks.
  for (var round = 0u; round < TOKENS; round++) {
    if (round * sgCount >= TOKENS) { break; }
    let u = round * sgCount + sg;
    let valid = u < count;
    let uu = min(u, TOKENS - 1u);
    let own = select(-1, tokenOwn[uu], valid);
    let used = min(i32(TOPN), own + 1);
    let initEnd = min(p.initBlocks, own + 1);
    let localCount = clamp(own + 1 - p.initBlocks, 0, p.localBlocks);
    let forced = initEnd + localCount;
    let out = ((tFirst + u) * p.kvHeads + g) * TOPN;
    if (valid) {
      for (var s = i32(sgLane); s < i32(TOPN); s += i32(sgSize)) {
        if (s < forced) { selected[out + u32(s)] = select(own - (s - initEnd), s, s < initEnd); }
        if (s >= used) { selected[out + u32(s)] = -1; }
      }
    }
    let base = uu * ${o.scoreLength}u;
    // This lane's first ${o.cached} blocks (J = sgLane + m · sgSize) held in registers for the picks, the
    // forced ones and those past its own as -3e38, below every score; further blocks are read from
    // workgroup memory at each pick.
${range(o.cached)
  .map((m) => `    let cs${m} = pickable(base, ${m}u * sgSize + sgLane, own, initEnd, localCount);`)
  .join('\n')}
    var lastScore = 3.0e38;
    var lastBlock = -1;
    for (var k = 0; k < i32(TOPN); k++) {
      // This lane's best block after the last pick (it walks its blocks upwards: ties keep the lowest).
      var best = -2.0;
      var at = -1;
${range(o.cached)
  .map(
    (m) =>
      `      { let J = i32(${m}u * sgSize + sgLane); if ((cs${m} < lastScore || (cs${m} == lastScore && J > lastBlock)) && cs${m} > best) { best = cs${m}; at = J; } }`,
  )
  .join('\n')}
      for (var J = i32(${o.cached}u * sgSize + sgLane); J <= own; J += i32(sgSize)) {
        let s = pickable(base, u32(J), own, initEnd, localCount);
        if ((s < lastScore || (s == lastScore && J > lastBlock)) && s > best) {
          best = s;
          at = J;
        }
      }
      let sgBest = subgroupMax(best);
      let sgAt = subgroupMin(select(0x7fffffff, at, at >= 0 && best == sgBest));
      lastScore = sgBest;
      lastBlock = sgAt;
      if (valid && sgLane == 0u && forced + k < used) {
        selected[out + u32(forced + k)] = select(sgAt, -1, sgAt == 0x7fffffff);
      }
    }
  }`;
}

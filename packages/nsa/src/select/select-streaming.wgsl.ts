/**
 * The tensor-core selection's streaming top-n (SelectMatrixConfig.streamingPicks): each token's
 * subgroup keeps its best blocks so far in registers, one per lane, and offers each selection block
 * to them as soon as its score is final, so that no token holds a score per selection block in
 * workgroup memory (at 65,536 tokens that array was half of the kernel's 48 KiB, and it held one
 * workgroup per SM).
 *
 * The walk goes over the compressed blocks in increasing order, so a selection block's score is
 * final once the tile holding the last compressed block overlapping it is added (or the token's
 * last tile). Blocks become final in increasing index order, so a block offered with the score of
 * one already kept ranks after it: the kept list is ordered by score descending, ties to the lower
 * index, the same order as the repeated arg-max of the picks over the whole score array
 * (select-matrix-steps.wgsl.ts), and the same sums reach it (each block's terms are added in the
 * same order, carried from tile to tile in a register instead of through workgroup memory).
 *
 * Offering runs a loop whose trip count is the same on every lane of a subgroup but not across the
 * workgroup's subgroups (each is one token), so the kernel turns the subgroup-uniformity diagnostic
 * off: every subgroup operation below runs with all of its subgroup's lanes.
 */

/** The directive that lets the offers' subgroup operations run in subgroup-uniform control flow. */
export const STREAMING_DIAGNOSTIC = 'diagnostic(off, subgroup_uniformity);';

/**
 * WGSL offering block `block` with score `score` (subgroup-uniform expressions, the block above
 * every one offered before) to the subgroup's kept list `listScore`/`listBlock`, lane s < TOPN
 * holding the s-th best: it goes after every kept block scoring at least as much.
 */
function offerWgsl(score: string, block: string): string {
  return `{
        let offeredScore = ${score};
        let offeredBlock = ${block};
        let rank = subgroupAdd(select(0u, 1u, sgLane < TOPN && listScore >= offeredScore));
        let upScore = subgroupShuffleUp(listScore, 1u);
        let upBlock = subgroupShuffleUp(listBlock, 1u);
        if (sgLane == rank) {
          listScore = offeredScore;
          listBlock = offeredBlock;
        } else if (sgLane > rank) {
          listScore = upScore;
          listBlock = upBlock;
        }
      }`;
}

/**
 * WGSL declaring, before the walk, the state of the subgroup's token (`sgc`): its own block and
 * forced blocks, the kept list (empty: block -1 scoring below every score), the first block not yet
 * final, and each lane's partial score carried to the next tile. Needs `tokenOwn` written and a
 * barrier passed.
 */
export function streamingStateWgsl(): string {
  return `  // This subgroup's token: its own block (-1 past the workgroup's tokens), the blocks forced
  // into its first slots (the first initBlocks, then localBlocks ending at its own).
  let myOwn = tokenOwn[sgc];
  let myInitEnd = min(p.initBlocks, myOwn + 1);
  let myLocalCount = clamp(myOwn + 1 - p.initBlocks, 0, p.localBlocks);
  // Its best blocks so far, lane s < TOPN holding the s-th; the blocks below doneJ have been
  // offered (or are forced); each lane's partial score of its block, for the next tile.
  var listScore = -3.0e38;
  var listBlock = -1;
  var doneJ = 0;
  var carried = 0.0;`;
}

/**
 * WGSL of a lane's score of block `J` so far, before the tile adds to it: the partial its block had
 * in the tile before, on the lane `shift` blocks up (each tile moves the lanes' blocks by
 * tile / (blockSize / stride)). Needs `inRun` (the token is walking this tile).
 */
export function carriedScoreWgsl(o: { shift: number; subgroupSize: number }): string {
  return `let fromBefore = subgroupShuffle(carried, min(sgLane + ${o.shift}u, ${o.subgroupSize - 1}u));
        var total = select(0.0, fromBefore, inRun && sgLane + ${o.shift}u < ${o.subgroupSize}u);`;
}

/**
 * WGSL after a tile has added its terms to `total` (lane's block `J`, whose last overlapping
 * compressed block is `J·R + R - 1`): carries the partial, then offers the blocks now final, in
 * increasing order, those that cannot beat the kept list's last skipped as a whole.
 */
export function offerFinalBlocksWgsl(o: { blockStrides: number }): string {
  const R = o.blockStrides;
  return `        carried = total;
        // Final: every compressed block overlapping it has been added, or this is the token's last tile.
        let isFinal = inRun && J >= doneJ && J <= myOwn &&
          (J * ${R} + ${R - 1} < c0 + i32(TILE) || c0 + i32(TILE) >= tokenVisible[u]);
        let offered = isFinal && J >= myInitEnd && J <= myOwn - myLocalCount;
        doneJ = max(doneJ, subgroupMax(select(-1, J + 1, isFinal)));
        let threshold = subgroupShuffle(listScore, TOPN - 1u);
        var pending = subgroupBallot(offered && total > threshold).x;
        loop {
          if (pending == 0u) { break; }
          let l = firstTrailingBit(pending);
          pending &= pending - 1u;
          ${offerWgsl('subgroupShuffle(total, l)', 'J - i + i32(l)')}
        }`;
}

/**
 * WGSL of the picks once the walk is done: the blocks up to its own that no tile reached (a token
 * that sees no compressed block) are offered with score 0, then each lane s < TOPN writes slot s:
 * a forced block, the (s - forced)-th kept block, or -1 past the token's `min(topN, own + 1)`.
 */
export function streamingPicksWgsl(): string {
  return `  for (var J = doneJ; J <= myOwn; J++) {
    if (J >= myInitEnd && J <= myOwn - myLocalCount) {
      ${offerWgsl('0.0', 'J')}
    }
  }
  {
    let s = i32(sgLane);
    let used = min(i32(TOPN), myOwn + 1);
    let forced = myInitEnd + myLocalCount;
    let kept = subgroupShuffle(listBlock, u32(clamp(s - forced, 0, i32(TOPN) - 1)));
    if (sg < count && s < i32(TOPN)) {
      var block = -1;
      if (s < forced) {
        block = select(myOwn - (s - myInitEnd), s, s < myInitEnd);
      } else if (s < used) {
        block = kept;
      }
      selected[((tFirst + sgc) * p.kvHeads + g) * TOPN + u32(s)] = block;
    }
  }`;
}

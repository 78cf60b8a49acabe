#!/usr/bin/env node
// How many selected blocks neighbouring tokens share on the bench's random inputs (standard normal
// q and k, b=1, hq=64, hkv=4, d=128, the reference config), for 64 tokens near the end of a
// 65,536-token sequence, with @webattn/reference's selection rule on the CPU (about 20 s). It says
// how much a selected-attention kernel that stages each block once for several neighbouring tokens
// could save in the bench: the distinct blocks of T consecutive tokens against their 16·T picks.
// Usage (after `pnpm build`): node scripts/nsa-neighbour-picks.mjs

import {
  compressedBlockCount,
  compressedKeys,
  overlapWeight,
  selectionBlockCount,
} from '../packages/reference/dist/nsa/blocks.js';
import { resolveNsaConfig } from '../packages/reference/dist/nsa/config.js';
import { topNBlocks } from '../packages/reference/dist/nsa/selection.js';
import { randn } from '../packages/reference/dist/random.js';

const [n, hq, hkv, d] = [65536, 64, 4, 128];
const c = resolveNsaConfig({}, d);
const group = hq / hkv;
const k = randn(n * hkv * d, 2);
const M = compressedBlockCount(n, c);
const cmp = new Float64Array(M * hkv * d);
for (let m = 0; m < M; m++)
  for (let g = 0; g < hkv; g++)
    for (let x = 0; x < d; x++) {
      let s = 0;
      for (let j = 0; j < c.kernelSize; j++) s += k[((m * c.stride + j) * hkv + g) * d + x];
      cmp[(m * hkv + g) * d + x] = s / c.kernelSize;
    }
const NB = selectionBlockCount(n, c);
const scale = 1 / Math.sqrt(d);
const tokens = 64;
const first = n - 600;
const sel = []; // [token][g] -> blocks
for (let i = 0; i < tokens; i++) {
  const t = first + i;
  const q = randn(hq * d, 1000 + i);
  const visible = compressedKeys(t, M, c);
  const row = [];
  for (let g = 0; g < hkv; g++) {
    const p = new Float64Array(visible.length);
    for (let h = g * group; h < (g + 1) * group; h++) {
      const s = visible.map((m) => {
        let a = 0;
        for (let x = 0; x < d; x++) a += q[h * d + x] * cmp[(m * hkv + g) * d + x];
        return a * scale;
      });
      const mx = Math.max(...s);
      let l = 0;
      for (const v of s) l += Math.exp(v - mx);
      s.forEach((v, j) => {
        p[j] += Math.exp(v - mx) / l;
      });
    }
    const scores = new Float64Array(NB);
    for (let J = 0; J < NB; J++)
      visible.forEach((m, j) => {
        const w = overlapWeight(m, J, c);
        if (w) scores[J] += w * p[j];
      });
    row.push(topNBlocks(scores, t, c));
  }
  sel.push(row);
}
for (const T of [1, 2, 4, 8]) {
  let unions = 0,
    groups = 0;
  for (let i = 0; i + T <= tokens; i += T)
    for (let g = 0; g < hkv; g++) {
      const u = new Set();
      for (let j = 0; j < T; j++) for (const b of sel[i + j][g]) u.add(b);
      unions += u.size;
      groups++;
    }
  console.log(
    `${T} consecutive tokens: ${(unions / groups).toFixed(1)} distinct blocks of ${16 * T} picks (${((100 * unions) / groups / (16 * T)).toFixed(0)} %)`,
  );
}

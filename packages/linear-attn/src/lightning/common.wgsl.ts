/** WGSL pieces the lightning and decode kernels share. */

/**
 * `decayPow(λ, e) = λ^e` for a whole exponent, with `λ^0 = 1` (also for λ = 0, where WGSL's `pow`
 * is undefined) and `0^e = 0` for e > 0.
 */
export const DECAY_POW_WGSL = `fn decayPow(lam: f32, e: u32) -> f32 {
  if (e == 0u) { return 1.0; }
  if (lam <= 0.0) { return 0.0; }
  return exp2(f32(e) * log2(lam));
}`;

/**
 * `decayOf(h)`: λ_h, whose f32 bits the chunk table carries from word `p.decayTable` on: one binding
 * fewer than a separate decays array (the scan over split states binds six buffers as it is).
 */
export const DECAY_OF_WGSL = `fn decayOf(h: u32) -> f32 {
  return bitcast<f32>(table[p.decayTable + h]);
}`;

/**
 * `checkF16(v)`: sets the overflow flag when an f32 value is not finite or rounds past f16's largest
 * finite value (65504; anything from 65520 up rounds to infinity), so that an f16 output never holds
 * inf or NaN unnoticed. Needs a binding `overflow: array<atomic<u32>>`.
 */
export const CHECK_F16_WGSL = `fn checkF16(x: f32) {
  if ((bitcast<u32>(x) & 0x7fffffffu) > 0x477fefffu) { atomicOr(&overflow[0], 1u); }
}`;

/** The store of one output value: converted to the storage dtype, checked first when asked. */
export function storeWgsl(target: string, value: string, dtype: 'f32' | 'f16', check: boolean): string {
  return `${check ? `checkF16(${value}); ` : ''}${target} = ${dtype}(${value});`;
}

/**
 * Access to the per-chunk f32 states `[chunks, hq, dk, dv]`, which may span two bindings: at 65,536
 * tokens, 32 heads of 128 x 128 and 64-token chunks they take 2 GiB, one word more than the largest
 * binding a device may offer (maxStorageBufferBindingSize <= 2^31 - 4). When `split`, the entries
 * from `p.statesSplit` on (a chunk boundary) live in `statesHigh`, bound at `highBinding` with the
 * same access as `states`. `loadState(at)` and, when `writable`, `storeState(at, x)` hide where an
 * entry lives. Only the scan, which walks every chunk, needs this: the chunk-parallel kernels run
 * once per part instead (a branch per load cost them 30 % on the H200). With `width` 4 the
 * bindings are `array<vec4<f32>>` and `at` counts vec4s (the entries per state a multiple of 4).
 */
export function stateAccessWgsl(
  split: boolean,
  writable: boolean,
  highBinding: number,
  width: 1 | 4 = 1,
): string {
  const access = writable ? 'read_write' : 'read';
  const type = width === 4 ? 'vec4<f32>' : 'f32';
  if (!split) {
    return `fn loadState(at: u32) -> ${type} { return states[at]; }
${writable ? `fn storeState(at: u32, x: ${type}) { states[at] = x; }` : ''}`;
  }
  const boundary = width === 4 ? 'p.statesSplit / 4u' : 'p.statesSplit';
  return `@group(0) @binding(${highBinding}) var<storage, ${access}> statesHigh: array<${type}>;
fn loadState(at: u32) -> ${type} {
  let boundary = ${boundary};
  if (at < boundary) { return states[at]; }
  return statesHigh[at - boundary];
}
${
  writable
    ? `fn storeState(at: u32, x: ${type}) {
  let boundary = ${boundary};
  if (at < boundary) { states[at] = x; } else { statesHigh[at - boundary] = x; }
}`
    : ''
}`;
}

/**
 * A cooperative staging loop, unrolled: `count` elements over `threads` invocations (a divisor of
 * `count`), invocation `li` taking elements `li + k · threads`. Every `load(k)` (which sees `e${k}`,
 * the element, and declares its values with the suffix k) comes before the first `store(k)`: a loop
 * of load-then-store waits out the global-memory latency once per element, this once per tile (it
 * doubled the flash kernels' speed on the H200). The code is one block.
 */
export function unrolledStagingWgsl(
  count: number,
  threads: number,
  load: (k: number) => string,
  store: (k: number) => string,
): string {
  if (count % threads !== 0)
    throw new Error(`unrolledStagingWgsl: ${threads} invocations do not divide ${count}`);
  const steps = Array.from({ length: count / threads }, (_, k) => k);
  // In a block of its own, so that several stagings can share a scope.
  const body = [
    ...steps.map((k) => `let e${k} = li + ${k * threads}u;`),
    ...steps.map(load),
    ...steps.map(store),
  ];
  return `{\n${body.join('\n')}\n}`;
}

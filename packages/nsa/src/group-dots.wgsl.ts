/**
 * The dot products of a KV head's group of query heads with one key, shared by the kernels of the
 * tiers without tensor cores that score a key for the whole group: block selection (forward and
 * decode) and the group-centric selected attention.
 */
import type { Dtype } from '@webattn/core';

/** What the group dot products are specialised for: storage dtype, query heads per KV head, head dim. */
export interface GroupDotsConfig {
  dtype: Dtype;
  group: number;
  dim: number;
}

/** The binding the dot products read keys from: the compressed keys unless named otherwise. */
export interface GroupDotsKeys {
  keys?: string;
  /**
   * Whether every load of the key is issued before the first product, the loop unrolled: one wait
   * for memory per key instead of one per load. Decode's selected attention uses it; in decode's
   * compressed probabilities it was slower on the H200 (35 / 110 against 30 / 93 us).
   */
  unrolled?: boolean;
}

/** Elements per load: four where the head dim allows. */
function loadWidth(c: GroupDotsConfig): 1 | 4 {
  return c.dim % 4 === 0 ? 4 : 1;
}

/** Element type of the q and cmpK bindings {@link groupDotsWgsl} reads: vec4 where the head dim allows. */
export function groupDotsElement(c: GroupDotsConfig): string {
  return loadWidth(c) === 4 ? `vec4<${c.dtype}>` : c.dtype;
}

/**
 * WGSL of `groupDots(qRow, kRow) -> array<f32, group>`: the dot products of the group's query rows
 * `qRow, qRow + 1, ...` of q with row `kRow` of the keys (`cmpK`, or the binding `keys` names;
 * rows of `dim` elements). Each part of the key is loaded once for all the group's heads, four
 * elements per load where the head dim allows; the queries are the same for every invocation of a
 * workgroup, so they come from the cache. Shared by the selection of the forward and of decode and
 * by the selected branch's group kernel.
 */
export function groupDotsWgsl(c: GroupDotsConfig & GroupDotsKeys): string {
  const keys = c.keys ?? 'cmpK';
  const width = loadWidth(c);
  const loads = c.dim / width;
  if (c.unrolled) return unrolledGroupDotsWgsl(c, keys, width, loads);
  return `fn groupDots(qRow: u32, kRow: u32) -> array<f32, ${c.group}> {
  var dots: array<f32, ${c.group}>;
  for (var e = 0u; e < ${loads}u; e++) {
    let ke = ${width === 4 ? 'vec4f' : 'f32'}(${keys}[kRow * ${loads}u + e]);
    for (var hh = 0u; hh < ${c.group}u; hh++) {
      let qe = q[(qRow + hh) * ${loads}u + e];
      dots[hh] += ${width === 4 ? 'dot(vec4f(qe), ke)' : 'f32(qe) * ke'};
    }
  }
  return dots;
}`;
}

/** {@link groupDotsWgsl} with the key's loads issued first, then each head's sum in one expression. */
function unrolledGroupDotsWgsl(c: GroupDotsConfig, keys: string, width: 1 | 4, loads: number): string {
  const convert = width === 4 ? 'vec4f' : 'f32';
  const steps = Array.from({ length: loads }, (_, e) => e);
  const product = (e: number) =>
    width === 4 ? `dot(vec4f(q[at + ${e}u]), k${e})` : `f32(q[at + ${e}u]) * k${e}`;
  return `fn groupDots(qRow: u32, kRow: u32) -> array<f32, ${c.group}> {
  var dots: array<f32, ${c.group}>;
${steps.map((e) => `  let k${e} = ${convert}(${keys}[kRow * ${loads}u + ${e}u]);`).join('\n')}
  for (var hh = 0u; hh < ${c.group}u; hh++) {
    let at = (qRow + hh) * ${loads}u;
    dots[hh] = ${steps.map(product).join(' + ')};
  }
  return dots;
}`;
}

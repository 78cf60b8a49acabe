/** u32 tables (lengths, block tables, slot lists) on the GPU. */
import { type Gpu, Tensor } from '@webattn/core';

/** A u32 table as a tensor: the words travel in an f32-typed buffer, only their bits matter. */
export function u32Tensor(gpu: Gpu, words: ArrayLike<number>): Tensor {
  const bits = Uint32Array.from(words.length > 0 ? words : [0]);
  return Tensor.from(gpu, new Float32Array(bits.buffer), [bits.length]);
}

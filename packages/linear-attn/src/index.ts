/**
 * @webattn/linear-attn: TransnormerLLM-style linear attention on WebGPU. This version holds the decay
 * schedule; the masked, chunkwise and recurrent kernels build on it.
 * @packageDocumentation
 */
export { alibiSlopes, decayFromSlopes, layerScaledSlopes } from './slopes.js';

/**
 * @webattn/mla: Multi-head Latent Attention on WebGPU. This version holds the validated dimensions;
 * the absorbed prefill and decode kernels build on them.
 * @packageDocumentation
 */
export { absorbedHeadDims, type MlaConfig, resolveMlaConfig } from './config.js';

/**
 * @webattn/nsa: Native Sparse Attention on WebGPU. This version holds the validated configuration;
 * the compressed, selected and sliding-window kernels build on it.
 * @packageDocumentation
 */
export { compressedBlockCount, type NsaConfig, resolveNsaConfig, selectionBlockCount } from './config.js';

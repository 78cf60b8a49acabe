/** safetensors I/O on the host: the file format Hugging Face checkpoints use. */
export { f32ToBf16Bits, toBf16Bits } from './bf16.js';
export { HOST_DTYPES, type HostDtype, type HostTensor } from './dtypes.js';
export { readSafetensors, type SafetensorsFile } from './read.js';
export { type HostTensorInput, writeSafetensors } from './write.js';

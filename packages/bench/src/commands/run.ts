/** `webattn run <op>`: apply one op to tensors from a safetensors file and write the results back. */
import { readFileSync, writeFileSync } from 'node:fs';
import { type Gpu, type HostDtype, readSafetensors, writeSafetensors } from '@webattn/core';
import { RUN_OPS } from '../run/ops.js';

/** Runs `op` on `inPath`'s tensors and writes `outPath`; outputs keep the inputs' float precision. */
export async function runCommand(
  gpu: Gpu,
  opName: string,
  inPath: string,
  outPath: string,
  config: Record<string, unknown>,
): Promise<string[]> {
  const op = RUN_OPS.get(opName);
  if (!op) throw new Error(`run: unknown op '${opName}'; available: ${[...RUN_OPS.keys()].join(', ')}`);
  const { tensors } = readSafetensors(new Uint8Array(readFileSync(inPath)));
  const outputs = await op.run(gpu, tensors, config);
  const floatDtypes = [...tensors.values()].map((t) => t.dtype).filter((d) => d !== 'i32' && d !== 'i64');
  const dtype: HostDtype =
    floatDtypes.length > 0 && floatDtypes.every((d) => d === floatDtypes[0]) ? floatDtypes[0]! : 'f32';
  const typed = outputs.map(({ name, shape, data, alwaysF32 }) => ({
    name,
    shape,
    data,
    dtype: data instanceof Int32Array ? ('i32' as const) : alwaysF32 ? ('f32' as const) : dtype,
  }));
  writeFileSync(outPath, writeSafetensors(typed));
  return typed.map((o) => `${o.name} [${o.shape.join(', ')}] ${o.dtype}`);
}

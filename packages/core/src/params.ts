/**
 * Uniform parameters shared by a kernel's WGSL and the host code that fills them: one field list
 * generates both the WGSL struct and the byte layout, so the two cannot drift apart.
 */

/** The scalar types a parameter can have; each takes 4 bytes. */
export type ParamType = 'u32' | 'i32' | 'f32';

/** Ordered `[name, type]` pairs. */
export type ParamLayout = readonly (readonly [string, ParamType])[];

/** The WGSL declaration of a layout's struct. */
export function paramsStruct(layout: ParamLayout, structName = 'Params'): string {
  const fields = layout.map(([name, type]) => `  ${name}: ${type},`).join('\n');
  return `struct ${structName} {\n${fields}\n}`;
}

/** Packs values for a layout into a uniform-buffer-sized (16-byte multiple) ArrayBuffer. */
export function packParams(layout: ParamLayout, values: Readonly<Record<string, number>>): ArrayBuffer {
  const bytes = Math.max(16, Math.ceil((layout.length * 4) / 16) * 16);
  const buffer = new ArrayBuffer(bytes);
  const view = new DataView(buffer);
  layout.forEach(([name, type], i) => {
    const value = values[name];
    if (value === undefined) throw new Error(`packParams: no value for '${name}'`);
    if (type === 'f32') view.setFloat32(i * 4, value, true);
    else if (type === 'i32') view.setInt32(i * 4, value, true);
    else view.setUint32(i * 4, value, true);
  });
  return buffer;
}

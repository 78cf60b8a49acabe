/**
 * Workgroup-memory alignment for kernels that use subgroup matrices.
 *
 * On the H200's Vulkan driver (measured 2026-11-29), subgroup-matrix loads from a workgroup array
 * read 8 bytes before the array whenever an earlier workgroup variable left it 8- but not 16-byte
 * aligned: ordinary loads and stores of the same array were right, the fragments were shifted by
 * four f16 elements. A 40-byte `array<f32, 10>` or a lone `u32` among the variables was enough.
 * Keeping every workgroup variable of such a kernel a whole number of 16-byte units keeps every
 * array 16-byte aligned, whatever order the compiler lays them out in; the pipeline cache refuses
 * a tensor-core kernel that breaks the rule, so a new kernel cannot reintroduce the bug.
 */

/** The unit every workgroup variable of a subgroup-matrix kernel is sized in. */
export const WORKGROUP_ALIGNMENT_BYTES = 16;

/** `count` elements of `elementBytes` each, rounded up to whole {@link WORKGROUP_ALIGNMENT_BYTES} units. */
export function alignedWorkgroupLength(count: number, elementBytes: number): number {
  const perUnit = WORKGROUP_ALIGNMENT_BYTES / elementBytes;
  return Math.ceil(count / perUnit) * perUnit;
}

const ELEMENT_BYTES: Record<string, number> = {
  f16: 2,
  f32: 4,
  i32: 4,
  u32: 4,
  'vec2<f16>': 4,
  'vec4<f16>': 8,
  'vec2<f32>': 8,
  'vec4<f32>': 16,
  'vec4<u32>': 16,
  'vec4<i32>': 16,
  'vec2<u32>': 8,
  'vec2<i32>': 8,
  'atomic<u32>': 4,
  'atomic<i32>': 4,
  // WGSL's predeclared aliases of the same vectors.
  vec2h: 4,
  vec4h: 8,
  vec2f: 8,
  vec4f: 16,
  vec2u: 8,
  vec4u: 16,
  vec2i: 8,
  vec4i: 16,
};

/** A workgroup variable of a kernel's source: its name, its type, its size (undefined where unreadable). */
export interface WorkgroupVariable {
  name: string;
  type: string;
  bytes: number | undefined;
}

/**
 * The workgroup variables `code` declares, each with its size in bytes where the source gives it:
 * array lengths may be literals or module-scope integer constants.
 */
export function workgroupVariables(code: string): WorkgroupVariable[] {
  const constants = new Map<string, number>();
  for (const m of code.matchAll(/\bconst\s+(\w+)\s*=\s*(\d+)u?\s*;/g)) constants.set(m[1]!, Number(m[2]));
  return [...code.matchAll(/var<workgroup>\s+(\w+)\s*:\s*([^;]+);/g)].map((m) => {
    const [, name, type] = m as unknown as [string, string, string];
    return { name, type, bytes: typeBytes(type, constants) };
  });
}

/** Bytes of a WGSL type: a listed scalar or vector, or an array of such (arrays of arrays too). */
function typeBytes(type: string, constants: Map<string, number>): number | undefined {
  // Greedy, so that the last comma parts an array of arrays from its length.
  const array = /^array<\s*(.+)\s*,\s*(\w+)u?\s*>$/.exec(type.trim());
  if (!array) return ELEMENT_BYTES[type.replace(/\s+/g, '')];
  const length = /^\d+$/.test(array[2]!) ? Number(array[2]) : constants.get(array[2]!);
  const element = typeBytes(array[1]!, constants);
  return element === undefined || length === undefined ? undefined : element * length;
}

/**
 * The workgroup variables of `code` whose size is not a whole number of 16-byte units (or cannot
 * be read from the source), each as `name: type (why)`.
 */
export function misalignedWorkgroupVariables(code: string): string[] {
  const problems: string[] = [];
  for (const { name, type, bytes } of workgroupVariables(code)) {
    if (bytes === undefined) {
      problems.push(`${name}: ${type} (size not readable from the source)`);
    } else if (bytes % WORKGROUP_ALIGNMENT_BYTES !== 0) {
      problems.push(`${name}: ${type} (${bytes} bytes, not a multiple of ${WORKGROUP_ALIGNMENT_BYTES})`);
    }
  }
  return problems;
}

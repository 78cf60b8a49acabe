// The role-split backward kernels' pieces, one removed at a time (flash-ablations' default run):
// rewrites of the WGSL that core's defaults generate for flashDkDvRolesMatrixWgsl and
// flashDqRolesMatrixWgsl. Apart from the diagnostic so that each rewrite can be tried on those
// kernels' WGSL without a GPU: no test of the project runs them (scripts/diagnostics has none), so
// a rewrite whose lines stop matching after a kernel change only shows as a line of the
// diagnostic's output with the first line's times.

import { type Ablation, never } from './ablate.js';

/**
 * A statement behind a condition that never holds and that is uniform (a parameter), for the
 * subgroup-matrix builtins, which must run in uniform control flow.
 */
const neverUniform = (statement: string) => `if (p.hq > 100000u) { ${statement} }`;

/**
 * The expressions a role-split backward kernel loads its `operand` fragments with in its
 * multiply-accumulates into `target` (sf: the scores S and dP; acc: dK, dV or dQ), replaced by one
 * such fragment loaded once before the first: the products stay, each on the same fragment, so
 * the time saved is the other loads'.
 */
function loadOnce(target: 'sf' | 'acc', layout: 'col_major' | 'row_major'): Ablation[1] {
  return (code) => {
    const load = new RegExp(
      `subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, ${layout}>\\(&\\w+, .*?, \\d+u\\)`,
    );
    const line = new RegExp(
      `^(\\s*)(${target}\\d+ = subgroupMatrixMultiplyAccumulate\\(\\w+, )(${load.source})`,
      'm',
    );
    const first = line.exec(code);
    if (!first) return code;
    const [, indent, head, expression] = first;
    const once = `${indent}let ${target}Operand = ${expression};\n${indent}${head}${target}Operand`;
    const hoisted = code.replace(line, once);
    return hoisted.replace(
      new RegExp(`^(\\s*${target}\\d+ = subgroupMatrixMultiplyAccumulate\\(\\w+, )${load.source}`, 'gm'),
      `$1${target}Operand`,
    );
  };
}

/**
 * Each ablation rewrites the role-split dK/dV and dQ kernels' WGSL (flashDkDvRolesMatrixWgsl,
 * flashDqRolesMatrixWgsl, as core's defaults generate them); lines it cannot find leave the
 * kernel as is, so a line whose kernel times equal the first's removed nothing there.
 */
export const roleSplitAblations: Ablation[] = [
  ['none', (c) => c],
  [
    'tile loads from storage (q, dO or k, v and the row statistics)',
    (c) =>
      c
        .replace(/(e[qokv]x\d+) = ((q|dout|k|v)\[[^\]]*\]);/g, (_, x, load) => never(`${x} = ${load};`))
        .replace(/(esv\d+) = (rowStats\([^;]*\));/g, (_, x, load) => never(`${x} = ${load};`)),
  ],
  [
    'tile stores to workgroup memory',
    (c) =>
      c.replace(
        /(\w+)\[at\] = bitcast<vec4<f16>>\((e[qokv]x\d+)\.xy\); \1\[at \+ 1u\] = bitcast<vec4<f16>>\(\2\.zw\);/g,
        (statement) => never(statement),
      ),
  ],
  [
    'score MMAs (S, dP) with their fragment loads',
    (c) => c.replace(/^\s*sf\d+ = subgroupMatrixMultiplyAccumulate\(.*$/gm, ''),
  ],
  ['score fragment loads but one', loadOnce('sf', 'col_major')],
  [
    'score stores to workgroup memory',
    (c) =>
      c.replace(/(subgroupMatrixStore<row_major>\(&SD, [^;]*, sf\d+, [^;]*\);)/g, (statement) =>
        neverUniform(statement),
      ),
  ],
  ['elementwise exp', (c) => c.replace(/= exp\(sv\./g, '= (sv.')],
  ['visibility test', (c) => c.replace(/ && visible\(sp, \w+, \w+\)/g, '')],
  [
    'update MMAs (dK, dV / dQ) with their fragment loads',
    (c) => c.replace(/^\s*acc\d+ = subgroupMatrixMultiplyAccumulate\(.*$/gm, ''),
  ],
  ['update fragment loads but one', loadOnce('acc', 'row_major')],
  ['every barrier', (c) => c.replace(/workgroupBarrier\(\);/g, '')],
];

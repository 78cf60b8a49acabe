#!/usr/bin/env node
/**
 * Bundles the webattn CLI into one ESM file for the remote GPU machine, which has no node_modules:
 * .gpu-kit/webattn.mjs, with 'webgpu' left external (the kit provides dawn.node), and each GPU
 * diagnostic of scripts/diagnostics beside it (.gpu-kit/<name>.mjs). Builds the kit
 * itself (Node binary, dawn.node, Vulkan loaders) with ../shared/gpu/make-kit.sh when it is missing.
 * Usage: pnpm gpu:bundle [--fla CHECKOUT]   then, on the GPU machine:
 *   source .gpu-kit/setup.sh && node .gpu-kit/webattn.mjs verify all
 * With --fla, the `fla` package of a flash-linear-attention checkout goes to .gpu-kit/python, where
 * scripts/gpu-measure.sh points the torch baseline (fla's Triton lightning attention columns) when the
 * GPU machine's Python has no fla of its own.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, readdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const kit = join(root, '.gpu-kit');
const makeKit = join(root, '..', 'shared', 'gpu', 'make-kit.sh');

execFileSync('pnpm', ['-s', 'build'], { cwd: root, stdio: 'inherit' });
if (!existsSync(join(kit, 'setup.sh'))) {
  if (!existsSync(makeKit))
    throw new Error(`gpu:bundle: ${makeKit} not found; it builds the kit (Node, dawn.node, loaders)`);
  execFileSync('bash', [makeKit, '.gpu-kit'], { cwd: root, stdio: 'inherit' });
}
/** One ESM file with 'webgpu' left external; bundled CommonJS dependencies get a require(). */
const bundle = (entry, outfile, alias = {}) =>
  build({
    alias,
    entryPoints: [entry],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    external: ['webgpu'],
    outfile,
    banner: {
      js: "import { createRequire as __webattnRequire } from 'node:module'; const require = __webattnRequire(import.meta.url);",
    },
    logLevel: 'warning',
  });
await bundle(join(root, 'packages/bench/src/cli.ts'), join(kit, 'webattn.mjs'));
// The GPU diagnostics (scripts/diagnostics, not the bench) next to it: node .gpu-kit/<name>.mjs.
// Modules that only serve other diagnostics export and print nothing of their own. The diagnostics
// set core's tuning switches (DQ_KERNEL, FORWARD_SHAPES, ...) through its sources; the family
// packages must import that same module, not core's built copy, for a switch to reach them.
const diagnostics = join(root, 'scripts', 'diagnostics');
const coreSources = { '@webattn/core': join(root, 'packages/core/src/index.ts') };
for (const file of readdirSync(diagnostics).filter((f) => f.endsWith('.ts'))) {
  await bundle(join(diagnostics, file), join(kit, file.replace(/\.ts$/, '.mjs')), coreSources);
}
copyFileSync(join(root, 'packages/bench/scripts/torch_baseline.py'), join(kit, 'torch_baseline.py'));
const flaAt = process.argv.indexOf('--fla');
if (flaAt !== -1) {
  const source = join(process.argv[flaAt + 1] ?? '', 'fla');
  if (!existsSync(join(source, '__init__.py')))
    throw new Error(`gpu:bundle: --fla: no fla package at ${source}`);
  rmSync(join(kit, 'python'), { recursive: true, force: true });
  cpSync(source, join(kit, 'python', 'fla'), {
    recursive: true,
    filter: (path) => !path.includes('__pycache__'),
  });
  console.log(`gpu:bundle: fla copied from ${source} to .gpu-kit/python/fla`);
}
console.log(
  'gpu:bundle: .gpu-kit/webattn.mjs ready; run it with: source .gpu-kit/setup.sh && node .gpu-kit/webattn.mjs verify all',
);

import { defineConfig, type Plugin } from 'vite';

/**
 * @webattn/core reads `node:fs` only in Node, to find SwiftShader when there is no GPU (a dynamic
 * import behind an `isNode()` check). In the page that code never runs: give it an empty module
 * instead of Vite's browser-external shim and its warning.
 */
function nodeFsStub(): Plugin {
  const id = '\0webattn-node-fs-stub';
  return {
    name: 'webattn-node-fs-stub',
    enforce: 'pre',
    resolveId: (source) => (source === 'node:fs' ? id : undefined),
    load: (loaded) => (loaded === id ? 'export const existsSync = () => false;' : undefined),
  };
}

/**
 * The demo page. The @webattn packages resolve to their built `dist` (what users install), so build
 * them first (`pnpm demo` does). `base: './'` keeps the built page servable from any folder.
 */
export default defineConfig({
  base: './',
  plugins: [nodeFsStub()],
  build: {
    target: 'es2022',
    outDir: 'dist',
    emptyOutDir: true,
  },
  server: { host: '127.0.0.1' },
  preview: { host: '127.0.0.1' },
});

import { defineConfig } from 'vite';

/**
 * The demo page. The @webattn packages resolve to their built `dist` (what users install), so build
 * them first (`pnpm demo` does). `base: './'` keeps the built page servable from any folder.
 */
export default defineConfig({
  base: './',
  build: {
    target: 'es2022',
    outDir: 'dist',
    emptyOutDir: true,
    chunkSizeWarningLimit: 2000,
  },
  server: { host: '127.0.0.1' },
  preview: { host: '127.0.0.1' },
});

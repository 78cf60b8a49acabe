import { defineConfig } from 'vitest/config';

/**
 * One vitest setup for every package. GPU tests hold a dawn.node device per file, and dawn.node is a
 * native addon, so files run in forked processes, one at a time: SwiftShader already spreads a
 * dispatch over every core, and two devices at once only thrash.
 */
export function webattnVitestConfig() {
  return defineConfig({
    test: {
      pool: 'forks',
      fileParallelism: false,
      testTimeout: 120_000,
      hookTimeout: 60_000,
      include: ['test/**/*.test.ts'],
    },
  });
}

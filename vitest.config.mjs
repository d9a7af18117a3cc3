// Vitest runs only Keyv's compliance suite (test/vitest/, compiled to out/); the rest of the tests run on node:test.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['out/test/vitest/**/*.vitest.js'],
    pool: 'forks',
    testTimeout: 30_000,
  },
});

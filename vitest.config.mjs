// Vitest runs only Keyv's compliance suite (test/vitest/, compiled to out/); the rest of the tests run on node:test.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['out/test/vitest/**/*.vitest.js'],
    pool: 'forks',
    // longer under emulation (ULTRADICT_TEST_TIME_SCALE, .ci/run's arm64 run), as the node:test files' waits
    testTimeout: 30_000 * Math.max(1, Number(process.env.ULTRADICT_TEST_TIME_SCALE) || 1),
  },
});

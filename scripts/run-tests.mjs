// Runs the compiled test suite with node:test and checks that it left /dev/shm as it found it.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { which } from '../out/test/lib/servers.js';

// the tests that need redis-server skip without it (one line here says so), unless
// ULTRADICT_REQUIRE_REDIS=1 (CI), under which they run and fail
if (which('redis-server') === null) {
  console.log(
    process.env.ULTRADICT_REQUIRE_REDIS === '1'
      ? 'redis-server is not installed and ULTRADICT_REQUIRE_REDIS=1: the Redis tests will fail (apt-get install redis-server)'
      : 'redis-server is not installed: the Redis tests are skipped (apt-get install redis-server to run them)',
  );
}

const ours = () => readdirSync('/dev/shm').filter((f) => f.startsWith('ud.'));
const before = new Set(ours());
// The longest files start first (test-files.mjs runs them in this order, two at a time): one of them started
// last would run alone at the end. Under emulation (.ci/run's arm64 run) such a tail is many minutes.
const LONGEST = ['crash', 'reliability-suites', 'cli', 'package', 'bridge', 'docs', 'processes', 'dumps', 'features'];
const rank = (f) => {
  const i = LONGEST.indexOf(f.replace(/\.test\.js$/, ''));
  return i === -1 ? LONGEST.length : i;
};
const files = readdirSync('out/test')
  .filter((f) => f.endsWith('.test.js'))
  .filter((f) => process.argv.length <= 2 || process.argv.slice(2).some((a) => f.includes(a)))
  .sort((a, b) => rank(a) - rank(b) || a.localeCompare(b))
  .map((f) => `out/test/${f}`);
// ULTRADICT_TEST_TIME_SCALE (emulated runs): more time per test file, same assertions
const scale = Math.max(1, Number(process.env.ULTRADICT_TEST_TIME_SCALE) || 1);
// ULTRADICT_TEST_ROUNDS (emulated runs; test/lib/helpers.ts): fewer rounds of the long randomized tests, said here
const share = Math.min(1, Math.max(0.1, Number(process.env.ULTRADICT_TEST_ROUNDS) || 1));
if (scale > 1) console.log(`ULTRADICT_TEST_TIME_SCALE=${scale}: timing-based waits and deadlines are ${scale} times as long`);
if (share < 1) {
  console.log(
    `ULTRADICT_TEST_ROUNDS=${share}: the long randomized tests run ${Math.round(share * 100)}% of their rounds ` +
      '(crash kill trials, fuzz inputs, leak cycles, full-/dev/shm trials), every assertion unchanged',
  );
}
// node --test with the default reporter, two files at a time, but in this order; and the time per file
const r = files.length > 0 ? spawnSync(process.execPath, ['scripts/test-files.mjs', String(240000 * scale), ...files], { stdio: 'inherit' }) : { status: 0 };
// Keyv's compliance suite runs on Vitest (vitest.config.mjs), after node:test, unless the filters leave it out
const vitestFiles = process.argv.length <= 2 || process.argv.slice(2).some((a) => 'keyv-suite.vitest.js'.includes(a));
const v = vitestFiles
  ? spawnSync(process.execPath, ['node_modules/vitest/vitest.mjs', 'run', '--config', 'vitest.config.mjs'], { stdio: 'inherit' })
  : { status: 0 };
const leaked = ours().filter((f) => !before.has(f));
if (leaked.length > 0) {
  console.error(`\ntests left ${leaked.length} segments in /dev/shm:\n  ${leaked.join('\n  ')}`);
  process.exit(1);
}
process.exit(r.status === 0 ? (v.status ?? 1) : (r.status ?? 1));

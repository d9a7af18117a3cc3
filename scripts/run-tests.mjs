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
const files = readdirSync('out/test')
  .filter((f) => f.endsWith('.test.js'))
  .filter((f) => process.argv.length <= 2 || process.argv.slice(2).some((a) => f.includes(a)))
  .map((f) => `out/test/${f}`);
// ULTRADICT_TEST_TIME_SCALE (emulated runs): more time per test file, same assertions
const scale = Math.max(1, Number(process.env.ULTRADICT_TEST_TIME_SCALE) || 1);
const r = spawnSync(process.execPath, ['--test', '--test-concurrency=2', `--test-timeout=${240000 * scale}`, ...files], { stdio: 'inherit' });
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

// Short versions of the reliability suites (full runs: npm run reliability:full; see docs/reliability.md).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runModel } from './reliability/model.js';
import { runFuzz } from './reliability/fuzz-run.js';
import { leakCycles } from './reliability/limits.js';
import { gcScenario } from './reliability/gc.js';
import { runReplicationChaos } from './reliability/replication.js';
import { privateShmUnavailable, runInPrivateShm } from './reliability/lib.js';
import { fixture, rounds, scaled } from './lib/helpers.js';
import { redisSkip } from './lib/redis-server.js';

test('model-based concurrency: 6 seeds (every profile), 3 processes x 250 ops, replay = every process', async () => {
  const runs = await runModel({ seeds: 6, seedBase: Number(process.env.ULTRADICT_SEED ?? 1), processes: 3, ops: 250 });
  const problems = runs.flatMap((r) => r.problems);
  assert.deepEqual(problems, []);
  // not vacuous: most operations commit (the fixed-dump profile rolls back more or fewer of them with the
  // interleaving: 589 of 750 were seen on a loaded machine, so the bound is 60%)
  for (const r of runs) assert.ok(r.committed > 450, `seed ${r.seed}: only ${r.committed} of 750 ops committed`);
  assert.ok(runs.some((r) => (r.errors.FullDumpMemoryFullError ?? 0) > 0), 'the fixed-dump profile hit FullDumpMemoryFullError');
  assert.ok(runs.every((r) => r.dumps > 5), 'tiny buffers forced dumps');
  assert.ok(runs.some((r) => r.profile === 'bounded-lru' && r.evicted > 50), 'the bounded profile evicted');
});

test('fuzz (short): segments, frames, dumps, control blocks, attaches, addon arguments, processes', async () => {
  // half of each under emulation (ULTRADICT_TEST_ROUNDS)
  const counts = { decoder: rounds(20_000), stream: rounds(5_000), dump: rounds(5_000), control: rounds(2_000), attach: rounds(1_000), addon: rounds(5_000), process: 3 };
  const r = await runFuzz(Number(process.env.ULTRADICT_SEED ?? 1), counts, undefined, scaled(180_000));
  assert.deepEqual(r.problems, []);
  // every input of the data targets ran (38,000 at full rounds)
  const inputs = Object.values(counts).reduce((a, n) => a + n, 0) - counts.process;
  assert.ok(r.inputs >= inputs, `inputs ${r.inputs} of ${inputs}`);
});

const CYCLES = rounds(2000); // 1,000 under emulation (ULTRADICT_TEST_ROUNDS)
test(`no descriptor or mapping leaks over ${CYCLES.toLocaleString('en')} cycles (${(5 * CYCLES).toLocaleString('en')} opens/creates/failed opens and closes)`, () => {
  const r = leakCycles(CYCLES);
  assert.equal(r.after.fds, r.before.fds, 'open file descriptors');
  assert.equal(r.after.shmMaps, r.before.shmMaps, '/dev/shm mappings in /proc/self/maps');
  assert.equal(r.after.live, r.before.live, "the addon's live mappings");
});

test('a full /dev/shm (private 4 MiB tmpfs): ENOSPC is a SharedMemoryError, nothing half-published, writes work once space is back', { skip: privateShmUnavailable() ?? false }, async () => {
  const n = rounds(8); // 4 under emulation (ULTRADICT_TEST_ROUNDS)
  const { code, out, err } = await runInPrivateShm('4m', fixture('rel-enospc'), [JSON.stringify({ seedBase: 1, trials: n })]);
  assert.equal(code, 0, err);
  const trials = JSON.parse(out.split('\n').find((l) => l.startsWith('ENOSPC '))!.slice(7)) as { problems: string[]; checks: number }[];
  assert.equal(trials.length, n);
  assert.deepEqual(trials.flatMap((t) => t.problems), []);
});

test('gc() removes exactly the dicts of SIGKILLed processes (12 of them, plus retired, half-initialised and orphaned ones)', async () => {
  const r = await gcScenario({ killedDicts: 12, processes: 3, gcCalls: 20 });
  assert.deepEqual(r.problems, []);
  assert.ok(r.removed <= r.dead);
});

test('replication chaos (short): 2 bridged hosts + a RedisDict writer under connection cuts, bridge kills and Redis restarts converge, nothing acknowledged lost or doubled', { skip: redisSkip() }, async () => {
  const r = await runReplicationChaos({ seed: Number(process.env.ULTRADICT_SEED ?? 1), hosts: 2, rdWriters: 1, ops: 100_000, faults: 4, paceMs: 10, log: () => {} });
  assert.deepEqual(r.problems, []);
  assert.equal(r.faults.cuts + r.faults.bridgeKills + r.faults.redisRestarts, 4);
  assert.ok(r.writes > 300, `writes ${r.writes}`);
});

// SIGKILL at bad moments: lock holders, writers mid-frame and mid-dump, creators mid-initialisation.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { gc, UltraDict } from '../src/index.js';
import { Child, rounds, runChild, shmEntries, uniqueName, waitFor } from './lib/helpers.js';

const TRIALS = Number(process.env.ULTRADICT_CRASH_TRIALS ?? rounds(6)); // 3 under emulation (ULTRADICT_TEST_ROUNDS)

test('a process SIGKILLed while holding the lock: the lock is recovered automatically', async () => {
  const name = uniqueName('holder');
  using d = new UltraDict<number>({ name });
  const c = new Child('child', { op: 'holdLock', name });
  await c.message('locked');
  assert.equal(d.lock.owner()?.pid, c.proc.pid);
  await c.kill9();
  const t = performance.now();
  d.withLock(() => d.set('x', 1));
  const ms = performance.now() - t;
  assert.ok(ms < 1000, `lock recovered after ${ms.toFixed(0)} ms`);
  assert.equal(d.stats().lockRecoveries, 1);
  assert.equal(d.get('x'), 1);
});

test('a write published under the lock survives the death of its writer', async () => {
  const name = uniqueName('holder2');
  using d = new UltraDict<unknown>({ name });
  const c = new Child('child', { op: 'holdLockWrite', name, key: 'k', value: 'written' });
  await c.message('locked');
  assert.equal(d.get('k'), 'written'); // published before the lock is released
  await c.kill9();
  d.set('after', true);
  assert.equal(d.get('k'), 'written');
  assert.equal(d.get('after'), true);
});

async function killTrial(seed: number, opts: { size: number; bufferSize: number; maxKeys?: number }): Promise<void> {
  const name = uniqueName('kill');
  const bounded = opts.maxKeys !== undefined;
  const d = new UltraDict<unknown>({ name, bufferSize: opts.bufferSize, ...(bounded ? { maxKeys: opts.maxKeys } : {}) });
  // a bounded dict evicts: the keys of the writer that dies age and go; what was evicted is told here
  const evicted = new Set<unknown>();
  d.on('change', (c) => c.type === 'evict' && evicted.add(c.key));
  let most = 0;
  const watch = setInterval(() => (most = Math.max(most, d.size)), 1);
  const w1 = new Child('child', { op: 'writer', name, id: 1, size: opts.size, fresh: bounded });
  const w2 = new Child('child', { op: 'writer', name, id: 2, size: opts.size, fresh: bounded });
  try {
    await w1.message('ack');
    await w2.message('ack');
    // kill w1 at a pseudo-random moment
    const delay = (seed * 7919) % 40;
    await new Promise((r) => setTimeout(r, delay));
    const acked = Math.max(...w1.messages.filter((m) => m.type === 'ack').map((m) => m.i as number));
    await w1.kill9();
    // w2 keeps writing through the recovery
    const before = w2.messages.length;
    await waitFor(() => w2.messages.length >= before + 3, `writer 2 to make progress after the kill (seed ${seed})`);
    await w2.kill9();
    const wrote = d.get('w1') as number | undefined;
    if (bounded && wrote === undefined) await waitFor(() => evicted.has('w1'), `seed ${seed}: w1 gone but no eviction of it told`);
    else assert.ok(wrote! >= acked, `seed ${seed}: acknowledged write ${acked} lost (have ${wrote})`);
    for (const id of [1, 2]) {
      if (bounded && !(d.has(`a${id}`) && d.has(`b${id}`))) continue; // one of the pair evicted
      assert.equal(d.get(`a${id}`), d.get(`b${id}`), `seed ${seed}: batch of writer ${id} torn`);
    }
    if (bounded) {
      assert.ok(most <= opts.maxKeys!, `seed ${seed}: ${most} keys seen, bound ${opts.maxKeys}`);
      assert.equal(d.size, opts.maxKeys);
    }
    // a fresh process sees exactly the same contents
    const msgs = await runChild('child', { op: 'get', name, key: 'w1' });
    const v = msgs.find((m) => m.type === 'value')!;
    assert.equal(v.value, d.get('w1'));
    assert.equal(v.size, d.size);
    // and the dict still takes locked writes
    d.withLock(() => d.set('final', 1));
    assert.equal(d.get('final'), 1);
  } finally {
    clearInterval(watch);
    w1.proc.kill('SIGKILL');
    w2.proc.kill('SIGKILL');
    await Promise.all([w1.exited, w2.exited]);
    d.close();
    UltraDict.unlink(name); // a killed writer may have left an unpublished next generation
  }
}

test(`writers SIGKILLed in the middle of writes (${TRIALS} trials): acknowledged writes survive, nothing torn`, async () => {
  for (let seed = 1; seed <= TRIALS; seed++) await killTrial(seed, { size: 0, bufferSize: 1 << 16 });
});

test(`writers SIGKILLed in the middle of writes to a bounded dict (${TRIALS} trials): the bound holds, acknowledged writes survive unless evicted`, async () => {
  for (let seed = 1; seed <= TRIALS; seed++) await killTrial(seed, { size: 0, bufferSize: 1 << 14, maxKeys: 20 });
});

test(`writers SIGKILLed in the middle of dumps (${TRIALS} trials, a dump every few writes)`, async () => {
  for (let seed = 1; seed <= TRIALS; seed++) await killTrial(seed, { size: 3000, bufferSize: 4096 });
});

test('a creator SIGKILLed while initialising: the next process takes over the name', async () => {
  for (let trial = 0; trial < 3; trial++) {
    const name = uniqueName('creator');
    const code = `
      import { UltraDict } from 'ultradict';
      const items = Array.from({ length: 300000 }, (_, i) => ['k' + i, { i, s: 'v'.repeat(20) }]);
      process.stdout.write('start\\n');
      const d = new UltraDict(items, { name: process.argv[1] });
      process.stdout.write('created\\n');
      setInterval(() => {}, 1000);`;
    const p = spawn(process.execPath, ['--input-type=module', '-e', code, name], { cwd: new URL('../..', import.meta.url).pathname });
    let out = '';
    p.stdout.on('data', (b: Buffer) => (out += b));
    await waitFor(() => out.includes('start'), 'the creator to start');
    await new Promise((r) => setTimeout(r, 20 + trial * 60));
    p.kill('SIGKILL');
    await new Promise((r) => p.on('exit', r));
    const d = new UltraDict<unknown>({ name, lockTimeout: 10_000 });
    try {
      // either the creator finished (all items) or its half-made dict was replaced by ours (empty)
      assert.ok(d.size === 0 || d.size === 300000, `size ${d.size}`);
      d.set('mine', 1);
      assert.equal(d.get('mine'), 1);
    } finally {
      d.close();
      UltraDict.unlink(name);
    }
    assert.deepEqual(shmEntries(name), []);
  }
});

test('UltraDict.unlink(name) removes every segment after a crash; gc() removes dicts of dead processes', async () => {
  const name = uniqueName('crashed');
  const c = new Child('child', { op: 'holdLock', name: 'unused' });
  await c.kill9();
  // a creator process that dies without closing
  const code = `
    import { UltraDict } from 'ultradict';
    const d = new UltraDict({ name: process.argv[1], bufferSize: 1024 });
    for (let i = 0; i < 100; i++) d.set('k' + i, 'x'.repeat(50));
    process.stdout.write('ready\\n');
    setInterval(() => {}, 1000);`;
  const spawnCreator = async (n: string): Promise<void> => {
    const p = spawn(process.execPath, ['--input-type=module', '-e', code, n], { cwd: new URL('../..', import.meta.url).pathname });
    let out = '';
    p.stdout.on('data', (b: Buffer) => (out += b));
    await waitFor(() => out.includes('ready'), 'creator ready');
    p.kill('SIGKILL');
    await new Promise((r) => p.on('exit', r));
  };
  await spawnCreator(name);
  assert.ok(shmEntries(name).length >= 2, 'the killed creator left its segments');
  assert.equal(UltraDict.unlink(name), true);
  assert.deepEqual(shmEntries(name), []);
  assert.equal(UltraDict.unlink(name), false);

  const name2 = uniqueName('gc');
  await spawnCreator(name2);
  using live = new UltraDict({ name: uniqueName('live') });
  const removed = gc();
  assert.ok(removed.includes(name2), `gc removed ${removed.join(', ')}`);
  assert.deepEqual(shmEntries(name2), []);
  assert.equal(UltraDict.exists(live.name), true, 'gc keeps dicts with live processes');
});

test('kill matrix (short): writers SIGKILLed at random, holding the lock, mid-dump, mid-attach, stopped or killed while waiting for a hand-off; exactly the acknowledged writes survive', async () => {
  // the full matrix (hundreds of kills): npm run reliability:kill; see docs/reliability.md
  const { runKillMatrix } = await import('./reliability/killmatrix.js');
  const { PROFILES } = await import('./reliability/writer-ops.js');
  const r = await runKillMatrix({
    rounds: 6, // one round per plan: writes, dumps, bigdump (mid-dump kills), attach (a big dump to load), bigframes (mid-frame kills), waiters
    seedBase: Number(process.env.ULTRADICT_SEED ?? 1),
    kills: 3,
    writers: 2,
    freshProcessEvery: 2,
    profiles: PROFILES,
  });
  assert.deepEqual(r.failures, []);
  assert.equal(r.lostWrites, 0);
  assert.ok(r.trials >= 20, `trials ${r.trials}`);
  assert.ok(r.heldLock > 0, 'some victims held the lock when killed');
  assert.ok(r.stoppedWaiters > 0 && r.deadWaiters > 0, `stopped waiters ${r.stoppedWaiters}, dead waiters ${r.deadWaiters}`);
});

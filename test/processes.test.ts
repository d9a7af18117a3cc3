// Real OS processes and threads sharing one dict: fork, spawn of an unrelated program, cluster, worker_threads.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { Worker } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import { readFileSync } from 'node:fs';
import { UltraDict, listDicts } from '../src/index.js';
import { Child, fixture, runChild, scaled, shmEntries, uniqueName, waitFor } from './lib/helpers.js';

test('4 processes x 2000 locked increments give exactly 8000 (no lost update)', async () => {
  const name = uniqueName('incr');
  using d = new UltraDict<number>({ name, bufferSize: 4096 }); // a small buffer: many dumps on the way
  const kids = Array.from({ length: 4 }, () => new Child('child', { op: 'incr', name, key: 'n', n: 2000 }));
  await Promise.all(kids.map((k) => k.done()));
  assert.equal(d.get('n'), 8000);
  assert.ok(d.stats().dumps > 1, 'the small buffer forced dumps');
});

test('parent and children increment together under withLock', async () => {
  const name = uniqueName('incr2');
  using d = new UltraDict<number>({ name });
  const kids = Array.from({ length: 2 }, () => new Child('child', { op: 'incr', name, key: 'n', n: 1500 }));
  await Promise.all(kids.map((k) => k.message('ready')));
  for (let i = 0; i < 1500; i++) d.withLock(() => d.set('n', (d.get('n') ?? 0) + 1));
  await Promise.all(kids.map((k) => k.done()));
  assert.equal(d.get('n'), 4500);
});

test('a forked child sees the parent’s writes and the parent sees the child’s', async () => {
  const name = uniqueName('fork');
  using d = new UltraDict<unknown>({ name });
  d.set('from-parent', { hello: 'child' });
  const msgs = await runChild('child', { op: 'get', name, key: 'from-parent' });
  assert.deepEqual(msgs.find((m) => m.type === 'value')!.value, { hello: 'child' });
  await runChild('child', { op: 'set', name, key: 'from-child', value: [1, 2, 3] });
  assert.deepEqual(d.get('from-child'), [1, 2, 3]);
});

test('an unrelated program that only knows the name attaches (spawned node, package import)', async () => {
  const name = uniqueName('spawn');
  using d = new UltraDict<unknown>({ name });
  d.set('greeting', 'hi');
  const code = `
    import { UltraDict } from 'ultradict';
    const d = new UltraDict({ name: process.argv[1], create: false });
    d.set('reply', d.get('greeting') + ' back');
    console.log(JSON.stringify([...d]));
    d.close();`;
  const root = fileURLToPath(new URL('../..', import.meta.url));
  const out = await new Promise<string>((resolve, reject) => {
    const p = spawn(process.execPath, ['--input-type=module', '-e', code, name], { cwd: root });
    let s = '';
    let err = '';
    p.stdout.on('data', (b: Buffer) => (s += b));
    p.stderr.on('data', (b: Buffer) => (err += b));
    const timer = setTimeout(() => p.kill('SIGKILL'), scaled(30_000));
    p.on('exit', (c) => {
      clearTimeout(timer);
      if (c === 0) resolve(s);
      else reject(new Error(`exit ${c}: ${err}`));
    });
  });
  assert.deepEqual(JSON.parse(out), [['greeting', 'hi'], ['reply', 'hi back']]);
  assert.equal(d.get('reply'), 'hi back');
});

test('cluster workers share the dict', async () => {
  const name = uniqueName('cluster');
  using d = new UltraDict<number>({ name });
  const script = `
    import cluster from 'node:cluster';
    import { UltraDict } from ${JSON.stringify(new URL('../src/index.js', import.meta.url).href)};
    const name = process.argv[1];
    if (cluster.isPrimary) {
      for (let i = 0; i < 3; i++) cluster.fork();
      let exited = 0;
      cluster.on('exit', (w, code) => { if (code !== 0) process.exit(1); if (++exited === 3) process.exit(0); });
    } else {
      const d = new UltraDict({ name, create: false });
      for (let i = 0; i < 500; i++) d.withLock(() => d.set('hits', (d.get('hits') ?? 0) + 1));
      d.set('worker-' + cluster.worker.id, process.pid);
      d.close();
      process.exit(0);
    }`;
  const code = await new Promise<number | null>((resolve) => {
    const p = spawn(process.execPath, ['--input-type=module', '-e', script, name], { stdio: 'inherit' });
    const timer = setTimeout(() => p.kill('SIGKILL'), scaled(60_000));
    p.on('exit', (c) => {
      clearTimeout(timer);
      resolve(c);
    });
  });
  assert.equal(code, 0);
  assert.equal(d.get('hits'), 1500);
  assert.equal([...d.keys()].filter((k) => String(k).startsWith('worker-')).length, 3);
});

test('worker_threads share the dict (lock across threads, exact total)', async () => {
  const name = uniqueName('threads');
  using d = new UltraDict<number>({ name });
  const src = `
    const { workerData, parentPort } = require('node:worker_threads');
    import(workerData.url).then(({ UltraDict }) => {
      const d = new UltraDict({ name: workerData.name, create: false });
      for (let i = 0; i < workerData.n; i++) d.withLock(() => d.set('n', (d.get('n') ?? 0) + 1));
      d.close();
      parentPort.postMessage('done');
    });`;
  const url = new URL('../src/index.js', import.meta.url).href;
  const workers = Array.from({ length: 3 }, () => new Worker(src, { eval: true, workerData: { url, name, n: 1000 } }));
  await Promise.all(
    workers.map(
      (w) =>
        new Promise<void>((resolve, reject) => {
          w.on('message', () => resolve());
          w.on('error', reject);
        }),
    ),
  );
  for (let i = 0; i < 1000; i++) d.withLock(() => d.set('n', (d.get('n') ?? 0) + 1));
  await Promise.all(workers.map((w) => w.terminate()));
  assert.equal(d.get('n'), 4000);
});

test('a worker thread terminated while holding the lock does not wedge it', async () => {
  const name = uniqueName('wterm');
  using d = new UltraDict<number>({ name, lockTimeout: 5000 });
  const src = `
    const { workerData, parentPort } = require('node:worker_threads');
    import(workerData.url).then(({ UltraDict }) => {
      const d = new UltraDict({ name: workerData.name, create: false });
      d.lock.acquire();
      parentPort.postMessage('locked');
      for (;;) {}
    });`;
  const w = new Worker(src, { eval: true, workerData: { url: new URL('../src/index.js', import.meta.url).href, name } });
  await new Promise<void>((resolve, reject) => {
    w.on('message', () => resolve());
    w.on('error', reject);
  });
  assert.ok(d.lock.owner() !== null);
  await w.terminate();
  const t = Date.now();
  d.withLock(() => d.set('after', 1));
  assert.ok(Date.now() - t < 2000, `recovered in ${Date.now() - t} ms`);
  assert.equal(d.get('after'), 1);
});

test('segments are removed when the creator closes (nothing left in /dev/shm)', async () => {
  const name = uniqueName('cleanup');
  const d = new UltraDict<string>({ name, bufferSize: 1024 });
  for (let i = 0; i < 2000; i++) d.set(`k${i % 20}`, 'x'.repeat(100));
  await runChild('child', { op: 'set', name, key: 'c', value: 1 });
  assert.ok(d.stats().dumps > 3);
  assert.ok(shmEntries(name).length >= 2);
  d.close();
  // (once in many CI runs the files stayed: the message says who the control block still lists)
  assert.deepEqual(shmEntries(name), [], JSON.stringify(listDicts().filter((i) => i.name === name).map((i) => ({ ...i, me: process.pid, attached: i.attachedPids.map(procInfo) }))));
});

/** What /proc says of a pid: its command line, or that it is gone. */
function procInfo(pid: number): string {
  try {
    return `${pid}: ${readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ')}`;
  } catch (e) {
    return `${pid}: ${(e as NodeJS.ErrnoException).code}`;
  }
}

test('fixture path sanity', () => {
  assert.match(fixture('child'), /fixtures\/child\.js$/);
});

test('waitFor times out with a clear message', async () => {
  // (the wait scales with ULTRADICT_TEST_TIME_SCALE under emulation, and the message says how long it was)
  await assert.rejects(waitFor(() => false, 'nothing', 20), new RegExp(`timed out after ${scaled(20)} ms waiting for nothing`));
});

test('SIGTERM/SIGINT of a creator without its own handler still removes its segments', async () => {
  for (const sig of ['SIGTERM', 'SIGINT'] as const) {
    const name = uniqueName('sig');
    const code = `
      import { UltraDict } from 'ultradict';
      const d = new UltraDict({ name: process.argv[1] });
      d.set('a', 1);
      process.stdout.write('ready\\n');
      setInterval(() => {}, 1000);`;
    const p = spawn(process.execPath, ['--input-type=module', '-e', code, name], { cwd: fileURLToPath(new URL('../..', import.meta.url)) });
    let out = '';
    p.stdout.on('data', (b: Buffer) => (out += b));
    const exited = new Promise<NodeJS.Signals | null>((r) => p.on('exit', (_c, s) => r(s)));
    await waitFor(() => out.includes('ready'), 'child ready');
    assert.ok(shmEntries(name).length > 0);
    p.kill(sig);
    assert.equal(await exited, sig, 'the process still dies of the signal');
    assert.deepEqual(shmEntries(name), []);
  }
});

test('autoUnlink waits for the last attached process: a restarting creator re-attaches, never a new empty dict', async () => {
  const name = uniqueName('handover');
  const creator = new UltraDict<number>({ name });
  creator.set('kept', 1);
  const c = new Child('child', { op: 'attachWait', name });
  await c.message('ready');
  creator.close(); // the creator goes (pm2 reload): another process is still attached
  assert.equal(UltraDict.exists(name), true);
  const restarted = new UltraDict<number>({ name }); // attach-or-create attaches
  assert.equal(restarted.get('kept'), 1);
  restarted.set('after', 2);
  restarted.close(); // not the creator: no autoUnlink of its own, but the pending one is still there
  assert.equal(UltraDict.exists(name), true, 'the child is still attached');
  c.send('close');
  await c.message('closed');
  await c.done();
  assert.equal(UltraDict.exists(name), false, 'the last one out unlinked it');
  assert.deepEqual(shmEntries(name), []);
});

test('a waiter that waited over 200 ms gets the lock handed over directly at the next release', async () => {
  const name = uniqueName('handoff');
  using d = new UltraDict<number>({ name });
  const c = new Child('child', { op: 'holdFor', name, ms: 1500 });
  await c.message('locked');
  assert.equal(d.stats().lockHandoffs, 0);
  d.withLock(() => d.set('after', 1)); // waits until the child releases: asks for a hand-off after 200 ms
  assert.equal(d.stats().lockHandoffs, 1);
  await c.done();
  d.withLock(() => d.set('again', 2)); // the hand-off word is clear again: the lock works as usual
  assert.equal(d.get('again'), 2);
});

test('a waiter is not starved by processes that take the lock again and again', async () => {
  const name = uniqueName('starve');
  using d = new UltraDict<number>({ name, lockTimeout: 4000 });
  const hogs = Array.from({ length: 3 }, () => new Child('child', { op: 'hog', name, ms: 5000 }));
  await Promise.all(hogs.map((h) => h.message('ready')));
  await waitFor(() => (d.get('hog') ?? 0) > 1000, 'the hogs to run');
  // without a hand-off, barging hogs can keep a waiter out past its lockTimeout
  for (let i = 0; i < 20; i++) d.withLock(() => d.set(`mine${i}`, i));
  assert.equal(d.get('mine19'), 19);
  await Promise.all(hogs.map((h) => h.done()));
});

// fetch(key, loader): a missing value is computed once on the machine, across processes and threads;
// a failing loader rejects every waiter and stores nothing; a killed loader is taken over; aborts reject.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import { setTimeout as sleep } from 'node:timers/promises';
import { AbortError, LoadFailedError, UltraDict } from '../src/index.js';
import { Child, scaled, uniqueName, waitFor } from './lib/helpers.js';

type Got = { value?: string; error?: string; code?: string; message?: string };

async function race(name: string, ids: number[], cmd: object): Promise<Got[][]> {
  const kids = ids.map((id) => new Child('child', { op: 'fetch', name, id, ...cmd }));
  await Promise.all(kids.map((c) => c.message('ready')));
  for (const c of kids) c.send('go');
  const got = await Promise.all(kids.map(async (c) => (await c.message('done')).got as Got[]));
  await Promise.all(kids.map((c) => c.done()));
  return got;
}

test('fetch: a present key resolves at once; a missing one is loaded, written and returned; one load per thread', async () => {
  using d = new UltraDict<unknown>({ name: uniqueName('fetch') });
  d.set('a', 1);
  assert.equal(await d.fetch('a', () => assert.fail('present: the loader is not called')), 1);
  let runs = 0;
  const loader = async (k: unknown): Promise<unknown> => {
    runs++;
    await sleep(5);
    return { of: k };
  };
  const [x, y, z] = await Promise.all([d.fetch('b', loader), d.fetch('b', loader), d.fetch('b', () => 'other')]);
  assert.deepEqual([x, y, z], [{ of: 'b' }, { of: 'b' }, { of: 'b' }]);
  assert.equal(runs, 1);
  assert.deepEqual(d.get('b'), { of: 'b' });
  assert.equal(await d.fetch('c', (k) => `sync ${k}`), 'sync c', 'a synchronous loader works too');
  assert.equal(await d.fetch('t', () => 't', { ttl: 60_000 }), 't');
  assert.ok(d.ttl('t')! > 0 && d.ttl('t')! <= 60_000, 'the loaded value expires after the given ttl');
  assert.equal(d.ttl('b'), Infinity, 'without ttl, the dict default (none here)');
});

test('fetch: 4 processes fetching the same 12 missing keys at once run each loader once, and all get its value', async () => {
  const name = uniqueName('fetchp');
  using d = new UltraDict<unknown>({ name });
  const n = 12;
  const got = await race(name, [1, 2, 3, 4], { n, ms: 30 });
  for (let i = 0; i < n; i++) {
    const winner = d.get(`k${i}`);
    assert.ok(['1', '2', '3', '4'].includes(winner as string), `k${i} was written: ${String(winner)}`);
    for (const g of got) assert.deepEqual(g[i], { value: winner }, `every process got the loaded value of k${i}`);
    assert.equal(d.get(`runs:k${i}`), 1, `the loader of k${i} ran once on the machine`);
  }
});

test('fetch: a loader that throws rejects every waiting process with a LoadFailedError and writes nothing; a later fetch loads again', async () => {
  const name = uniqueName('fetchf');
  using d = new UltraDict<unknown>({ name });
  // the loader takes long enough for every process to be waiting for it before it fails
  const got = await race(name, [1, 2, 3], { n: 1, ms: scaled(400), fail: true });
  const results = got.map((g) => g[0]!);
  assert.equal(d.get('runs:k0'), 1, 'one loader ran');
  assert.equal(d.has('k0'), false, 'nothing was written');
  const own = results.filter((r) => r.error === 'Error');
  const waiters = results.filter((r) => r.code === 'ULTRADICT_LOAD_FAILED');
  assert.equal(own.length, 1, `the loading process got its own error: ${JSON.stringify(results)}`);
  assert.match(own[0]!.message!, /loader of child \d failed/);
  assert.equal(waiters.length, 2, `both waiting processes were rejected: ${JSON.stringify(results)}`);
  for (const w of waiters) assert.ok(w.message!.includes(own[0]!.message!), 'with the loader\'s message');
  // the failure is reported for a moment (to waiters that have not looked yet), then a fetch loads again
  await waitFor(async () => (await d.fetch('k0', () => 'second').catch(() => null)) === 'second', 'a later fetch loads again');
  assert.equal(d.get('k0'), 'second');
});

test('fetch: the loading process is killed (kill -9): a waiting caller takes the load over', async () => {
  const name = uniqueName('fetchk');
  using d = new UltraDict<unknown>({ name, lockTimeout: 2000 });
  const loaderProc = new Child('child', { op: 'fetch', name, id: 9, n: 1, hang: true });
  await loaderProc.message('ready');
  loaderProc.send('go');
  await loaderProc.message('loading');
  let runs = 0;
  const waiting = d.fetch('k0', () => {
    runs++;
    return 'taken over';
  });
  // the call found the hung load and waits for it (its claim is made before fetch returns)
  await loaderProc.kill9();
  assert.equal(await waiting, 'taken over');
  assert.equal(runs, 1);
  assert.equal(d.get('k0'), 'taken over');
});

test('fetch: aborting a wait rejects with an AbortError; the load goes on and the others get its value', async () => {
  using d = new UltraDict<unknown>({ name: uniqueName('fetcha') });
  let finish!: (v: string) => void;
  const loading = d.fetch('k', () => new Promise<string>((r) => (finish = r)));
  const ac = new AbortController();
  const aborted = d.fetch('k', () => 'not called', { signal: ac.signal });
  ac.abort(new Error('stop'));
  await assert.rejects(aborted, (e: Error) => e instanceof AbortError && (e.cause as Error).message === 'stop');
  await assert.rejects(d.fetch('k', () => 'x', { signal: AbortSignal.abort() }), AbortError);
  finish('done');
  assert.equal(await loading, 'done');
  assert.equal(d.get('k'), 'done');
});

test('fetch: a worker thread and the main thread fetching one missing key load it once', async () => {
  const name = uniqueName('fetchw');
  using d = new UltraDict<unknown>({ name });
  const src = `
    const { workerData, parentPort } = require('node:worker_threads');
    import(workerData.url).then(async ({ UltraDict }) => {
      const d = new UltraDict({ name: workerData.name, create: false });
      parentPort.once('message', async () => {
        const v = await d.fetch('k', async () => { d.increment('runs'); await new Promise((r) => setTimeout(r, 30)); return 'worker'; });
        parentPort.postMessage({ v });
        d.close();
      });
      parentPort.postMessage('ready');
    });`;
  const w = new Worker(src, { eval: true, workerData: { url: new URL('../src/index.js', import.meta.url).href, name } });
  const msgs: unknown[] = [];
  w.on('message', (m) => msgs.push(m));
  await waitFor(() => msgs.includes('ready'), 'worker ready');
  w.postMessage('go');
  const mine = await d.fetch('k', async () => {
    d.increment('runs');
    await sleep(30);
    return 'main';
  });
  await waitFor(() => msgs.some((m) => typeof m === 'object'), 'the worker fetched');
  const theirs = (msgs.find((m) => typeof m === 'object') as { v: string }).v;
  assert.equal(mine, theirs, 'both got the one loaded value');
  assert.equal(d.get('runs'), 1);
  await w.terminate();
});

test('fetch: bad arguments are TypeErrors before anything happens', async () => {
  using d = new UltraDict<unknown>({ name: uniqueName('fetchb'), recurse: true });
  assert.throws(() => d.fetch('k', 5 as never), TypeError);
  assert.throws(() => d.fetch({} as never, () => 1), TypeError);
  assert.throws(() => d.fetch('k', () => 1, { signal: 5 } as never), TypeError);
  assert.throws(() => d.fetch('k', () => 1, { tll: 5 } as never), /unknown option "tll"/);
  assert.throws(() => d.fetch('k', () => 1, { ttl: -1 }), TypeError);
  d.set('n', {});
  assert.throws(() => (d.get('n') as UltraDict<unknown>).fetch('k', () => 1), /root dict/);
  assert.equal(d.has('k'), false);
  using other = new UltraDict<unknown>({ name: d.name });
  await assert.rejects(other.fetch('k', () => { throw new Error('own'); }), /own/, 'the loading caller gets its own error');
});

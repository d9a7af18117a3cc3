// ultradict/express-rate-limit: the Store's methods, its window, and one limit enforced across 4 cluster workers over loopback HTTP.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import type { Options } from 'express-rate-limit';
import { UltraDict } from '../src/index.js';
import { UltraDictStore } from '../src/express-rate-limit/index.js';
import { MissingPeerError, requirePeer } from '../src/adapters/peer.js';
import { expiryOf } from '../src/adapters/expiry.js';
import { uniqueName, waitFor } from './lib/helpers.js';
import { freePort } from './lib/servers.js';
import { TestCluster } from './lib/cluster.js';

const init = (store: UltraDictStore, windowMs: number): void => store.init({ windowMs } as Options);

test('increment, decrement, get and resetKey; counts shared by two stores on one dict; localKeys is false', () => {
  using d = new UltraDict<unknown>({ name: uniqueName('erl') });
  const a = new UltraDictStore({ dict: d });
  const b = new UltraDictStore({ dict: { name: d.name, create: false } });
  for (const s of [a, b]) init(s, 60_000);
  assert.equal(a.localKeys, false);
  const first = a.increment('ip');
  assert.equal(first.totalHits, 1);
  assert.ok(first.resetTime!.getTime() > Date.now() && first.resetTime!.getTime() <= Date.now() + 60_000);
  assert.equal(b.increment('ip').totalHits, 2);
  assert.equal(a.increment('ip').resetTime!.getTime(), first.resetTime!.getTime(), 'one window');
  b.decrement('ip');
  assert.equal(a.get('ip')!.totalHits, 2);
  assert.equal(a.get('other'), undefined);
  a.increment('other');
  b.resetKey('ip');
  assert.equal(a.get('ip'), undefined);
  assert.equal(a.increment('ip').totalHits, 1, 'a new window after resetKey');
  b.resetAll();
  assert.deepEqual([...d.keys()], []);
  b.shutdown();
  assert.equal(b.dict.closed, true, 'shutdown closes the dict the store opened');
  a.shutdown();
  assert.equal(d.closed, false, 'and leaves open the dict it was given');
});

test('a window ends after windowMs: the next hit opens a new one', async () => {
  using d = new UltraDict<unknown>({ name: uniqueName('erl_w') });
  const s = new UltraDictStore({ dict: d, prefix: 'w:' });
  init(s, 200);
  s.increment('ip');
  const w = s.increment('ip');
  assert.equal(w.totalHits, 2);
  await waitFor(() => Date.now() > w.resetTime!.getTime(), 'the end of the window');
  assert.equal(s.get('ip'), undefined);
  const next = s.increment('ip');
  assert.equal(next.totalHits, 1);
  assert.ok(next.resetTime!.getTime() > w.resetTime!.getTime());
});

test('the window is the key\'s TTL: the dict drops a finished window', async (t) => {
  using d = new UltraDict<unknown>({ name: uniqueName('erl_ttl') });
  const e = expiryOf(d);
  if (e === null) return t.skip('needs expiry (issue 15)');
  const s = new UltraDictStore({ dict: d });
  init(s, 300);
  s.increment('ip');
  s.increment('ip'); // keeps the expiry of the window's first hit
  const left = e.ttl('rl:ip')!;
  assert.ok(left > 0 && left <= 300, `ttl ${left}`);
  await waitFor(() => !d.has('rl:ip'), 'the key to expire');
});

test('importing an adapter without its library is a clear error', () => {
  const missing = (s: string): string => {
    throw Object.assign(new Error(`Cannot find package '${s}'`), { code: 'ERR_MODULE_NOT_FOUND' });
  };
  assert.throws(() => requirePeer('ultradict/keyv', 'keyv', missing), (e: unknown) => {
    assert.ok(e instanceof MissingPeerError);
    assert.equal(e.message, 'ultradict/keyv needs the keyv package, an optional peer dependency of ultradict: npm install keyv');
    return true;
  });
  assert.doesNotThrow(() => requirePeer('ultradict/express-rate-limit', 'express-rate-limit'));
});

/** GET / on a new connection (so that the cluster's round robin spreads the requests over the workers). */
function get(port: number): Promise<{ status: number; worker: string; window: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/', agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode!, worker: String(res.headers['x-worker']), window: String(res.headers['x-window']) }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('express in node:cluster, 4 workers on loopback: exactly `limit` requests pass per window, whichever worker serves them', async () => {
  const limit = 10;
  const windowMs = 1500;
  using d = new UltraDict<unknown>({ name: uniqueName('erl_cluster') });
  const port = await freePort();
  await using workers = new TestCluster('rate-limit-cluster', { name: d.name, port, limit, windowMs }, 4);
  await workers.all('listening');

  const answers: Array<{ status: number; worker: string; window: string }> = [];
  // three bursts of 3 × limit requests, 6 at a time; each burst after the window of the one before has ended
  for (let burst = 0; burst < 3; burst++) {
    let todo = 3 * limit;
    const mine: typeof answers = [];
    await Promise.all(
      Array.from({ length: 6 }, async () => {
        while (todo-- > 0) mine.push(await get(port));
      }),
    );
    answers.push(...mine);
    const last = Math.max(...mine.map((a) => Number(a.window)));
    await waitFor(() => Date.now() > last, 'the end of the window');
  }

  const windows = new Map<string, { passed: number; refused: number; servedBy: Set<string> }>();
  for (const a of answers) {
    assert.ok(a.status === 200 || a.status === 429, `status ${a.status}`);
    const w = windows.get(a.window) ?? { passed: 0, refused: 0, servedBy: new Set<string>() };
    if (a.status === 200) w.passed++;
    else w.refused++;
    w.servedBy.add(a.worker);
    windows.set(a.window, w);
  }
  assert.ok(windows.size >= 3, `at least one window per burst, got ${windows.size}`);
  for (const [at, w] of windows) {
    // a window passes its first `limit` hits, from any worker, and refuses the rest
    assert.equal(w.passed, Math.min(limit, w.passed + w.refused), `window ending ${at}: ${w.passed} passed, ${w.refused} refused`);
  }
  const full = [...windows.values()].filter((w) => w.passed + w.refused >= 2 * limit);
  assert.ok(full.length >= 1, 'a burst fit in one window');
  for (const w of full) assert.ok(w.servedBy.size >= 2, `the requests of one window were served by several workers: ${[...w.servedBy]}`);
  assert.equal(new Set(answers.map((a) => a.worker)).size, 4, 'every worker served requests');
  assert.equal(answers.filter((a) => a.status === 200).length, [...windows.values()].reduce((n, w) => n + w.passed, 0));
  assert.deepEqual(await workers.stop(), [0, 0, 0, 0]);
});

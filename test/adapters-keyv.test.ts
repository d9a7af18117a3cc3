// ultradict/keyv beyond Keyv's own suite: another process reads what one wrote, TTL as ultradict expiry, cache-manager in a cluster.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import Keyv from 'keyv';
import { UltraDict } from '../src/index.js';
import { KeyvUltraDict } from '../src/keyv/index.js';
import { expiryOf } from '../src/adapters/expiry.js';
import { Child, uniqueName, waitFor } from './lib/helpers.js';
import { TestCluster } from './lib/cluster.js';

const needsExpiry = (d: UltraDict<unknown>): false | string => expiryOf(d) === null && 'needs expiry (issue 15)';

test('one process sets through Keyv, another process gets it through its own Keyv', async () => {
  using d = new UltraDict<unknown>({ name: uniqueName('keyv_x') });
  const keyv = new Keyv({ store: new KeyvUltraDict(d), namespace: 'sessions' });
  await keyv.set('user:1', { name: 'ada', roles: ['admin'] });
  // the other process reads it through Keyv, and writes its own
  const c = new Child('keyv-child', { name: d.name, namespace: 'sessions', get: 'user:1', set: ['user:2', { name: 'bob' }] });
  const got = await c.message('got');
  await c.done();
  assert.deepEqual(got.value, { name: 'ada', roles: ['admin'] });
  assert.deepEqual(await keyv.get('user:2'), { name: 'bob' });
  // namespaced keys in the dict, as Keyv prefixes them
  assert.deepEqual([...d.keys()].sort(), ['sessions:user:1', 'sessions:user:2']);
});

test('clear() of one namespace leaves the others, in every process', async () => {
  using d = new UltraDict<unknown>({ name: uniqueName('keyv_ns') });
  const a = new Keyv({ store: new KeyvUltraDict(d), namespace: 'a' });
  const b = new Keyv({ store: new KeyvUltraDict(d), namespace: 'b' });
  await a.set('k', 1);
  await b.set('k', 2);
  await a.clear();
  assert.equal(await a.get('k'), undefined);
  assert.equal(await b.get('k'), 2);
  assert.deepEqual([...d.keys()], ['b:k']);
});

test('a TTL given to Keyv is the key\'s expiry in the dict', async (t) => {
  using d = new UltraDict<unknown>({ name: uniqueName('keyv_ttl') });
  const skip = needsExpiry(d);
  if (skip) return t.skip(skip);
  const e = expiryOf(d)!;
  const keyv = new Keyv({ store: new KeyvUltraDict(d), namespace: 'c' });
  await keyv.set('short', 1, 300);
  await keyv.set('forever', 2);
  const left = e.ttl('c:short')!;
  assert.ok(left > 0 && left <= 300, `ttl ${left}`);
  assert.equal(e.ttl('c:forever'), Infinity);
  // a new value without a TTL has no expiry (as in Keyv's other stores), one with a TTL gets that one
  await keyv.set('again', 1, 300);
  await keyv.set('again', 2);
  assert.equal(e.ttl('c:again'), Infinity);
  await keyv.set('again', 3, 60_000);
  assert.ok(e.ttl('c:again')! > 300);
  // gone from the dict itself (not only hidden by Keyv's own check of the deadline)
  await waitFor(() => !d.has('c:short'), 'the key to expire');
  assert.equal(await keyv.get('short'), undefined);
  assert.equal(await keyv.get('forever'), 2);
});

test('cache-manager on Keyv on ultradict, in node:cluster: 4 workers see each other\'s entries', async () => {
  const n = 4;
  using d = new UltraDict<unknown>({ name: uniqueName('keyv_cm') });
  await using workers = new TestCluster('keyv-cluster', { name: d.name, n }, n);
  const seen = await workers.all('seen');
  const ids = workers.workers.map((w) => w.id).sort();
  for (const m of seen) {
    assert.deepEqual((m.seen as Array<{ id: number }>).map((v) => v.id), ids, `worker ${m.worker} read every worker's entry`);
  }
  // and the entries are in the dict, under Keyv's namespace
  assert.deepEqual([...d.keys()].sort(), ids.map((i) => `app:worker:${i}`).sort());
  assert.deepEqual(await workers.stop(), [0, 0, 0, 0]);
});

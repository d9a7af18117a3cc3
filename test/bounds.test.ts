// Bounds (maxKeys, maxBytes) and eviction ('lru', 'fifo'): no process ever sees more than the bound once
// a write has returned, every process agrees on what was evicted (the writer decides and publishes it),
// recency recorded by any process steers 'lru', and every bad argument is refused before anything changes.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import { EntryTooLargeError, ParameterMismatchError, UltraDict, type Change, type Key } from '../src/index.js';
import { attachElsewhere, Child, fixture, uniqueName, waitFor, type ChildMessage } from './lib/helpers.js';

/** A process attached to the dict (fixture bounds-child, 'peer'), asked to read, write or report. */
class Peer {
  private next = 0;
  private constructor(readonly child: Child) {}

  static async start(name: string): Promise<Peer> {
    const c = new Child('bounds-child', { name, op: 'peer' });
    await c.message('ready');
    return new Peer(c);
  }

  async call(op: string, args: Record<string, unknown> = {}): Promise<any> {
    const id = ++this.next;
    this.child.send({ id, op, ...args });
    return this.child.message(`r${id}`);
  }

  async exit(): Promise<void> {
    this.child.send({ id: 0, op: 'exit' });
    await this.child.done();
  }
}

const keysOf = (prefix: string, from: number, to: number): string[] => Array.from({ length: to - from }, (_, i) => `${prefix}${from + i}`);
const sorted = (keys: Iterable<Key>): Key[] => [...keys].sort();

test('4 writer processes over a maxKeys dict: a watcher never sees more keys, and every process agrees on what was evicted', async () => {
  const name = uniqueName('bounds');
  const MAX = 100;
  const PER = 1500;
  using d = new UltraDict<unknown>({ name, maxKeys: MAX, bufferSize: 1 << 16 });
  const evictedHere: Key[] = [];
  d.on('change', (c: Change) => {
    if (c.type === 'evict') evictedHere.push(c.key!);
  });
  const watcher = new Child('bounds-child', { name, op: 'watcher' });
  await watcher.message('ready');
  const writers = [0, 1, 2, 3].map((w) => new Child('bounds-child', { name, op: 'writer', prefix: `w${w}_`, count: PER, read: true }));
  for (const w of writers) await w.message('done', 60_000);
  watcher.send('stop');
  const report = (await watcher.message('report')) as ChildMessage & { maxKeys: number; keys: Key[]; evicted: Key[]; looks: number; bytes: number };
  for (const w of writers) w.send('exit');
  await Promise.all([...writers.map((w) => w.done()), watcher.done()]);

  assert.ok(report.looks > 0);
  assert.ok(report.maxKeys <= MAX, `the watcher saw ${report.maxKeys} keys, bound ${MAX}`);
  assert.equal(d.size, MAX);
  const all = writers.flatMap((_, w) => keysOf(`w${w}_`, 0, PER));
  assert.equal(d.stats().evicted, all.length - MAX, 'each write past the bound evicted exactly one key');
  assert.deepEqual(report.keys, sorted(d.keys()), 'the watcher holds the same keys');
  assert.ok(d.stats().bytes > 0);
  assert.equal(report.bytes, d.stats().bytes, 'and counts the same bytes (what a maxBytes bound would count)');
  // every key written is either still there or was evicted, once, and the watcher was told the same
  await waitFor(() => evictedHere.length === all.length - MAX, 'the evict events here');
  assert.deepEqual(sorted([...evictedHere, ...d.keys()]), sorted(all));
  assert.deepEqual(sorted(report.evicted), sorted(evictedHere));
});

test("'lru': keys another process read are kept, the ones nobody used are evicted (across a generation switch)", async () => {
  const name = uniqueName('lru');
  using d = new UltraDict<unknown>({ name, maxKeys: 20, evict: 'lru' });
  const peer = await Peer.start(name);
  try {
    for (const k of keysOf('k', 0, 20)) d.set(k, 1);
    // the peer publishes a new generation (the recency table is not part of it) and reads half the keys
    await peer.call('dump');
    await peer.call('read', { keys: keysOf('k', 0, 10) });
    const evicted: Key[] = [];
    d.on('change', (c: Change) => c.type === 'evict' && evicted.push(c.key!));
    for (const k of keysOf('n', 0, 10)) d.set(k, 2);
    assert.deepEqual(sorted(d.keys()), sorted([...keysOf('k', 0, 10), ...keysOf('n', 0, 10)]));
    await waitFor(() => evicted.length === 10, 'the evict events');
    assert.deepEqual(evicted, keysOf('k', 10, 20), 'the least recently used first');
    let seen = await peer.call('state');
    assert.deepEqual(seen.keys, sorted(d.keys()));
    // its change events come after the sync its answer made
    await waitFor(async () => (seen = await peer.call('state')).evictedSeen.length >= 10, 'the peer\'s evict events');
    assert.deepEqual(seen.evictedSeen, evicted);
  } finally {
    await peer.exit();
  }
});

test("'fifo': the oldest written keys go first, whatever was read", async () => {
  const name = uniqueName('fifo');
  using d = new UltraDict<unknown>({ name, maxKeys: 30, evict: 'fifo' });
  const peer = await Peer.start(name);
  try {
    for (const k of keysOf('k', 0, 30)) await peer.call('set', { key: k, value: 1 });
    for (const k of keysOf('k', 0, 10)) d.get(k);
    d.set('k5', 'rewritten'); // a rewrite keeps the key's place
    for (const k of keysOf('n', 0, 12)) d.set(k, 2);
    assert.deepEqual(sorted(d.keys()), sorted([...keysOf('k', 12, 30), ...keysOf('n', 0, 12)]));
    assert.deepEqual((await peer.call('state')).keys, sorted(d.keys()));
  } finally {
    await peer.exit();
  }
});

test('maxBytes counts encoded keys and values in every process; an entry that can never fit is refused and changes nothing', async () => {
  const name = uniqueName('bytes');
  const MAX = 4000;
  using d = new UltraDict<unknown>({ name, maxBytes: MAX, bufferSize: 1 << 16 });
  const watcher = new Child('bounds-child', { name, op: 'watcher' });
  await watcher.message('ready');
  const writers = [0, 1].map((w) => new Child('bounds-child', { name, op: 'writer', prefix: `w${w}_`, count: 800, valueBytes: 10 + 40 * w }));
  for (const w of writers) await w.message('done', 60_000);
  watcher.send('stop');
  const report = (await watcher.message('report')) as ChildMessage & { maxBytes: number; bytes: number; keys: Key[] };
  for (const w of writers) w.send('exit');
  await Promise.all([...writers.map((w) => w.done()), watcher.done()]);
  assert.ok(report.maxBytes <= MAX, `the watcher counted ${report.maxBytes} bytes, bound ${MAX}`);
  const s = d.stats();
  assert.ok(s.bytes > MAX - 100 && s.bytes <= MAX, `${s.bytes} bytes held`);
  assert.equal(report.bytes, s.bytes, 'both processes count the same bytes');
  assert.deepEqual(report.keys, sorted(d.keys()));

  const before = sorted(d.keys());
  const evicted = s.evicted;
  assert.throws(() => d.set('huge', 'x'.repeat(MAX)), EntryTooLargeError);
  assert.throws(() => d.update({ small: 1, huge: 'x'.repeat(MAX) }), EntryTooLargeError);
  assert.throws(() => d.transaction(() => d.set('huge', 'x'.repeat(MAX))), EntryTooLargeError);
  assert.deepEqual(sorted(d.keys()), before);
  assert.equal(d.stats().evicted, evicted);
  assert.equal(d.stats().bytes, s.bytes);
});

test('a transaction evicts once, at commit, in the same frame; a failed one evicts nothing', async () => {
  const name = uniqueName('txb');
  using d = new UltraDict<unknown>({ name, maxKeys: 5, evict: 'fifo' });
  d.update(Object.fromEntries(keysOf('k', 0, 5).map((k) => [k, 1])));
  assert.throws(() =>
    d.transaction(() => {
      for (const k of keysOf('t', 0, 4)) d.set(k, 1);
      throw new Error('no');
    }),
  );
  assert.deepEqual(sorted(d.keys()), keysOf('k', 0, 5));
  assert.equal(d.stats().evicted, 0);
  d.transaction(() => {
    for (const k of keysOf('t', 0, 4)) d.set(k, 1);
    d.delete('k4');
  });
  // 4 new keys, one deleted: 3 over the bound
  assert.deepEqual(sorted(d.keys()), sorted(['k3', ...keysOf('t', 0, 4)]));
  assert.equal(d.stats().evicted, 3);
  const other = await attachedKeys(name);
  assert.deepEqual(other, sorted(d.keys()));
});

test('expired keys do not count toward the bound, and a dict with both counts expiry and eviction apart', async () => {
  const name = uniqueName('ttlb');
  using d = new UltraDict<unknown>({ name, maxKeys: 10, ttl: 60_000 });
  for (const k of keysOf('long', 0, 5)) d.set(k, 1);
  d.update(Object.fromEntries(keysOf('short', 0, 5).map((k) => [k, 1])), { ttl: 1 });
  await waitFor(() => d.size === 5, 'the short keys to expire');
  const evicted = d.stats().evicted;
  for (const k of keysOf('more', 0, 5)) d.set(k, 1);
  assert.deepEqual(sorted(d.keys()), sorted([...keysOf('long', 0, 5), ...keysOf('more', 0, 5)]));
  assert.equal(d.stats().evicted, evicted, 'the expired keys made room: nothing was evicted');
  assert.equal(d.stats().expired, 5);
  d.set('one-more', 1);
  assert.equal(d.size, 10);
  assert.equal(d.stats().evicted, evicted + 1);
  assert.ok(!d.has('long0'), 'the least recently used went');
});

test('nested dicts (recurse): maxKeys bounds the root keys, and evicting one takes its nested dict with it', async () => {
  const name = uniqueName('nestb');
  using d = new UltraDict<any>({ name, maxKeys: 3, evict: 'fifo', recurse: true });
  d.set('a', { x: { y: 1 } });
  d.set('b', { x: 2 });
  d.set('c', 3);
  d.get('a').get('x').set('z', 2); // writes inside a nested dict add no root key
  assert.deepEqual(sorted(d.keys()), ['a', 'b', 'c']);
  d.set('d', 4);
  assert.deepEqual(sorted(d.keys()), ['b', 'c', 'd']);
  assert.deepEqual(JSON.parse((await attachElsewhereJson(name))!), { b: { x: 2 }, c: 3, d: 4 });
});

test('worker threads share the bound: 3 workers writing, the dict never holds more', async () => {
  const name = uniqueName('wb');
  using d = new UltraDict<unknown>({ name, maxKeys: 50 });
  const workers = [0, 1, 2].map((w) => new Worker(fixture('bounds-child'), { workerData: { name, op: 'writer', prefix: `t${w}_`, count: 400 } }));
  const done = workers.map((w) => new Promise<void>((resolve, reject) => {
    w.on('message', (m: ChildMessage) => m.type === 'done' && resolve());
    w.on('error', reject);
  }));
  let most = 0;
  const watch = setInterval(() => (most = Math.max(most, d.size)), 1);
  try {
    await Promise.all(done);
  } finally {
    clearInterval(watch);
    await Promise.all(workers.map((w) => w.terminate()));
  }
  assert.ok(most <= 50, `saw ${most} keys`);
  assert.equal(d.size, 50);
  assert.equal(d.stats().evicted, 1200 - 50);
});

test('bounds are fixed at creation: attachers receive them, a different value is a ParameterMismatchError', () => {
  const name = uniqueName('bopt');
  using d = new UltraDict<unknown>({ name, maxKeys: 7, maxBytes: 9000, evict: 'fifo' });
  using same = new UltraDict<unknown>({ name, create: false, maxKeys: 7, evict: 'fifo' });
  using plain = new UltraDict<unknown>({ name, create: false });
  for (const s of [d.stats(), same.stats(), plain.stats()]) {
    assert.deepEqual([s.maxKeys, s.maxBytes, s.evict], [7, 9000, 'fifo']);
  }
  assert.throws(() => new UltraDict({ name, create: false, maxKeys: 8 }), ParameterMismatchError);
  assert.throws(() => new UltraDict({ name, create: false, maxBytes: 1 }), ParameterMismatchError);
  assert.throws(() => new UltraDict({ name, create: false, evict: 'lru' }), ParameterMismatchError);
  const free = uniqueName('bfree');
  using u = new UltraDict<unknown>({ name: free });
  assert.deepEqual([u.stats().maxKeys, u.stats().maxBytes, u.stats().evict, u.stats().bytes], [0, 0, null, 0]);
  // an 'lru' dict's control segment carries its recency table (1024 slots of 4 bytes at the least)
  using l = new UltraDict<unknown>({ name: uniqueName('blru'), maxKeys: 7 });
  assert.equal(l.stats().sharedMemoryBytes - u.stats().sharedMemoryBytes, 4 * 1024);
  assert.throws(() => new UltraDict({ name: free, create: false, maxKeys: 3 }), ParameterMismatchError);
});

test('bad bounds options are TypeErrors, and initial items over the bound are refused before anything exists', () => {
  const name = uniqueName('bbad');
  const bad: [object, RegExp][] = [
    [{ maxKeys: -1 }, /maxKeys/],
    [{ maxKeys: 1.5 }, /maxKeys/],
    [{ maxKeys: '10' }, /maxKeys/],
    [{ maxBytes: -1 }, /maxBytes/],
    [{ evict: 'lfu', maxKeys: 3 }, /evict must be 'lru' or 'fifo'/],
    [{ evict: 'lru' }, /evict needs a bound/],
    [{ maxBytes: 100, recurse: true }, /maxBytes and recurse/],
  ];
  for (const [opts, message] of bad) assert.throws(() => new UltraDict({ name, ...opts }), { name: 'TypeError', message });
  assert.throws(() => new UltraDict([['a', 1], ['b', 2]], { name, maxKeys: 1 }), RangeError);
  assert.throws(() => new UltraDict([['a', 'x'.repeat(100)]], { name, maxBytes: 50 }), RangeError);
  assert.throws(() => new UltraDict({ name, create: false }), { name: 'NotFoundError' });
});

async function attachedKeys(name: string): Promise<Key[]> {
  const json = await attachElsewhereJson(name);
  return sorted(Object.keys(JSON.parse(json!)));
}

async function attachElsewhereJson(name: string): Promise<string | undefined> {
  const r = await attachElsewhere(name);
  if (r.json === undefined) throw new Error(`attach failed: ${r.error} ${r.message}`);
  return r.json;
}

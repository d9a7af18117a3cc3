// Expiry (TTL): expired keys are gone in every process and thread, their memory is reclaimed, deadlines
// survive dumps, and every bad argument is refused before anything changes.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import { ParameterMismatchError, UltraDict, type Change } from '../src/index.js';
import { CONTROL_SIZE } from '../src/shm/control.js';
import { Child, fixture, scaled, uniqueName, waitFor, type ChildMessage } from './lib/helpers.js';
import { view } from './lib/expiry-view.js';

/** A process or worker thread attached to the dict (fixture ttl-child), asked what it sees. */
class Peer {
  private next = 0;
  private readonly messages: ChildMessage[] = [];
  private constructor(
    private readonly post: (m: object) => void,
    readonly stop: () => Promise<unknown>,
    readonly child?: Child,
  ) {}

  static async process(name: string): Promise<Peer> {
    const c = new Child('ttl-child', { name });
    await c.message('ready');
    return new Peer((m) => c.send(m), () => c.done(), c);
  }

  static async worker(name: string): Promise<Peer> {
    const w = new Worker(fixture('ttl-child'), { workerData: { name } });
    const p = new Peer((m) => w.postMessage(m), () => w.terminate());
    w.on('message', (m: ChildMessage) => p.messages.push(m));
    await waitFor(() => p.messages.some((m) => m.type === 'ready'), 'the worker to attach');
    return p;
  }

  async call(op: string, args: Record<string, unknown> = {}): Promise<any> {
    const id = ++this.next;
    this.post({ id, op, ...args });
    if (this.child !== undefined) return this.child.message(`r${id}`);
    let found: ChildMessage | undefined;
    await waitFor(() => (found = this.messages.find((m) => m.type === `r${id}`)) !== undefined, `reply ${id}`);
    return found;
  }

  async exit(): Promise<void> {
    this.post({ id: 0, op: 'exit' });
    await this.stop();
  }
}

/** A peer's reply without its IPC `type`. */
function seen({ type: _, ...v }: Record<string, unknown>): Record<string, unknown> {
  return v;
}

const GONE = { get: null, has: false, ttl: null, size: 1, keys: ['stays'], json: { stays: 1 }, data: ['stays'] };

test('after its deadline a key is gone in every process: get, has, ttl, size, iteration, toJSON and data agree', async () => {
  const name = uniqueName('ttl');
  using d = new UltraDict<unknown>({ name });
  const peer = await Peer.process(name);
  try {
    d.set('stays', 1);
    d.set('k', 'v', { ttl: scaled(400) });
    const before = await peer.call('view', { key: 'k' });
    assert.equal(before.get, 'v');
    assert.ok(before.ttl > 0 && before.ttl <= scaled(400), `ttl left ${before.ttl}`);
    const deadline = Date.now() + scaled(400);
    await waitFor(() => Date.now() > deadline + 5, 'the deadline');
    // nobody wrote since: each process drops the key on its own, without the lock (held elsewhere now)
    using held = d.lock.acquire();
    assert.deepEqual(seen(await peer.call('view', { key: 'k' })), GONE);
    held[Symbol.dispose]();
    assert.deepEqual(view(d, 'k'), GONE);
  } finally {
    await peer.exit();
  }
});

test('expiry reaches change listeners of other processes as { type: "expire", key }', async () => {
  const name = uniqueName('ttlev');
  using d = new UltraDict<unknown>({ name });
  const peer = await Peer.process(name);
  try {
    await peer.call('listen');
    d.set('k', 1, { ttl: 50 });
    await waitFor(() => d.get('k') === undefined, 'k to expire here');
    d.set('other', 2); // a write publishes the expired key's delete
    let changes: Change[] = [];
    await waitFor(async () => (changes = (await peer.call('changes')).changes).length >= 3, 'the peer to see set, expire, set');
    assert.deepEqual(changes, [
      { type: 'set', key: 'k', value: 1 },
      { type: 'expire', key: 'k' },
      { type: 'set', key: 'other', value: 2 },
    ]);
    assert.equal(d.stats().expired, 1);
  } finally {
    await peer.exit();
  }
});

test('deadlines survive a dump, and expired keys are not carried into it', async () => {
  const name = uniqueName('ttldump');
  using d = new UltraDict<unknown>({ name });
  d.set('long', 1, { ttl: 60_000 });
  d.set('short', 2, { ttl: 1 });
  d.set('forever', 3);
  await waitFor(() => !d.has('short'), 'short to expire');
  d.dump();
  const peer = await Peer.process(name); // attaches from the dump
  try {
    const before = d.ttl('long')!;
    const v = await peer.call('view', { key: 'long' });
    const after = d.ttl('long')!;
    assert.deepEqual(v.keys, ['forever', 'long']);
    assert.ok(v.ttl <= before && v.ttl >= after && after > 0, `the deadline after the dump: ${after} <= ${v.ttl} <= ${before}`);
    assert.equal((await peer.call('view', { key: 'forever' })).ttl, 'Infinity');
  } finally {
    await peer.exit();
  }
});

test('expiry works across worker_threads', async () => {
  const name = uniqueName('ttlw');
  using d = new UltraDict<unknown>({ name });
  const w = await Peer.worker(name);
  try {
    await w.call('set', { key: 'k', value: 'from worker', ttl: scaled(300) });
    d.set('stays', 1);
    assert.equal(d.get('k'), 'from worker');
    assert.ok(d.ttl('k')! <= scaled(300));
    await waitFor(() => !d.has('k'), 'k to expire in the main thread');
    assert.deepEqual(seen(await w.call('view', { key: 'k' })), GONE);
  } finally {
    await w.exit();
  }
});

test('the ttl option is recorded at creation: attachers get it, a different one is refused', async () => {
  const name = uniqueName('ttlopt');
  using d = new UltraDict<unknown>({ name, ttl: 60_000 });
  d.set('a', 1);
  d.update({ b: 2 });
  assert.ok(d.ttl('a')! > 50_000 && d.ttl('b')! > 50_000);
  d.set('c', 3, { ttl: 0 });
  assert.equal(d.ttl('c'), Infinity);
  using same = new UltraDict<unknown>({ name, ttl: 60_000 });
  assert.equal(same.stats().ttl, 60_000);
  assert.throws(() => new UltraDict({ name, ttl: 1000 }), ParameterMismatchError);
  const peer = await Peer.process(name);
  try {
    // the same deadline: the ttl the peer computed lies between ours just before and just after its answer
    // (how long the peer took to start does not matter: under emulation, over 10 s)
    const before = d.ttl('a')!;
    const v = await peer.call('view', { key: 'a' });
    const after = d.ttl('a')!;
    assert.ok(v.ttl <= before && v.ttl >= after && after > 0, `the peer sees the deadline: ${after} <= ${v.ttl} <= ${before}`);
  } finally {
    await peer.exit();
  }
});

test('expire, persist, ttl; increment and compute keep the expiry unless given a ttl', () => {
  using d = new UltraDict<unknown>();
  assert.equal(d.ttl('x'), undefined);
  assert.equal(d.expire('x', 1000), false);
  assert.equal(d.persist('x'), false);
  d.set('x', 1);
  assert.equal(d.ttl('x'), Infinity);
  assert.equal(d.persist('x'), false, 'nothing to persist');
  assert.equal(d.expire('x', 60_000), true);
  assert.ok(d.ttl('x')! > 50_000);
  d.increment('x');
  d.compute('x', (v) => (v as number) * 10);
  assert.equal(d.get('x'), 20);
  assert.ok(d.ttl('x')! > 50_000, 'increment and compute kept the expiry');
  d.increment('x', 1, { ttl: 0 });
  assert.equal(d.ttl('x'), Infinity);
  d.compute('x', (v) => v, { ttl: 30_000 });
  assert.ok(d.ttl('x')! <= 30_000);
  assert.equal(d.persist('x'), true);
  assert.equal(d.ttl('x'), Infinity);
  d.set('x', 1, { ttl: 30_000 });
  d.set('x', 2);
  assert.equal(d.ttl('x'), Infinity, "Map's two-argument set writes a key without expiry (like Redis SET)");
  d.set('y', 1, { ttl: 30_000 });
  d.delete('y');
  d.set('y', 1);
  assert.equal(d.ttl('y'), Infinity, 'a deleted key forgets its expiry');
  assert.equal(d.expire('y', 0), true);
  assert.equal(d.has('y'), false, 'expire(key, 0) expires at once');
});

test('a transaction that throws rolls back expiries too', () => {
  using d = new UltraDict<unknown>();
  d.set('k', 1, { ttl: 60_000 });
  assert.throws(() =>
    d.transaction(() => {
      d.persist('k');
      d.set('n', 1, { ttl: 10 });
      d.clear();
      throw new Error('boom');
    }),
  );
  assert.ok(d.ttl('k')! > 50_000);
  assert.equal(d.has('n'), false);
});

test('bad expiry arguments are TypeErrors and change nothing', () => {
  using d = new UltraDict<unknown>({ recurse: true });
  d.set('k', 1);
  const bad: [() => unknown, RegExp][] = [
    [() => d.set('k', 2, { ttl: -1 }), /option ttl must be a finite number/],
    [() => d.set('k', 2, { ttl: Infinity }), /option ttl must be a finite number/],
    [() => d.set('k', 2, { ttl: '5' as never }), /option ttl must be a finite number/],
    [() => d.set('k', 2, { tll: 5 } as never), /unknown option "tll"/],
    [() => d.set('k', 2, 5 as never), /options must be a plain object/],
    [() => d.update({ k: 2 }, { ttl: NaN }), /option ttl/],
    [() => d.increment('k', 1, { ttl: -5 }), /option ttl/],
    [() => d.compute('k', () => 2, { ttl: null as never }), /option ttl/],
    [() => d.expire('k', -1), /ms must be a finite number/],
    [() => d.expire('k', '1' as never), /ms must be a finite number/],
    [() => d.ttl({} as never), /keys must be strings or numbers/],
    [() => new UltraDict({ ttl: -1 }), /option ttl must be a finite number/],
  ];
  for (const [f, msg] of bad) assert.throws(f, (e: Error) => e instanceof TypeError && msg.test(e.message));
  const n = d.nested('n');
  assert.throws(() => n.set('a', 1, { ttl: 10 }), /root keys only/);
  assert.throws(() => n.expire('a', 10), /root keys only/);
  assert.equal(n.has('a'), false);
  assert.deepEqual(d.toJSON(), { k: 1, n: {} });
  assert.equal(d.ttl('k'), Infinity);
});

test('under a steady stream of expiring writes from 2 processes, keys and shared memory stay bounded', async () => {
  const name = uniqueName('ttlsoak');
  using d = new UltraDict<unknown>({ name, bufferSize: 256 * 1024 });
  const perTick = 300; // per process, every 100 ms
  const ttl = 1000;
  const ms = 20_000;
  // a key written at t is live until t + ttl: at most ttl/100 + 1 ticks of each writer (doubled: a loaded machine)
  const liveBound = 2 * perTick * 2 * (ttl / 100 + 1);
  // together over 5 times the bound: each writes for `ms` and on until its half (a slow machine's ticks come late)
  const minWrites = Math.ceil((5 * liveBound) / 2) + perTick;
  const writers = [0, 1].map(() => new Child('ttl-child', { name, op: 'soak', perTick, ms, minWrites, maxMs: scaled(ms), ttl }));
  const entryBytes = 64; // a dump entry of these keys: SET + EXPIRE
  const dumpBound = liveBound * entryBytes;
  const sharedBound = CONTROL_SIZE + 64 + 8 * dumpBound + (2 << 20) + dumpBound;
  let maxKeys = 0;
  let maxShared = 0;
  let maxDump = 0;
  let maxExpiring = 0;
  const sample = setInterval(() => {
    const s = d.stats();
    maxKeys = Math.max(maxKeys, s.keys);
    maxShared = Math.max(maxShared, s.sharedMemoryBytes);
    maxDump = Math.max(maxDump, s.lastDumpBytes);
    maxExpiring = Math.max(maxExpiring, s.expiring);
  }, 100);
  try {
    const done = await Promise.all(writers.map((w) => w.message('done', 2 * ms + 30_000)));
    await Promise.all(writers.map((w) => w.done()));
    const writes = done.reduce((n, m) => n + (m.writes as number), 0);
    assert.ok(writes > 5 * liveBound, `${writes} writes: far more than would fit under the bound`);
    assert.ok(maxKeys <= liveBound, `at most ${liveBound} live keys, saw ${maxKeys}`);
    assert.ok(maxExpiring <= liveBound, `at most ${liveBound} deadlines kept, saw ${maxExpiring}`);
    assert.ok(maxDump <= dumpBound, `dumps hold only live keys: ${maxDump} <= ${dumpBound} bytes`);
    assert.ok(maxShared <= sharedBound, `shared memory ${maxShared} <= ${sharedBound} bytes`);
    assert.ok(d.stats().dumps > 2, 'several generations were written');
    await waitFor(() => d.size === 0, 'every key to expire', scaled(5000));
    d.set('end', 1); // publishes the last deletes
    assert.ok(d.stats().expired > writes / 2, `expired ${d.stats().expired} of ${writes}`);
  } finally {
    clearInterval(sample);
    for (const w of writers) w.proc.kill();
  }
});

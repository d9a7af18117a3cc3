// RedisDict against a real redis-server: convergence of several processes, atomic increments across
// processes, snapshots and trimming, dedupe of resends, connection cuts, a Redis restart, bad input.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Redis } from 'ioredis';
import { RedisDict, ReplicationError, ParameterMismatchError } from '../src/redis/index.js';
import { AlreadyClosedError, SerializationError } from '../src/index.js';
import { Child, scaled, uniqueName, waitFor } from './lib/helpers.js';
import { assertNoDuplicates, contents, expectedOwn, RedisServer, redisForFile } from './lib/redis-server.js';

let server: RedisServer;
let admin: Redis;
// (the admin connection reconnects while the tests restart the server)
const skip = redisForFile((s, a) => ((server = s), (admin = a)));

function writer(op: string, stream: string, id: string, n: number, extra: object = {}): Child {
  return new Child('redis-child', { op, url: server.url, stream, id, n, keys: 40, shared: true, ...extra }, 120_000);
}

describe('RedisDict', { skip }, () => {
  test('reads are synchronous from the local copy, writes are visible at once locally and to other processes after flush', async () => {
    const name = uniqueName('r');
    await using a = await RedisDict.open<unknown>({ name, redis: server.url });
    await using b = await RedisDict.open<unknown>({ name, redis: server.url });
    a.set('x', 1).set('o', { deep: [1, 2, { z: 'é' }] });
    assert.equal(a.get('x'), 1); // read-your-writes before any round trip
    assert.ok(Object.isFrozen(a.get('o')));
    await a.flush();
    await waitFor(() => b.get('x') === 1 && b.has('o'), 'b sees a');
    assert.deepEqual(b.get('o'), { deep: [1, 2, { z: 'é' }] });
    b.delete('x');
    b.update({ p: 1, q: 2 });
    await b.flush();
    await waitFor(() => !a.has('x') && a.get('q') === 2, 'a sees b');
    a.clear();
    await a.flush();
    await waitFor(() => b.size === 0, 'clear replicated');
    assert.equal(a.size, 0);
    const seen: unknown[] = [];
    b.on('change', (c) => seen.push(c));
    a.set('k', 'v');
    await a.flush();
    await waitFor(() => seen.length === 1, 'change event');
    assert.deepEqual(seen[0], { type: 'set', key: 'k', value: 'v' });
  });

  test('4 processes writing concurrently (2 of them incrementing) converge to the same contents; no increment or acknowledged write is lost', async () => {
    const stream = uniqueName('conv');
    const n = 400;
    const ws = [writer('rdWrite', stream, 'w1', n, { snapshotEvery: 50 }), writer('rdWrite', stream, 'w2', n, { snapshotEvery: 50 })];
    const incs = [writer('rdIncr', stream, 'i1', 60, { snapshotEvery: 50 }), writer('rdIncr', stream, 'i2', 60, { snapshotEvery: 50 })];
    await using local = await RedisDict.open<unknown>({ name: stream, redis: server.url, snapshotEvery: 50 });
    await Promise.all([...ws, ...incs].map((c) => c.done()));
    // a process joining now loads the snapshot and the entries after it
    await using late = await RedisDict.open<unknown>({ name: stream, redis: server.url });
    await waitFor(() => local.get('counter') === 120 && contents(local) === contents(late), 'convergence');
    assert.equal(late.get('counter'), 120);
    for (const id of ['w1', 'w2']) for (const [k, v] of expectedOwn(id, n)) assert.equal(late.get(k), v, k);
    const xlen = await admin.xlen(`ultradict:{${stream}}:stream`);
    const appended = Number(await admin.get(`ultradict:{${stream}}:count`));
    assert.equal(appended, 2 * 2 * n + 120, 'entries appended: every set and every increment once');
    assert.ok(xlen < appended, `the stream was trimmed by snapshots (length ${xlen} of ${appended})`);
    assert.ok(await admin.hexists(`ultradict:{${stream}}:snap`, 'id'), 'a snapshot exists');
  });

  test('compute and transaction are atomic across processes (optimistic, with retries)', async () => {
    const name = uniqueName('tx');
    await using a = await RedisDict.open<number>({ name, redis: server.url });
    await using b = await RedisDict.open<number>({ name, redis: server.url });
    // a transfer between two keys from both sides at once: the sum never changes
    a.update({ x: 100, y: 0 });
    await a.flush();
    await waitFor(() => b.get('x') === 100, 'init');
    const move = (d: RedisDict<number>) => d.transaction(() => {
      d.set('x', d.get('x')! - 1);
      d.set('y', d.get('y')! + 1);
    });
    await Promise.all([...Array(30)].flatMap(() => [move(a), move(b)]));
    await waitFor(() => a.get('y') === 60 && b.get('y') === 60, 'all transfers');
    assert.equal(a.get('x'), 40);
    assert.equal(await a.compute('x', (v) => v! * 2), 80);
    assert.equal(await b.compute('gone', () => undefined), undefined);
    assert.equal(b.has('gone'), false);
    // a transaction that throws writes nothing and leaves the local copy as it was
    await assert.rejects(
      a.transaction(() => {
        a.set('x', -1);
        throw new Error('no');
      }),
      /no/,
    );
    assert.equal(a.get('x'), 80);
    await assert.rejects(a.transaction(() => Promise.resolve(1) as never), TypeError);
    await assert.rejects(a.increment('x', NaN), TypeError);
  });

  test('bad input: clear typed errors, the dict unchanged', async () => {
    const name = uniqueName('bad');
    const d = await RedisDict.open<unknown>({ name, redis: server.url });
    try {
      d.set('a', 1);
      assert.throws(() => d.set('f', () => 1), SerializationError);
      assert.throws(() => d.update({ ok: 1, bad: Symbol('x') }), SerializationError);
      assert.equal(d.has('ok'), false);
      assert.throws(() => d.set({} as never, 1), TypeError);
      await d.flush();
      assert.equal(d.size, 1);
      await assert.rejects(RedisDict.open({ name, redis: server.url, serializer: 'json' }), ParameterMismatchError);
      await assert.rejects(RedisDict.open({ name: 'bad/name', redis: server.url }), /invalid dict name/);
      await assert.rejects(RedisDict.open({ name } as never), TypeError);
      // a key of the same name that is not ours is refused, not overwritten
      const foreign = uniqueName('foreign');
      await admin.set(`ultradict:{${foreign}}:stream`, 'hello');
      await assert.rejects(RedisDict.open({ name: foreign, redis: server.url }), (e: unknown) => e instanceof ReplicationError && /is a string, not part of an ultradict dict/.test(e.message));
      assert.equal(await admin.get(`ultradict:{${foreign}}:stream`), 'hello');
      // nobody listening on the port: a clear error within the timeout
      const t0 = Date.now();
      await assert.rejects(RedisDict.open({ name, redis: 'redis://127.0.0.1:1', connectTimeout: 1000 }), (e: unknown) => e instanceof ReplicationError && /cannot connect to redis:\/\/127.0.0.1:1/.test(e.message));
      assert.ok(Date.now() - t0 < 10_000);
    } finally {
      await d.close();
    }
    assert.throws(() => d.get('a'), AlreadyClosedError);
    assert.throws(() => d.set('a', 2), AlreadyClosedError);
  });

  test('an entry added to the stream by something else is skipped by every reader, with an error event', async () => {
    const name = uniqueName('alien');
    await using a = await RedisDict.open<unknown>({ name, redis: server.url });
    const errors: Error[] = [];
    a.on('error', (e: Error) => errors.push(e));
    a.set('before', 1);
    await a.flush();
    await admin.xadd(`ultradict:{${name}}:stream`, '*', 'hello', 'world');
    await admin.xadd(`ultradict:{${name}}:stream`, '*', 'p', '0-0', 'o', 'x', 's', '1', 'd', 'garbage');
    a.set('after', 2);
    await a.flush();
    await using b = await RedisDict.open<unknown>({ name, redis: server.url });
    await waitFor(() => errors.length >= 2 && a.get('after') === 2, 'skip');
    assert.match(errors[0]!.message, /not an ultradict entry/);
    assert.match(errors[1]!.message, /skipped the unreadable entry/);
    assert.equal(contents(b), contents(a));
  });

  test('connections cut mid-run (CLIENT KILL): writers reconnect, every write lands exactly once, all converge', async () => {
    const stream = uniqueName('cut');
    const n = 600;
    const ws = [writer('rdWrite', stream, 'w1', n, { snapshotEvery: 1_000_000 }), writer('rdWrite', stream, 'w2', n, { snapshotEvery: 1_000_000 })];
    await using local = await RedisDict.open<unknown>({ name: stream, redis: server.url, snapshotEvery: 1_000_000 });
    await Promise.all(ws.map((c) => c.message('ready')));
    for (let k = 0; k < 4; k++) {
      await waitFor(() => ws.some((c) => c.messages.filter((m) => m.type === 'ack').length > k * 4), 'progress');
      await admin.client('KILL', 'TYPE', 'normal', 'SKIPME', 'yes');
    }
    await Promise.all(ws.map((c) => c.done()));
    await waitFor(async () => {
      const len = await admin.xlen(`ultradict:{${stream}}:stream`);
      return local.stats().lastId === (await admin.get(`ultradict:{${stream}}:last`)) && len > 0;
    }, 'local caught up');
    for (const id of ['w1', 'w2']) for (const [k, v] of expectedOwn(id, n)) assert.equal(local.get(k), v, k);
    const entries = await assertNoDuplicates(admin, stream);
    assert.equal(entries, 2 * 2 * n, 'one entry per write (2 sets per iteration)');
  });

  test('Redis killed (-9) and restarted during writes: acknowledged writes survive (AOF), writers resume, all converge', async () => {
    const stream = uniqueName('restart');
    const n = 500;
    const w = writer('rdWrite', stream, 'w1', n, { snapshotEvery: 100 });
    await using local = await RedisDict.open<unknown>({ name: stream, redis: server.url, snapshotEvery: 100 });
    const states: string[] = [];
    local.on('offline', () => states.push('offline'));
    local.on('online', () => states.push('online'));
    await w.message('ready');
    await waitFor(() => w.messages.filter((m) => m.type === 'ack').length >= 4, 'some writes acknowledged');
    await server.restart('SIGKILL', 300);
    await w.done();
    for (const [k, v] of expectedOwn('w1', n)) await waitFor(() => local.get(k) === v, `${k} = ${v}`);
    await waitFor(() => states.at(-1) === 'online', `back online (states ${states.join(',')})`);
    assert.ok(states.includes('offline'), `states ${states.join(',')}`);
    await using late = await RedisDict.open<unknown>({ name: stream, redis: server.url });
    await waitFor(() => contents(late) === contents(local), 'late joiner equal');
  });

  test('flush rejects with a clear error when Redis stays unreachable; the writes stay queued and land after it is back', async () => {
    const name = uniqueName('down');
    const d = await RedisDict.open<unknown>({ name, redis: server.url, closeTimeout: 20_000 });
    try {
      await server.stop('SIGKILL');
      d.set('while-down', 1);
      assert.equal(d.get('while-down'), 1);
      await assert.rejects(d.flush({ timeout: 300 }), (e: unknown) => e instanceof ReplicationError && /not acknowledged/.test(e.message));
      await server.launch();
      await d.flush({ timeout: scaled(15_000) });
      const other = await RedisDict.open<unknown>({ name, redis: server.url });
      assert.equal(other.get('while-down'), 1);
      await other.close();
    } finally {
      if (server.proc === null) await server.launch();
      await d.close();
    }
  });
});

// Atomic operations of RedisDict against a real redis-server: they are conditional on the root keys they
// read (per-key versions kept in Redis beside the stream, checked and bumped by the append script), so
// processes incrementing keys of their own never conflict, while a write to a key read still does.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Redis } from 'ioredis';
import { Encoder, encodeWrite } from '../src/codec/wire.js';
import { OP_SET } from '../src/codec/ops.js';
import { RedisDict, TransactionConflictError } from '../src/redis/index.js';
import { Replica } from '../src/redis/replica.js';
import { resolveSerializer } from '../src/codec/serializer.js';
import { Child, uniqueName, waitFor } from './lib/helpers.js';
import { PausableProxy, RedisServer, redisForFile } from './lib/redis-server.js';

let server: RedisServer;
let admin: Redis;
const skip = redisForFile((s, a) => ((server = s), (admin = a)));

const last = async (name: string): Promise<string> => (await admin.get(`ultradict:{${name}}:last`)) ?? '0-0';

describe('RedisDict atomic operations', { skip }, () => {
  test('4 processes incrementing a key each (in one stream): exact counts and not one conflict', async () => {
    const stream = uniqueName('own');
    const n = 150;
    const ids = ['p1', 'p2', 'p3', 'p4'];
    const ps = ids.map((id) => new Child('redis-child', { op: 'rdIncr', url: server.url, stream, id, n, keys: 1, key: `counter-${id}`, snapshotEvery: 1000 }, 120_000));
    await Promise.all(ps.map((p) => p.done()));
    await using d = await RedisDict.open<number>({ name: stream, redis: server.url });
    for (const id of ids) assert.equal(d.get(`counter-${id}`), n, id);
    const conflicts = ps.map((p) => (p.messages.find((m) => m.type === 'done')!.stats as { conflicts: number }).conflicts);
    assert.deepEqual(conflicts, [0, 0, 0, 0], 'conflicts per process');
  });

  test('the append script: a write to a key read after the read position conflicts; writes to other keys do not; reading everything needs the stream unmoved; a clear touches every key', async () => {
    const name = uniqueName('cond');
    const b = await RedisDict.open<number>({ name, redis: server.url });
    const ser = resolveSerializer('msgpack');
    const target = { applyRemote: () => {}, reset: () => {}, snapshotSource: () => null };
    const r = await Replica.open({ redis: server.url, name, prefix: 'ultradict:', serializer: ser, origin: 'cond-test', snapshotEvery: 10_000, connectTimeout: 5000, originTtl: 60 }, target);
    const body = (v: number): Buffer => {
      const enc = new Encoder();
      enc.beginBody();
      encodeWrite(enc, [{ op: OP_SET, path: null, key: 'mine', value: v }], ser, false);
      return Buffer.from(enc.buf.subarray(0, enc.pos));
    };
    try {
      b.set('mine', 0);
      await b.flush();
      const x = await last(name);
      b.set('other', 1);
      await b.flush();
      const y = await last(name);
      // read 'mine' at x; only 'other' was written since: appended after y
      const [s1, id1, , prev1] = await r.sendConditional(1n, body(1), x, ['mine'], ['mine']);
      assert.deepEqual([s1, prev1], ['ok', y]);
      await waitFor(() => b.get('mine') === 1, 'the conditional write replicated');
      // 'mine' written by someone else after id1: conflict, nothing appended
      b.set('mine', 5);
      await b.flush();
      const z = await last(name);
      const [s2, at2] = await r.sendConditional(2n, body(2), id1, ['mine'], ['mine']);
      assert.deepEqual([s2, at2], ['conflict', z]);
      // it read only 'other' (and wrote 'mine' blindly): no conflict
      const [s3, id3] = await r.sendConditional(3n, body(3), id1, ['other'], ['mine']);
      assert.equal(s3, 'ok');
      // it read everything (null): the stream must not have moved since
      b.set('other', 2);
      await b.flush();
      const [s4] = await r.sendConditional(4n, body(4), id3, null, ['mine']);
      assert.equal(s4, 'conflict');
      const [s5] = await r.sendConditional(5n, body(5), await last(name), null, ['mine']);
      assert.equal(s5, 'ok');
      // a clear writes every key
      const beforeClear = await last(name);
      b.clear();
      await b.flush();
      const [s6] = await r.sendConditional(6n, body(6), beforeClear, ['never-written'], ['mine']);
      assert.equal(s6, 'conflict');
      await waitFor(() => b.size === 0, 'the clear replicated');
      assert.equal(Number(await admin.get(`ultradict:{${name}}:count`)), 8, 'appended: 4 plain writes, 3 conditional, 1 clear');
    } finally {
      await r.close(1000);
      await b.close();
    }
  });

  test('a transaction that reads the whole dict (size) still conflicts with any write; its result stays exact', async () => {
    const name = uniqueName('all');
    await using a = await RedisDict.open<number>({ name, redis: server.url });
    await using b = await RedisDict.open<number>({ name, redis: server.url });
    // both count the keys and add one named after the count: serialised, the keys are k0..k19
    await Promise.all(Array.from({ length: 10 }, () => [a.transaction(() => a.set(`k${a.size}`, 1)), b.transaction(() => b.set(`k${b.size}`, 1))]).flat());
    await waitFor(() => a.size === 20 && b.size === 20, 'both see 20 keys');
    assert.deepEqual([...a.keys()].sort(), Array.from({ length: 20 }, (_, i) => `k${i}`).sort());
  });

  test('giving up after conflictTimeout: the error states the attempts, the time taken and the bound', async () => {
    const name = uniqueName('late');
    await using proxy = await PausableProxy.start(server.port);
    await using a = await RedisDict.open<number>({ name, redis: proxy.url, conflictTimeout: 1 });
    await using b = await RedisDict.open<number>({ name, redis: server.url });
    // a's conditional append is held on the way while b writes the key it read: a deterministic conflict
    proxy.pause();
    const p = a.increment('k');
    b.set('k', 100);
    await b.flush();
    const t0 = Date.now();
    await waitFor(() => Date.now() - t0 >= 5, 'past the bound', 1000, 1);
    proxy.resume();
    await assert.rejects(p, (e: unknown) => {
      assert.ok(e instanceof TransactionConflictError);
      const m = /conflicted 1 time\(s\); gave up after (\d+) ms \(conflictTimeout 1 ms: no new attempt after it\)/.exec(e.message);
      assert.ok(m, e.message);
      assert.ok(Number(m[1]) >= 5, e.message);
      return true;
    });
    await waitFor(() => a.get('k') === 100, 'a caught up');
  });

  test('a dict of Redis format 1 (no versions) is upgraded on open: every key counts as written at its last entry', async () => {
    const name = uniqueName('fmt1');
    const d0 = await RedisDict.open<number>({ name, redis: server.url });
    d0.set('k', 1);
    await d0.close();
    // as an ultradict of format 1 left it: no versions hash
    await admin.hset(`ultradict:{${name}}:meta`, 'format', '1');
    await admin.del(`ultradict:{${name}}:ver`);
    await using d = await RedisDict.open<number>({ name, redis: server.url });
    assert.equal(await admin.hget(`ultradict:{${name}}:meta`, 'format'), '2');
    assert.equal(await admin.hget(`ultradict:{${name}}:ver`, '*'), await last(name));
    assert.equal(await d.increment('k'), 2);
  });
});

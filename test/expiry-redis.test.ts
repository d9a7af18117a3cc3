// Expiry, bounds and Redis replication: RedisDict refuses a ttl and bounds, the bridge refuses a dict
// created with a ttl option or bounds, and a per-key expiry on a bridged dict reaches other hosts as the
// delete of the expired key.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { UltraDict } from '../src/index.js';
import { Bridge, NotSupportedError, RedisDict } from '../src/redis/index.js';
import { uniqueName, waitFor } from './lib/helpers.js';
import { RedisServer, redisForFile } from './lib/redis-server.js';

let server: RedisServer;
const skip = redisForFile((s) => (server = s));

describe('expiry through Redis', { skip }, () => {
  test('RedisDict refuses a ttl with NotSupportedError and writes nothing; { ttl: 0 } is a plain write', async () => {
    await using r = await RedisDict.open<unknown>({ name: uniqueName('rttl'), redis: server.url });
    assert.throws(() => r.set('k', 1, { ttl: 1000 }), NotSupportedError);
    assert.throws(() => r.update({ k: 1 }, { ttl: 1000 }), NotSupportedError);
    assert.throws(() => r.set('k', 1, { ttl: -1 }), TypeError);
    assert.equal(r.has('k'), false);
    r.set('k', 1, { ttl: 0 });
    assert.equal(r.get('k'), 1);
  });

  test('the bridge refuses to start on a dict created with a ttl option', async () => {
    const name = uniqueName('bttl');
    using d = new UltraDict<unknown>({ name, ttl: 1000 });
    await assert.rejects(Bridge.start({ name, redis: server.url, id: 'ttl-host' }), NotSupportedError);
    d.set('still', 'usable');
    assert.equal(d.get('still'), 'usable');
  });

  test('RedisDict.open refuses bounds and a default ttl with NotSupportedError; the bridge refuses a bounded dict', async () => {
    for (const opt of [{ maxKeys: 10 }, { maxBytes: 1000 }, { evict: 'lru' }, { ttl: 1000 }]) {
      await assert.rejects(RedisDict.open<unknown>({ name: uniqueName('rb'), redis: server.url, ...(opt as object) }), NotSupportedError);
    }
    const name = uniqueName('bbound');
    using d = new UltraDict<unknown>({ name, maxKeys: 10 });
    await assert.rejects(Bridge.start({ name, redis: server.url, id: 'bound-host' }), { name: 'NotSupportedError', message: /bounds/ });
    d.set('still', 'usable');
    assert.equal(d.get('still'), 'usable');
  });

  test('a per-key expiry on a bridged dict reaches other hosts as the delete of the expired key', async () => {
    const name = uniqueName('bkey');
    using d = new UltraDict<unknown>({ name });
    const bridge = await Bridge.start({ name, redis: server.url, id: 'key-host' });
    const warnings: Error[] = [];
    bridge.on('warning', (e: Error) => warnings.push(e));
    try {
      await using r = await RedisDict.open<unknown>({ name, redis: server.url });
      d.set('k', 1, { ttl: 100 });
      await waitFor(() => r.get('k') === 1, 'the other host to get k');
      await waitFor(() => !d.has('k'), 'k to expire here');
      d.set('next', 2); // a write publishes the expired key's delete, which the bridge forwards
      await waitFor(() => !r.has('k') && r.get('next') === 2, 'the other host to drop k');
      await waitFor(() => warnings.some((w) => /expiry is not replicated/.test(w.message)), 'the bridge to warn');
    } finally {
      await bridge.close();
    }
  });
});

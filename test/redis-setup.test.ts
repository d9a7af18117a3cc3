// Setting up and tearing down replication against real redis-servers: closing leaves no timer behind,
// passwords never appear in output, the database index is honoured or refused, bad credentials fail at
// once, a Redis without persistence is warned about, and a second bridge on one local dict is refused.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { UltraDict } from '../src/index.js';
import { Bridge, RedisDict, ReplicationError } from '../src/redis/index.js';
import { runChild, uniqueName, waitFor } from './lib/helpers.js';
import { BridgeProc, RedisServer, redisSkip } from './lib/redis-server.js';
import { CLI } from './lib/paths.js';

const PASSWORD = 'pw-Zq8x1';
let plain: RedisServer; // no persistence, no password
let secured: RedisServer; // AOF (the default of RedisServer) and a password

const skip = redisSkip();

before(async () => {
  if (skip) return;
  plain = await RedisServer.start(['--appendonly', 'no']);
  secured = await RedisServer.start(['--requirepass', PASSWORD]);
});
after(async () => {
  if (skip) return;
  await plain.close();
  await secured.close();
});

const securedUrl = (): string => `redis://:${PASSWORD}@127.0.0.1:${secured.port}`;

/** Runs `ultradict bridge` until its ready line (or its exit), then stops it; returns its output. */
async function runBridge(url: string, name: string): Promise<{ code: number | null; out: string; err: string }> {
  const p = spawn(process.execPath, [CLI, 'bridge', name, url, '--id', 'setup'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  p.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  p.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((r) => p.on('exit', r));
  await waitFor(() => out.includes('ready') || p.exitCode !== null, 'bridge ready or exited', 20_000);
  if (p.exitCode === null) p.kill('SIGTERM');
  return { code: await exited, out, err };
}

describe('replication setup', { skip }, () => {
  test('RedisDict.close() and Bridge.close() leave no timer keeping the process alive', async () => {
    for (const kind of ['dict', 'bridge']) {
      const name = uniqueName(`close${kind}`);
      const m = await runChild('redis-close', { kind, url: plain.url, name });
      const done = m.find((x) => x.type === 'done');
      assert.ok(done, `${kind}: ${JSON.stringify(m)}`);
      const left = (done.resources as string[]).filter((r) => r !== 'PipeWrap' && r !== 'TTYWrap');
      assert.deepEqual(left, [], `${kind}: resources left after close`);
    }
  });

  test('the password never appears in the bridge\'s output; with AOF on, no persistence warning', async () => {
    const name = uniqueName('pw');
    const r = await runBridge(securedUrl(), name);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /ready: .* <-> redis:\/\/:\*\*\*@127\.0\.0\.1:\d+ stream/);
    assert.ok(!(r.out + r.err).includes(PASSWORD), `output shows the password:\n${r.out}${r.err}`);
    assert.doesNotMatch(r.err, /neither AOF/);
    UltraDict.unlink(name);
  });

  test('a wrong or missing password fails at once with a clear error that does not show it', async () => {
    const name = uniqueName('badpw');
    const bad = `redis://:wrong-${PASSWORD}@127.0.0.1:${secured.port}`;
    // a long connectTimeout: the error must not wait for it
    await assert.rejects(RedisDict.open({ name, redis: bad, connectTimeout: 120_000 }), (e: unknown) => {
      assert.ok(e instanceof ReplicationError);
      assert.match(e.message, /redis:\/\/:\*\*\*@127\.0\.0\.1:\d+ refused the credentials: WRONGPASS/);
      assert.ok(!e.message.includes(PASSWORD));
      return true;
    });
    await assert.rejects(RedisDict.open({ name, redis: secured.url, connectTimeout: 120_000 }), /refused the credentials: NOAUTH/);
    const r = await runBridge(bad, name);
    assert.equal(r.code, 1);
    assert.match(r.err, /refused the credentials/);
    assert.ok(!(r.out + r.err).includes(PASSWORD));
  });

  test('credentials refused on a reconnect (the password changed meanwhile) are reported at once as an error event; the handle recovers once they are accepted again', async () => {
    const name = uniqueName('rotate');
    const admin = new Redis(securedUrl());
    admin.on('error', () => {});
    const d = await RedisDict.open<number>({ name, redis: securedUrl() });
    const errors: Error[] = [];
    d.on('error', (e: Error) => errors.push(e));
    try {
      await admin.config('SET', 'requirepass', `new-${PASSWORD}`);
      await admin.client('KILL', 'TYPE', 'normal', 'SKIPME', 'yes');
      await waitFor(() => errors.length > 0, 'the error event');
      assert.ok(errors[0] instanceof ReplicationError);
      assert.match(errors[0].message, /redis:\/\/:\*\*\*@127\.0\.0\.1:\d+ refused the credentials on reconnect: WRONGPASS/);
      assert.ok(!errors[0].message.includes(PASSWORD));
      d.set('k', 1); // queued while it cannot authenticate
      await admin.config('SET', 'requirepass', PASSWORD);
      await d.flush({ timeout: 15_000 });
      assert.equal(errors.length, 1, 'reported once per outage');
    } finally {
      await admin.config('SET', 'requirepass', PASSWORD).catch(() => {});
      admin.disconnect();
      await d.close();
    }
  });

  test('redis://host:port/DB uses database DB; a database Redis does not have is refused', async () => {
    const name = uniqueName('db');
    const d = await RedisDict.open<number>({ name, redis: `${plain.url}/3` });
    try {
      d.set('k', 1);
      await d.flush();
    } finally {
      await d.close();
    }
    const admin = new Redis(plain.url);
    try {
      assert.equal(await admin.exists(`ultradict:{${name}}:stream`), 0, 'nothing in database 0');
      await admin.select(3);
      assert.equal(await admin.exists(`ultradict:{${name}}:stream`), 1, 'the stream is in database 3');
    } finally {
      admin.disconnect();
    }
    await assert.rejects(RedisDict.open({ name, redis: `${plain.url}/99` }), (e: unknown) => e instanceof ReplicationError && /has no database 99/.test(e.message));
    await assert.rejects(RedisDict.open({ name, redis: `${plain.url}/x` }), (e: unknown) => e instanceof ReplicationError && /database must be a number/.test(e.message));
  });

  test('a bridge warns at startup (and the CLI prints it) when Redis has neither AOF nor RDB', async () => {
    const name = uniqueName('nopersist');
    const r = await runBridge(plain.url, name);
    assert.equal(r.code, 0, r.err);
    assert.match(r.err, /warning .*has neither AOF \(appendonly\) nor RDB snapshots \(save\) enabled: if Redis restarts, it restarts empty/);
    // through the API: the warning raised inside start() reaches a listener added afterwards
    const b = await Bridge.start({ name, redis: plain.url, id: 'api' });
    try {
      const w = await new Promise<Error>((resolve) => b.once('warning', resolve));
      assert.match(w.message, /neither AOF/);
    } finally {
      await b.close();
    }
    UltraDict.unlink(name);
  });

  test('a second bridge on the same local dict is refused with a clear error (same id or not); the first keeps running', async () => {
    const name = uniqueName('two');
    const stream = uniqueName('twos');
    using d = new UltraDict<number>({ name });
    const first = await BridgeProc.start(plain.url, name, stream, 'host-a');
    try {
      for (const id of ['host-a', 'host-b']) {
        const p = spawn(process.execPath, [CLI, 'bridge', name, plain.url, '--stream', stream, '--id', id], { stdio: ['ignore', 'pipe', 'pipe'] });
        let err = '';
        p.stderr!.on('data', (x: Buffer) => (err += x.toString()));
        const code = await new Promise<number | null>((r) => p.on('exit', r));
        assert.equal(code, 1, err);
        assert.match(err, new RegExp(`the bridge host-a:[0-9a-f]+ \\(pid ${first.proc.pid}\\) already runs on the local dict "${name}"`));
      }
      await assert.rejects(Bridge.start({ name, redis: plain.url, stream, id: 'in-process' }), (e: unknown) => e instanceof ReplicationError && /already runs on the local dict/.test(e.message));
      // the first still forwards
      d.set('k', 1);
      await using rd = await RedisDict.open<number>({ name: stream, redis: plain.url });
      await waitFor(() => rd.get('k') === 1, 'the first bridge forwarding');
    } finally {
      await first.stop();
    }
    // once it is gone (even killed), a new bridge may start
    const again = await BridgeProc.start(plain.url, name, stream, 'host-a');
    await again.kill9();
    const third = await BridgeProc.start(plain.url, name, stream, 'host-a');
    await third.stop();
    d.unlink();
  });
});

// The bridge against a real redis-server: simulated hosts (a shared-memory dict per host, each joined to
// one Redis stream by an `ultradict bridge` process) converge under concurrent writes, after a bridge is
// SIGKILLed and restarted, and after Redis is killed and restarted; nested dicts replicate too.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { describe, test } from 'node:test';
import type { Redis } from 'ioredis';
import { UltraDict } from '../src/index.js';
import { Bridge, RedisDict } from '../src/redis/index.js';
import { Child, uniqueName, waitFor } from './lib/helpers.js';
import { assertNoDuplicates, BridgeProc, canon, contents, expectedOwn, RedisServer, redisForFile } from './lib/redis-server.js';
import { CLI } from './lib/paths.js';


let server: RedisServer;
let admin: Redis;
const skip = redisForFile((s, a) => ((server = s), (admin = a)));

function writer(op: string, opts: { stream?: string; name?: string; id: string; n: number }): Child {
  return new Child('redis-child', { op, url: server.url, keys: 40, shared: true, stream: opts.stream, name: opts.name, id: opts.id, n: opts.n }, 120_000);
}

/**
 * Two hosts (a dict each, a bridge each) on one stream, plus a RedisDict reading the stream directly.
 * `await using h = await twoHosts(…)` closes them all at the end of the block (close()).
 */
async function twoHosts(tag: string): Promise<AsyncDisposable & {
  stream: string;
  names: [string, string];
  dicts: [UltraDict<unknown>, UltraDict<unknown>];
  bridges: [BridgeProc, BridgeProc];
  rd: RedisDict<unknown>;
  close(): Promise<void>;
}> {
  const stream = uniqueName(`${tag}s`);
  const names: [string, string] = [uniqueName(`${tag}A`), uniqueName(`${tag}B`)];
  const dicts: [UltraDict<unknown>, UltraDict<unknown>] = [new UltraDict({ name: names[0] }), new UltraDict({ name: names[1] })];
  const bridges: [BridgeProc, BridgeProc] = [await BridgeProc.start(server.url, names[0], stream, `${tag}-A`), await BridgeProc.start(server.url, names[1], stream, `${tag}-B`)];
  const rd = await RedisDict.open<unknown>({ name: stream, redis: server.url });
  const close = async (): Promise<void> => {
    // stop everything even if one bridge fails to exit cleanly (then report that)
    const errors: unknown[] = [];
    for (const b of bridges) {
      if (b.proc.exitCode !== null || b.proc.signalCode !== null) continue;
      try {
        await b.stop();
      } catch (e) {
        errors.push(e);
      }
    }
    await rd.close().catch((e: unknown) => errors.push(e));
    for (const d of dicts) d.close();
    if (errors.length > 0) throw errors[0];
  };
  return {
    stream,
    names,
    dicts,
    bridges,
    rd,
    close,
    [Symbol.asyncDispose]: close,
  };
}

async function converged(h: { dicts: UltraDict<unknown>[]; rd: RedisDict<unknown> }, what: string): Promise<void> {
  await waitFor(
    () => {
      const c = contents(h.rd);
      return h.dicts.every((d) => contents(d) === c);
    },
    what,
    30_000,
    10,
  );
}

function assertOwn(views: Iterable<{ get(k: string): unknown }>, id: string, n: number): void {
  for (const v of views) for (const [k, x] of expectedOwn(id, n)) assert.equal(v.get(k), x, `${id}: ${k}`);
}

describe('bridge', { skip }, () => {
  test('two hosts and a Redis-backed dict write concurrently (same keys too) and converge to identical contents', async () => {
    await using h = await twoHosts('cc');
    const n = 400;
    const ws = [writer('shmWrite', { name: h.names[0], id: 'a', n }), writer('shmWrite', { name: h.names[1], id: 'b', n }), writer('rdWrite', { stream: h.stream, id: 'r', n })];
    // cut every client connection twice while they write: bridges and writers reconnect and resend
    for (let k = 1; k <= 2; k++) {
      await waitFor(() => ws.every((w) => w.messages.filter((m) => m.type === 'ack').length >= 3 * k || w.proc.exitCode !== null), 'writers progressing');
      await admin.client('KILL', 'TYPE', 'normal', 'SKIPME', 'yes');
    }
    await Promise.all(ws.map((w) => w.done()));
    await converged(h, 'convergence after concurrent writes');
    for (const id of ['a', 'b', 'r']) assertOwn([...h.dicts, h.rd], id, n);
    // local reads stay local: a read on host A is a shared-memory read, and sees host B's write
    h.dicts[1].set('ping', 1);
    await waitFor(() => h.dicts[0].get('ping') === 1, 'host B -> host A');
  });

  test('a bridge SIGKILLed while its host keeps writing, then restarted: no local or remote write is lost, all converge', async () => {
    await using h = await twoHosts('kk');
    const n = 600;
    const wa = writer('shmWrite', { name: h.names[0], id: 'a', n });
    const wr = writer('rdWrite', { stream: h.stream, id: 'r', n });
    await waitFor(() => wa.messages.filter((m) => m.type === 'ack').length >= 3, 'host A writing');
    await h.bridges[0].kill9();
    await Promise.all([wa.done(), wr.done()]);
    h.dicts[0].set('while-down', 'A'); // a local write with no bridge running
    h.bridges[0] = await BridgeProc.start(server.url, h.names[0], h.stream, 'kk-A');
    await converged(h, 'convergence after the bridge restart');
    assertOwn([...h.dicts, h.rd], 'a', n);
    assertOwn([...h.dicts, h.rd], 'r', n);
    assert.equal(h.dicts[1].get('while-down'), 'A');
    // the restarted bridge resumed frame by frame (no whole-state merge)
    assert.doesNotMatch(h.bridges[0].err, /warning/);
    // every forwarded frame landed once, across the two lives of the bridge
    await assertNoDuplicates(admin, h.stream);
  });

  test('Redis killed and restarted under two bridged hosts: they reconnect, forward what was queued and converge', async () => {
    await using h = await twoHosts('rr');
    const n = 500;
    const ws = [writer('shmWrite', { name: h.names[0], id: 'a', n }), writer('shmWrite', { name: h.names[1], id: 'b', n })];
    await waitFor(() => ws.every((w) => w.messages.filter((m) => m.type === 'ack').length >= 2), 'hosts writing');
    await server.restart('SIGKILL', 300);
    await Promise.all(ws.map((w) => w.done()));
    await converged(h, 'convergence after the Redis restart');
    assertOwn([...h.dicts, h.rd], 'a', n);
    assertOwn([...h.dicts, h.rd], 'b', n);
  });

  test('a bridge\'s first start seeds the stream with its host\'s data; nested dicts replicate; a write into a nested dict deleted first in stream order is dropped everywhere', async () => {
    const stream = uniqueName('ns');
    const nameA = uniqueName('nA');
    const nameB = uniqueName('nB');
    const a = new UltraDict<any>([['pre', 1]], { name: nameA, recurse: true });
    const b = new UltraDict<any>({ name: nameB, recurse: true });
    const ba = await Bridge.start({ name: nameA, stream, redis: server.url, id: 'nested-A' });
    const bb = await Bridge.start({ name: nameB, stream, redis: server.url, id: 'nested-B' });
    try {
      await waitFor(() => b.get('pre') === 1, 'merged on first start');
      a.set('cfg', { limits: { rps: 10 } });
      a.get('cfg').get('limits').set('burst', 20);
      await ba.flush();
      await waitFor(() => b.get('cfg')?.get('limits')?.get('burst') === 20, 'nested write replicated');
      assert.equal(b.get('cfg').get('limits').get('rps'), 10);
      // B deletes cfg while A (not yet seeing it) writes into it: the stream orders them; both drop the write if the delete came first
      const limitsA = a.get('cfg').get('limits');
      b.delete('cfg');
      limitsA.set('late', 1);
      await Promise.all([ba.flush(), bb.flush()]);
      // converged once both bridges have their own entries back (nothing pending) and the contents agree
      await waitFor(() => ba.stats().pending + bb.stats().pending === 0 && canon(a) === canon(b), 'nested convergence', 20_000);
    } finally {
      const closed = await Promise.allSettled([ba.close(), bb.close()]);
      a.close();
      b.close();
      for (const c of closed) if (c.status === 'rejected') throw c.reason;
    }
  });

  test('ultradict bridge: a clear error and exit code 1 when Redis is unreachable; the dict it created is removed', async () => {
    const name = uniqueName('unreach');
    const p = spawn(process.execPath, [CLI, 'bridge', name, 'redis://127.0.0.1:1'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    p.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    const code = await new Promise<number | null>((r) => p.on('exit', r));
    assert.equal(code, 1);
    assert.match(err, /cannot connect to redis:\/\/127\.0\.0\.1:1/);
    assert.equal(UltraDict.exists(name), false);
  });
});

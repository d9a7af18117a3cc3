// Nested dicts across simulated hosts (a shared-memory dict per host, each joined to one Redis stream by
// an `ultradict bridge` process that reaches Redis through a proxy the test can pause, as a slow network
// would): concurrent replace / nested write / delete from several hosts converge to the stream's order,
// with the exact outcomes docs/replication.md states.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Redis } from 'ioredis';
import { UltraDict } from '../src/index.js';
import { RedisDict } from '../src/redis/index.js';
import { uniqueName, waitFor } from './lib/helpers.js';
import { BridgeProc, canon, PausableProxy, RedisServer, redisForFile } from './lib/redis-server.js';

let server: RedisServer;
let admin: Redis;
const skip = redisForFile((s, a) => ((server = s), (admin = a)));

/** `await using h = await hosts(…)` closes them all at the end of the block (close()). */
interface Hosts extends AsyncDisposable {
  stream: string;
  dicts: UltraDict<any>[];
  bridges: BridgeProc[];
  /** host i's bridge reaches Redis through proxies[i] */
  proxies: PausableProxy[];
  rd: RedisDict<unknown>;
  close(): Promise<void>;
}

/** `n` hosts (a recursive shared-memory dict and a bridge process each) plus a RedisDict replaying the stream. */
async function hosts(tag: string, n: number): Promise<Hosts> {
  const stream = uniqueName(`${tag}s`);
  const dicts: UltraDict<any>[] = [];
  const bridges: BridgeProc[] = [];
  const proxies: PausableProxy[] = [];
  for (let i = 0; i < n; i++) {
    const name = uniqueName(`${tag}${i}`);
    dicts.push(new UltraDict<any>({ name, recurse: true }));
    proxies.push(await PausableProxy.start(server.port));
    bridges.push(await BridgeProc.start(proxies[i]!.url, name, stream, `${tag}-${i}`));
  }
  const rd = await RedisDict.open<unknown>({ name: stream, redis: server.url });
  const close = async (): Promise<void> => {
    const errors: unknown[] = [];
    for (const p of proxies) p.resume();
    for (const b of bridges) {
      if (b.proc.exitCode !== null || b.proc.signalCode !== null) continue;
      await b.stop().catch((e: unknown) => errors.push(e));
    }
    for (const p of proxies) await p.close();
    await rd.close().catch((e: unknown) => errors.push(e));
    for (const d of dicts) d.close();
    if (errors.length > 0) throw errors[0];
  };
  return {
    stream,
    dicts,
    bridges,
    proxies,
    rd,
    close,
    [Symbol.asyncDispose]: close,
  };
}

/** Every host holds exactly what the RedisDict (a replay of the stream) holds. */
async function converged(h: Hosts, what: string): Promise<void> {
  let last = '';
  try {
    await waitFor(
      () => {
        const c = canon(h.rd);
        last = [c, ...h.dicts.map((d) => canon(d))].join('\n');
        return h.dicts.every((d) => canon(d) === c);
      },
      what,
      30_000,
      10,
    );
  } catch (e) {
    throw new Error(`${(e as Error).message}; stream replay, then each host:\n${last}`);
  }
}

async function streamLength(stream: string): Promise<number> {
  return admin.xlen(`ultradict:{${stream}}:stream`);
}

describe('nested dicts across hosts', { skip }, () => {
  test('host A writes into `user` while host B deletes and re-creates it; A\'s write lands first in the stream: dropped on every host', async () => {
    await using h = await hosts('nr', 2);
    const [a, b] = h.dicts as [UltraDict<any>, UltraDict<any>];
    a.set('user', { name: 'a', v: 0 });
    await converged(h, 'user replicated');
    // B's bridge is cut off: B's replace is pending in its bridge while A's write lands first
    h.proxies[1]!.pause();
    b.delete('user');
    b.set('user', { name: 'b' });
    const len = await streamLength(h.stream);
    a.get('user').set('x', 1);
    await waitFor(async () => (await streamLength(h.stream)) === len + 1, 'A\'s nested write in the stream');
    h.proxies[1]!.resume();
    // stream order: user.x = 1, delete user, set user = {name: b}
    await converged(h, 'convergence after the replace');
    for (const d of [...h.dicts, h.rd]) assert.deepEqual(d.toJSON(), { user: { name: 'b' } });
  });

  test('a nested write that comes after a replace in the stream applies to the dict now at that path', async () => {
    await using h = await hosts('na', 2);
    const [a, b] = h.dicts as [UltraDict<any>, UltraDict<any>];
    a.set('user', { name: 'a' });
    await converged(h, 'user replicated');
    // A's bridge is cut off: A's write into its (old) user reaches the stream after B's replace
    h.proxies[0]!.pause();
    a.get('user').set('y', 2);
    const len = await streamLength(h.stream);
    b.set('user', { name: 'b' });
    await waitFor(async () => (await streamLength(h.stream)) === len + 1, 'B\'s replace in the stream');
    h.proxies[0]!.resume();
    await converged(h, 'convergence after the late nested write');
    for (const d of [...h.dicts, h.rd]) assert.deepEqual(d.toJSON(), { user: { name: 'b', y: 2 } });
    // and one after a delete (nothing at the path) is dropped everywhere
    h.proxies[0]!.pause();
    a.get('user').set('z', 3);
    const len2 = await streamLength(h.stream);
    b.delete('user');
    await waitFor(async () => (await streamLength(h.stream)) === len2 + 1, 'B\'s delete in the stream');
    h.proxies[0]!.resume();
    await converged(h, 'convergence after the dropped nested write');
    for (const d of [...h.dicts, h.rd]) assert.deepEqual(d.toJSON(), {});
  });

  test('three hosts replace, write into, and delete nested dicts concurrently: every host ends equal to the stream', async () => {
    await using h = await hosts('n3', 3);
    let seed = 12345;
    const rnd = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const roots = ['user', 'team'];
    for (let round = 0; round < 40; round++) {
      // one host at a time is cut off: its writes stay pending while the others' land first
      const pausedHost = round % 3;
      h.proxies[pausedHost]!.pause();
      const len = await streamLength(h.stream);
      let landing = 0; // frames the running hosts write (each becomes one stream entry)
      for (let i = 0; i < 3; i++) {
        const d = h.dicts[i]!;
        for (let k = 0; k < 3; k++) {
          const root = roots[rnd(roots.length)]!;
          const cur = d.get(root);
          const r = rnd(10);
          let wrote = true;
          if (r < 3 || !(cur instanceof UltraDict)) d.set(root, { host: i, round, inner: { n: k } });
          else if (r < 4) wrote = d.delete(root);
          else if (r < 6) {
            const inner = cur.get('inner');
            if (inner instanceof UltraDict) inner.set(`h${i}`, round);
            else wrote = false;
          } else if (r < 8) cur.set(`k${rnd(4)}`, `${i}/${round}/${k}`);
          else wrote = cur.delete(`k${rnd(4)}`);
          if (wrote && i !== pausedHost) landing++;
        }
      }
      await waitFor(async () => (await streamLength(h.stream)) >= len + landing, `round ${round}: the running hosts' writes in the stream`);
      h.proxies[pausedHost]!.resume();
      // a divergence would be healed by a later replace: check every round
      await converged(h, `round ${round}: three-host convergence`);
    }
  });
});

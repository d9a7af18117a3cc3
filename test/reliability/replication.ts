// Replication chaos: hosts (a shared-memory dict and an `ultradict bridge` process each) and RedisDict
// writers write at random while client connections are cut, bridges are SIGKILLed and restarted and Redis is
// killed and restarted. Afterwards every host and a fresh RedisDict must hold identical contents, the atomic
// counter must equal the acknowledged increments, every writer's own keys their last values, and no write
// may have landed twice.

import { Redis } from 'ioredis';
import { UltraDict } from '../../src/index.js';
import { RedisDict } from '../../src/redis/index.js';
import { Child, scaled, waitFor } from '../lib/helpers.js';
import { BridgeProc, contents, RedisServer } from '../lib/redis-server.js';
import { mix, Rng } from './lib.js';

export interface ChaosOptions {
  seed: number;
  hosts: number;
  rdWriters: number;
  /** most operations per writer (writers stop earlier once the faults are done) */
  ops: number;
  /** faults to inject while the writers run */
  faults: number;
  /** ms each writer waits after every 20 operations (spreads the writes over the faults) */
  paceMs: number;
  log: (s: string) => void;
}

export interface ChaosResult {
  seed: number;
  writes: number;
  faults: { cuts: number; bridgeKills: number; redisRestarts: number };
  problems: string[];
  seconds: number;
}

const delay = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function runReplicationChaos(o: ChaosOptions): Promise<ChaosResult> {
  const t0 = Date.now();
  const rng = new Rng(mix(o.seed, 77));
  const server = await RedisServer.start();
  const admin = new Redis(server.url, { maxRetriesPerRequest: null });
  admin.on('error', () => {});
  const tag = `ch${o.seed}_${process.pid}`;
  const stream = `${tag}_s`;
  const names = Array.from({ length: o.hosts }, (_, k) => `${tag}_h${k}`);
  const dicts = names.map((name) => new UltraDict<unknown>({ name }));
  const bridges: BridgeProc[] = [];
  const writers: Child[] = [];
  const problems: string[] = [];
  const faults = { cuts: 0, bridgeKills: 0, redisRestarts: 0 };
  let check: RedisDict<unknown> | null = null;
  try {
    for (let k = 0; k < o.hosts; k++) bridges.push(await BridgeProc.start(server.url, names[k]!, stream, `${tag}-${k}`));
    for (let k = 0; k < o.hosts; k++) {
      writers.push(new Child('redis-child', { op: 'chaos', url: server.url, name: names[k], id: `h${k}`, n: o.ops, seed: mix(o.seed, k), paceMs: o.paceMs }, 300_000));
    }
    for (let j = 0; j < o.rdWriters; j++) {
      writers.push(new Child('redis-child', { op: 'chaos', url: server.url, stream, id: `r${j}`, n: o.ops, seed: mix(o.seed, 100 + j), snapshotEvery: 200, paceMs: o.paceMs }, 300_000));
    }
    await Promise.all(writers.map((w) => w.message('ready', 60_000)));

    // a fixed number of faults while the writers run, then the writers are told to stop
    const running = (): boolean => writers.some((w) => w.proc.exitCode === null && !w.messages.some((m) => m.type === 'done'));
    let progress = -1;
    let progressAt = Date.now();
    for (let n = 0; n < o.faults && running(); n++) {
      const acks = writers.reduce((a, w) => a + w.messages.length, 0);
      if (acks !== progress) [progress, progressAt] = [acks, Date.now()];
      else if (Date.now() - progressAt > scaled(20_000)) {
        // stuck: ask every writer where it is, then give up on this seed
        for (const w of writers) w.proc.kill('SIGUSR2');
        await delay(500);
        problems.push(`seed ${o.seed}: no progress for ${scaled(20)} s; ${writers.map((w) => w.stderr.trim()).filter(Boolean).join(' | ')}; bridges: ${bridges.map((b) => b.err.slice(-300)).join(' | ')}`);
        break;
      }
      await delay(rng.range(80, 300));
      const f = rng.next();
      if (f < 0.45) {
        await admin.client('KILL', 'TYPE', 'normal', 'SKIPME', 'yes');
        faults.cuts++;
      } else if (f < 0.85 || faults.redisRestarts >= 2) {
        const k = rng.int(o.hosts);
        await bridges[k]!.kill9();
        faults.bridgeKills++;
        await delay(rng.range(20, 300)); // the host keeps writing with no bridge
        bridges[k] = await BridgeProc.start(server.url, names[k]!, stream, `${tag}-${k}`);
      } else {
        await server.restart('SIGKILL', rng.range(50, 400));
        faults.redisRestarts++;
      }
    }
    await delay(200); // some writes after the last fault
    for (const w of writers) if (w.proc.exitCode === null) w.send('stop');
    if (problems.length > 0) {
      o.log(problems.join('\n'));
      return { seed: o.seed, writes: 0, faults, problems, seconds: (Date.now() - t0) / 1000 };
    }
    const done = await Promise.all(writers.map((w) => w.message('done', 120_000)));
    await Promise.all(writers.map((w) => w.done()));

    check = await RedisDict.open<unknown>({ name: stream, redis: server.url });
    const c = check;
    try {
      await waitFor(() => dicts.every((d) => contents(d) === contents(c)), 'every host equal to the stream', 60_000, 20);
    } catch (e) {
      problems.push(`seed ${o.seed}: no convergence: ${(e as Error).message}; ${dicts.map((d, k) => `host ${k}: ${d.size} keys`).join(', ')}, stream: ${c.size} keys`);
    }
    const incs = done.reduce((a, m) => a + Number(m.incs ?? 0), 0);
    if ((c.get('counter') ?? 0) !== incs) problems.push(`seed ${o.seed}: counter ${String(c.get('counter'))}, acknowledged increments ${incs}`);
    for (const m of done) {
      for (const [k, v] of Object.entries(m.own as Record<string, number>)) {
        if (c.get(k) !== v) problems.push(`seed ${o.seed}: ${k} = ${String(c.get(k))}, last acknowledged write ${v}`);
      }
    }
    const entries = (await admin.xrange(`ultradict:{${stream}}:stream`, '-', '+')) as [string, string[]][];
    const seen = new Set<string>();
    for (const [id, f] of entries) {
      const key = `${f[f.indexOf('o') + 1]}/${f[f.indexOf('s') + 1]}`;
      if (seen.has(key)) problems.push(`seed ${o.seed}: entry ${id} repeats ${key}`);
      seen.add(key);
    }
    for (const b of bridges) {
      b.proc.kill('SIGTERM');
      const code = await b.exited;
      if (code !== 0) problems.push(`seed ${o.seed}: a bridge exited ${code} on SIGTERM: ${b.err.slice(-500)}`);
    }
    o.log(
      `seed ${o.seed}: ${o.hosts} hosts + ${o.rdWriters} RedisDict writers, ${done.reduce((a, m) => a + Number(m.ops ?? 0), 0)} ops; ${faults.cuts} connection cuts, ${faults.bridgeKills} bridge kills, ` +
        `${faults.redisRestarts} Redis restarts; ${c.size} keys, counter ${incs}; ${problems.length ? `${problems.length} PROBLEMS` : 'ok'}`,
    );
    return { seed: o.seed, writes: done.reduce((a, m) => a + Number(m.ops ?? 0), 0), faults, problems, seconds: (Date.now() - t0) / 1000 };
  } finally {
    for (const w of writers) if (w.proc.exitCode === null) w.proc.kill('SIGKILL');
    for (const b of bridges) if (b.proc.exitCode === null && b.proc.signalCode === null) await b.kill9();
    await check?.close().catch(() => {});
    for (const d of dicts) d.close();
    admin.disconnect();
    await server.close();
  }
}

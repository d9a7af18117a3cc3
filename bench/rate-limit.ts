// Rate-limit benchmark (`npm run bench`, or alone: `npm run build:bench && node out/bench/rate-limit.js [--quick] [--out=DIR]`):
// one rate-limit check from 4 node:cluster workers, through ultradict/express-rate-limit, rate-limit-redis,
// rate-limiter-flexible's RateLimiterCluster and RateLimiterRedis, and express-rate-limit's per-worker MemoryStore,
// measured side by side in rounds in one run. Writes the section between the rate-limit markers of benchmarks.md.

import cluster from 'node:cluster';
import { clusterMain, fromEachWorker } from './lib/proc.js';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { MemoryStore, type Options as ErlOptions } from 'express-rate-limit';
import { RedisStore, type RedisReply } from 'rate-limit-redis';
import { RateLimiterCluster, RateLimiterClusterMaster, RateLimiterRedis } from 'rate-limiter-flexible';
import { UltraDict } from '../src/index.js';
import { UltraDictStore } from '../src/express-rate-limit/index.js';
import { startRedis, type Server } from './lib/servers.js';
import { median, nowNs, percentile } from './lib/timing.js';
import { spliceSection } from './report.js';

import { RL_END, RL_START } from './report.js';

const CONTENDERS = {
  ultradict: 'ultradict/express-rate-limit (`UltraDictStore`)',
  'rate-limit-redis': '`rate-limit-redis` (express-rate-limit store, ioredis)',
  'rlf-cluster': '`rate-limiter-flexible` `RateLimiterCluster` (IPC to the primary)',
  'rlf-redis': '`rate-limiter-flexible` `RateLimiterRedis` (ioredis)',
  memory: 'express-rate-limit `MemoryStore`, one per worker (**wrong**: N× the limit)',
} as const;
type Contender = keyof typeof CONTENDERS;

const WORKERS = 4;
const KEYS = 1000; // client keys (IPs), spread over the checks
const WINDOW_MS = 60_000;
const LIMIT = 1e9; // never reached: every check is counted, none refused

interface WorkerCmd {
  contender: Contender;
  ms: number;
  dict: string;
  redisPort: number;
}
interface WorkerResult {
  checks: number;
  seconds: number;
  samples: number[];
}

/** One check: what the middleware (or limiter) does for one request. */
async function openCheck(cmd: WorkerCmd): Promise<{ check: (key: string) => unknown; close: () => Promise<void> }> {
  const erl = { windowMs: WINDOW_MS, limit: LIMIT } as ErlOptions;
  switch (cmd.contender) {
    case 'ultradict': {
      const store = new UltraDictStore({ dict: { name: cmd.dict, create: false } });
      store.init(erl);
      return { check: (k) => store.increment(k), close: async () => store.shutdown() };
    }
    case 'memory': {
      const store = new MemoryStore();
      store.init(erl);
      return { check: (k) => store.increment(k), close: async () => store.shutdown() };
    }
    case 'rate-limit-redis': {
      const client = new Redis({ port: cmd.redisPort, host: '127.0.0.1' });
      const store = new RedisStore({ sendCommand: (c: string, ...a: string[]) => client.call(c, ...a) as Promise<RedisReply>, prefix: `rl${process.ppid}:` });
      store.init(erl);
      return { check: (k) => store.increment(k), close: async () => void client.disconnect() };
    }
    case 'rlf-redis': {
      const client = new Redis({ port: cmd.redisPort, host: '127.0.0.1' });
      const limiter = new RateLimiterRedis({ storeClient: client, points: LIMIT, duration: WINDOW_MS / 1000, keyPrefix: `rlf${process.ppid}` });
      return { check: (k) => limiter.consume(k), close: async () => void client.disconnect() };
    }
    case 'rlf-cluster': {
      const limiter = new RateLimiterCluster({ points: LIMIT, duration: WINDOW_MS / 1000, keyPrefix: 'bench', timeoutMs: 10_000 });
      return { check: (k) => limiter.consume(k), close: async () => undefined };
    }
  }
}

async function worker(): Promise<void> {
  const cmd = JSON.parse(process.env.RL_BENCH!) as WorkerCmd;
  const { check, close } = await openCheck(cmd);
  const keys = Array.from({ length: KEYS }, (_, i) => `10.0.${i >> 8}.${i & 255}`);
  // warm-up (and, for the Redis stores, their script is loaded)
  for (let i = 0; i < 3 * KEYS; i++) await check(keys[i % KEYS]!);
  process.send!({ type: 'ready' });
  await new Promise<void>((r) => process.once('message', () => r()));
  const samples: number[] = [];
  let checks = 0;
  const start = nowNs();
  const end = start + BigInt(cmd.ms) * 1_000_000n;
  let t = start;
  while (t < end) {
    const r = check(keys[checks % KEYS]!);
    if (r instanceof Promise) await r;
    const t2 = nowNs();
    if ((checks & 3) === 0) samples.push(Number(t2 - t) / 1000); // µs, every 4th check
    checks++;
    t = t2;
  }
  const result: WorkerResult = { checks, seconds: Number(t - start) / 1e9, samples };
  process.send!({ type: 'result', result });
  await new Promise<void>((r) => process.once('message', () => r())); // the primary has the result
  await close();
  process.disconnect();
}

/** Runs one contender on WORKERS workers for ms: checks/s of all together and p99 latency (µs). */
async function measure(contender: Contender, ms: number, dict: string, redisPort: number): Promise<{ rate: number; p50: number; p99: number }> {
  const env = { RL_BENCH: JSON.stringify({ contender, ms, dict, redisPort } satisfies WorkerCmd) };
  const workers = Array.from({ length: WORKERS }, () => cluster.fork(env));
  const msgs = (type: string): Promise<Array<{ type: string; result?: WorkerResult }>> => fromEachWorker(workers, type, contender);
  await msgs('ready');
  for (const w of workers) w.send('go');
  const results = (await msgs('result')).map((m) => m.result!);
  for (const w of workers) w.send('bye');
  await Promise.all(workers.map((w) => new Promise((r) => (w.isDead() ? r(null) : w.once('exit', r)))));
  const samples = results.flatMap((r) => r.samples);
  return {
    rate: results.reduce((n, r) => n + r.checks / r.seconds, 0),
    p50: percentile(samples, 50),
    p99: percentile(samples, 99),
  };
}

function fmt(x: number): string {
  if (x >= 1e6) return `${(x / 1e6).toFixed(2)} M`;
  if (x >= 1e3) return `${(x / 1e3).toFixed(1)} k`;
  return x.toFixed(0);
}
const us = (x: number): string => (x >= 1000 ? `${(x / 1000).toFixed(2)} ms` : `${x.toFixed(1)} µs`);

async function primary(): Promise<void> {
  const args = process.argv.slice(2);
  const quick = args.includes('--quick');
  const here = dirname(fileURLToPath(import.meta.url));
  const outDir = resolve(args.find((a) => a.startsWith('--out='))?.slice(6) ?? join(here, '..', '..', quick ? '.bench-tmp' : 'docs'));
  const ROUNDS = quick ? 2 : 5;
  const MS = quick ? 500 : 2000;
  const tmp = mkdtempSync(join(os.tmpdir(), 'rl-bench-'));
  let redis: Server | null = null;
  new RateLimiterClusterMaster(); // answers the RateLimiterCluster workers
  using dict = new UltraDict<unknown>({ name: `rl_bench_${process.pid}` });
  try {
    redis = await startRedis(tmp);
    cluster.setupPrimary({ exec: fileURLToPath(import.meta.url), silent: false });
    const order = Object.keys(CONTENDERS) as Contender[];
    const runs = new Map<Contender, Array<{ rate: number; p50: number; p99: number }>>(order.map((c) => [c, []]));
    // side by side: every round measures every contender, in a rotated order
    for (let round = 0; round < ROUNDS; round++) {
      for (let i = 0; i < order.length; i++) {
        const c = order[(i + round) % order.length]!;
        const r = await measure(c, MS, dict.name, redis.port);
        runs.get(c)!.push(r);
        console.log(`rate-limit round ${round + 1}/${ROUNDS} ${c}: ${fmt(r.rate)} checks/s, p99 ${us(r.p99)}`);
      }
    }
    const rows = order.map((c) => {
      const rs = runs.get(c)!;
      return { c, rate: median(rs.map((r) => r.rate)), p50: median(rs.map((r) => r.p50)), p99: median(rs.map((r) => r.p99)) };
    });
    const base = rows.find((r) => r.c === 'ultradict')!;
    const L = [
      RL_START,
      '## Rate limiting from a cluster',
      '',
      `One rate-limit check (what the middleware does per request: count a hit for a client key, get the count and reset time) from ${WORKERS} \`node:cluster\` workers at once, each running checks back to back (one in flight per worker) over ${KEYS} client keys, for ${MS / 1000} s; ${ROUNDS} rounds, every contender in every round, in a rotated order; medians of the rounds. p50/p99: latency of one check in a worker (every 4th check sampled). Written by \`bench/rate-limit.ts\` (Node ${process.versions.node}, ${os.cpus().length} cores: ${os.cpus()[0]?.model.trim() ?? '?'}); a loaded, shared machine, so read the ratios rather than the absolute figures.`,
      '',
      '| | checks/s (4 workers) | × ultradict | p50 | p99 |',
      '|---|---:|---:|---:|---:|',
      ...rows.map((r) => `| ${r.c === 'ultradict' ? `**${CONTENDERS[r.c]}**` : CONTENDERS[r.c]} | ${fmt(r.rate)} | ${(r.rate / base.rate).toFixed(2)}× | ${us(r.p50)} | ${us(r.p99)} |`),
      '',
      `The per-worker \`MemoryStore\` is the ceiling, not a contender: each of the ${WORKERS} workers counts only the requests it serves, so a client gets ${WORKERS}× the limit (N workers: N×). The Redis rows go over loopback TCP to a redis-server on the same machine (no persistence); \`RateLimiterCluster\` sends every check over IPC to the primary process, which holds the counts.`,
      RL_END,
    ];
    mkdirSync(outDir, { recursive: true });
    spliceSection(join(outDir, 'benchmarks.md'), L.join('\n'), RL_START, RL_END);
    console.log(`wrote the rate-limit section of ${join(outDir, 'benchmarks.md')}`);
  } finally {
    await redis?.stop().catch(() => undefined);
    rmSync(tmp, { recursive: true, force: true });
  }
}

clusterMain(primary, worker);

// Cache benchmark (`npm run bench`, or alone: `npm run bench -- --only=cache`, or
// `npm run build:bench && node out/bench/cache.js [--quick] [--out=DIR] [--contenders=ud-get,redis,…]
// [--in-flight=N]`): 4 node:cluster workers use a
// cache cache-aside over a Zipf(0.99) key set, with a loader that simulates the upstream (an awaited
// 1 ms timer, counted): ultradict bounded with a TTL (get/set, and fetch), lru-cache one cache per
// worker (get/set, and its fetch), Redis with `maxmemory-policy allkeys-lru` and an expiry on every SET.
// Every contender starts empty in every round, and every worker draws the same seeded key sequence for
// every contender; rounds are rotated. Reports throughput, hit ratio and loader calls.
//
// Writes the section between the cache markers of benchmarks.md, only when this build of ultradict has the
// bound (`maxKeys`, `evict`); otherwise the dict runs unbounded as a labelled stand-in and docs/ is not written.
import cluster from 'node:cluster';
import { clusterMain, fromEachWorker } from './lib/proc.js';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { LRUCache } from 'lru-cache';
import { UltraDict } from '../src/index.js';
import { boundOptions, boundsSupported, evictions } from './lib/bounds.js';
import { startRedis, type Server } from './lib/servers.js';
import { which } from '../test/lib/servers.js';
import { median, nowNs, sleep } from './lib/timing.js';
import { zipfSequence } from './lib/zipf.js';
import { ExactLru } from './lib/exact-lru.js';
import { CACHE_END, CACHE_START, spliceSection } from './report.js';

const CONTENDERS = {
  'ud-get': 'ultradict, `get` / `set` (one dict for the 4 workers)',
  'ud-fetch': 'ultradict, `fetch(key, loader)` (one dict; one load per key for the machine)',
  'lru-get': '`lru-cache`, `get` / `set`, one cache per worker',
  'lru-fetch': '`lru-cache`, `fetch()` with a `fetchMethod`, one cache per worker (one load per key per worker)',
  redis: 'Redis (ioredis), `GET` / `SET … PX`, `allkeys-lru`',
} as const;
type Contender = keyof typeof CONTENDERS;

const WORKERS = 4;
const S = 0.99;
const TTL_MS = 60_000;
const LOAD_MS = 1;

interface Params {
  keys: number;
  bound: number;
  /** operations of each worker */
  ops: number;
  /** operations in flight in each worker (concurrent requests of a server) */
  inFlight: number;
}

interface WorkerCmd extends Params {
  contender: Contender;
  worker: number;
  dict: string;
  redisPort: number;
  prefix: string;
}
interface WorkerResult {
  ops: number;
  hits: number;
  /** hits among the second half of the requests (the cache filled) */
  lateHits: number;
  loads: number;
  seconds: number;
  /** keys in the worker's own cache at the end (lru-cache) */
  size?: number;
  /** keys the worker's own cache evicted (lru-cache) */
  evicted?: number;
  /** total ms the loader calls took (awaited timer), to report the real cost of one */
  loadMs: number;
}

/** The value the upstream returns for rank r: a small record, about 100 bytes as JSON. */
function valueOf(r: number): { id: number; name: string; tags: string[]; payload: string } {
  return { id: r, name: `item ${r}`, tags: ['a', 'b'], payload: 'x'.repeat(48) };
}

const rankOf = (key: string): number => Number(key.slice(1));

async function worker(): Promise<void> {
  const cmd = JSON.parse(process.env.CACHE_BENCH!) as WorkerCmd;
  const keys = Array.from({ length: cmd.keys }, (_, i) => `k${i}`);
  // the same sequence for every contender: seeded by the worker's index only
  const seq = zipfSequence(cmd.keys, S, cmd.ops, 1000 + cmd.worker);
  let hits = 0;
  let loads = 0;
  let loadMs = 0;
  let started = 0; // requests started: the second half's hits are counted apart too
  const half = cmd.ops >> 1;
  let lateHits = 0;
  const hit = (): void => {
    hits++;
    if (started > half) lateHits++;
  };
  const loader = async (key: string): Promise<ReturnType<typeof valueOf>> => {
    loads++;
    const t = nowNs();
    await sleep(LOAD_MS);
    loadMs += Number(nowNs() - t) / 1e6;
    return valueOf(rankOf(key));
  };
  const check = (v: { id: number } | undefined, r: number): void => {
    if (!v || v.id !== r) throw new Error(`${cmd.contender}: k${r} read ${JSON.stringify(v)}`);
  };
  let op: (key: string, r: number) => Promise<void> | void;
  let close: () => Promise<void> | void = () => undefined;
  let size: () => number | undefined = () => undefined;
  let evicted = 0; // lru-cache: counted by its dispose callback
  const dispose = (_v: unknown, _k: string, reason: string): void => {
    if (reason === 'evict') evicted++;
  };
  switch (cmd.contender) {
    case 'ud-get':
    case 'ud-fetch': {
      const d = new UltraDict<ReturnType<typeof valueOf>>({ name: cmd.dict, create: false });
      close = () => d.close();
      op =
        cmd.contender === 'ud-get'
          ? async (k, r) => {
              let v = d.get(k);
              if (v !== undefined) hit();
              else {
                v = await loader(k);
                d.set(k, v);
              }
              check(v, r);
            }
          : async (k, r) => {
              if (d.has(k)) hit();
              check(await d.fetch(k, (key) => loader(String(key))), r);
            };
      break;
    }
    case 'lru-get': {
      const c = new LRUCache<string, ReturnType<typeof valueOf>>({ max: cmd.bound, ttl: TTL_MS, dispose });
      size = () => c.size;
      op = async (k, r) => {
        let v = c.get(k);
        if (v !== undefined) hit();
        else {
          v = await loader(k);
          c.set(k, v);
        }
        check(v, r);
      };
      break;
    }
    case 'lru-fetch': {
      const c = new LRUCache<string, ReturnType<typeof valueOf>>({ max: cmd.bound, ttl: TTL_MS, dispose, fetchMethod: (k) => loader(k) });
      size = () => c.size;
      op = async (k, r) => {
        const status: LRUCache.Status<string, ReturnType<typeof valueOf>> = {};
        const v = await c.fetch(k, { status });
        if (status.fetch === 'hit') hit();
        check(v, r);
      };
      break;
    }
    case 'redis': {
      const client = new Redis({ port: cmd.redisPort, host: '127.0.0.1' });
      close = () => void client.disconnect();
      op = async (k, r) => {
        const key = cmd.prefix + k;
        const s = await client.get(key);
        let v: ReturnType<typeof valueOf>;
        if (s !== null) {
          hit();
          v = JSON.parse(s) as ReturnType<typeof valueOf>;
        } else {
          v = await loader(k);
          await client.set(key, JSON.stringify(v), 'PX', TTL_MS);
        }
        check(v, r);
      };
      await client.ping();
      break;
    }
  }
  process.send!({ type: 'ready' });
  await new Promise<void>((r) => process.once('message', () => r()));
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < cmd.ops) {
      const r = seq[next++]!;
      started++;
      await op(keys[r]!, r);
    }
  };
  const start = nowNs();
  await Promise.all(Array.from({ length: cmd.inFlight }, lane));
  const seconds = Number(nowNs() - start) / 1e9;
  const result: WorkerResult = { ops: cmd.ops, hits, lateHits, loads, seconds, loadMs, size: size(), evicted };
  process.send!({ type: 'result', result });
  await new Promise<void>((r) => process.once('message', () => r())); // the primary has the result
  await close();
  process.disconnect();
}

interface Run {
  /** operations per second of the 4 workers together: all operations / time until the last worker finished */
  rate: number;
  hitRatio: number;
  /** in the second half of each worker's requests */
  lateHitRatio: number;
  loads: number;
  /** mean time of one loader call (ms) */
  loadMs: number;
  /** keys in the cache at the end (lru-cache: all workers' caches together) */
  keysAtEnd: number | null;
  evicted: number | null;
}

async function runWorkers(contender: Contender, p: Params, dict: string, redisPort: number, prefix: string): Promise<WorkerResult[]> {
  const workers = Array.from({ length: WORKERS }, (_, i) =>
    cluster.fork({ CACHE_BENCH: JSON.stringify({ ...p, contender, worker: i, dict, redisPort, prefix } satisfies WorkerCmd) }),
  );
  const msgs = (type: string): Promise<Array<{ type: string; result?: WorkerResult }>> => fromEachWorker(workers, type, contender);
  try {
    await msgs('ready');
    for (const w of workers) w.send('go');
    const results = (await msgs('result')).map((m) => m.result!);
    for (const w of workers) w.send('bye');
    await Promise.all(workers.map((w) => new Promise((r) => (w.isDead() ? r(null) : w.once('exit', r)))));
    return results;
  } catch (e) {
    for (const w of workers) if (!w.isDead()) w.process.kill('SIGKILL');
    throw e;
  }
}

function summarize(results: WorkerResult[]): Omit<Run, 'keysAtEnd' | 'evicted'> {
  const ops = results.reduce((n, r) => n + r.ops, 0);
  const loads = results.reduce((n, r) => n + r.loads, 0);
  return {
    rate: ops / Math.max(...results.map((r) => r.seconds)),
    hitRatio: results.reduce((n, r) => n + r.hits, 0) / ops,
    lateHitRatio: results.reduce((n, r) => n + r.lateHits, 0) / results.reduce((n, r) => n + (r.ops - (r.ops >> 1)), 0),
    loads,
    loadMs: loads ? results.reduce((n, r) => n + r.loadMs, 0) / loads : NaN,
  };
}

function redisInfo(text: string, field: string): number {
  const m = new RegExp(`^${field}:(\\d+)`, 'm').exec(text);
  return m ? Number(m[1]) : NaN;
}

/**
 * maxmemory for about `bound` entries of the benchmark's values (with their expiry), with as many client
 * connections open as the run will have: starts from the used_memory after writing `bound` keys into the
 * empty server, then writes more keys under allkeys-lru and corrects maxmemory by the keys that did not
 * fit (or fitted too many), a few times. Returns the setting (bytes) and the keys it held at the end.
 */
async function sizeRedis(client: Redis, port: number, bound: number, prefix: string): Promise<{ maxmemory: number; fits: number }> {
  const clients = Array.from({ length: WORKERS }, () => new Redis({ port, host: '127.0.0.1' }));
  try {
    await Promise.all(clients.map((c) => c.ping()));
    let written = 0;
    const write = async (n: number): Promise<void> => {
      // small pipelines: a large one's query buffer counts in used_memory (and would evict keys)
      for (let i = 0; i < n; i += 50) {
        const pipe = client.pipeline();
        for (let j = i; j < Math.min(n, i + 50); j++, written++) pipe.set(`${prefix}k${written}`, JSON.stringify(valueOf(written)), 'PX', TTL_MS);
        await pipe.exec();
      }
    };
    await client.config('SET', 'maxmemory', '0');
    await client.flushall();
    const empty = redisInfo(await client.info('memory'), 'used_memory');
    await write(bound);
    const full = redisInfo(await client.info('memory'), 'used_memory');
    const perKey = (full - empty) / bound;
    let maxmemory = full;
    await client.config('SET', 'maxmemory-policy', 'allkeys-lru');
    let fits = bound;
    for (let i = 0; i < 6; i++) {
      await client.config('SET', 'maxmemory', String(Math.round(maxmemory)));
      await write(bound / 2); // past the bound: evicts down to what fits
      fits = await client.dbsize();
      if (Math.abs(fits - bound) <= bound / 200) break;
      maxmemory += (bound - fits) * perKey;
    }
    await client.flushall();
    return { maxmemory: Math.round(maxmemory), fits };
  } finally {
    for (const c of clients) c.disconnect();
  }
}

/**
 * The reference: one exact LRU of the bound, shared, fed the workers' sequences interleaved one request
 * each in turn (the real interleaving depends on timing), simulated in one process: its hit ratios, and
 * its misses as loader calls.
 */
function exactReference(p: Params): { hit: number; late: number; loads: number } {
  const seqs = Array.from({ length: WORKERS }, (_, w) => zipfSequence(p.keys, S, p.ops, 1000 + w));
  const lru = new ExactLru<number>(p.bound);
  const half = p.ops >> 1;
  let hits = 0;
  let late = 0;
  for (let i = 0; i < p.ops; i++) {
    for (const seq of seqs) {
      const k = `k${seq[i]!}`;
      if (lru.get(k) !== undefined) {
        hits++;
        if (i >= half) late++;
      } else lru.set(k, 1);
    }
  }
  return { hit: hits / (WORKERS * p.ops), late: late / (WORKERS * (p.ops - half)), loads: WORKERS * p.ops - hits };
}

const count = (x: number): string => (Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : '-');

function fmt(x: number): string {
  if (!Number.isFinite(x)) return '-';
  if (x >= 1e6) return `${(x / 1e6).toFixed(2)} M`;
  if (x >= 1e3) return `${(x / 1e3).toFixed(1)} k`;
  return x.toFixed(0);
}
const pct = (x: number): string => `${(100 * x).toFixed(1)} %`;

async function primary(): Promise<void> {
  const args = process.argv.slice(2);
  const quick = args.includes('--quick');
  const here = dirname(fileURLToPath(import.meta.url));
  const root = resolve(here, '..', '..');
  let outDir = resolve(args.find((a) => a.startsWith('--out='))?.slice(6) ?? join(root, quick ? '.bench-tmp' : 'docs'));
  const inFlightArg = args.find((a) => a.startsWith('--in-flight='));
  const only = args.find((a) => a.startsWith('--contenders='))?.slice(13).split(',') as Contender[] | undefined;
  for (const c of only ?? []) if (!Object.hasOwn(CONTENDERS, c)) throw new Error(`--contenders: no contender ${c} (${Object.keys(CONTENDERS).join(', ')})`);
  const bounded = boundsSupported();
  if (!bounded) {
    console.log('cache: this build of ultradict has no `maxKeys`/`evict`: its rows use an unbounded dict (a stand-in); docs/ is not written');
    if (existsSync(join(root, 'docs')) && outDir === resolve(root, 'docs')) outDir = join(root, '.bench-tmp');
  }
  const keys = quick ? 20_000 : 100_000;
  const p: Params = { keys, bound: keys / 10, ops: quick ? 10_000 : 15_000, inFlight: inFlightArg ? Number(inFlightArg.slice(12)) : 4 };
  const ROUNDS = quick ? 1 : 3;
  const tmp = mkdtempSync(join(os.tmpdir(), 'cache-bench-'));
  let redis: Server | null = null;
  let admin: Redis | null = null;
  try {
    let order = only ?? (Object.keys(CONTENDERS) as Contender[]);
    const prefix = `c${process.pid}:`;
    let maxmemory = 0;
    let fits = 0;
    if (order.includes('redis') && !which('redis-server')) {
      console.log('cache: redis-server is not installed: the Redis row is skipped');
      order = order.filter((c) => c !== 'redis');
    } else if (order.includes('redis')) {
      redis = await startRedis(tmp);
      admin = new Redis({ port: redis.port, host: '127.0.0.1' });
      ({ maxmemory, fits } = await sizeRedis(admin, redis.port, p.bound, prefix));
    }
    console.log(`cache: Zipf(${S}) over ${fmt(keys)} keys, bound ${fmt(p.bound)}, ${fmt(p.ops)} operations × ${WORKERS} workers, ${p.inFlight} in flight per worker${redis ? `; Redis maxmemory ${(maxmemory / 2 ** 20).toFixed(2)} MiB (held ${fits} keys when sized)` : ''}`);
    cluster.setupPrimary({ exec: fileURLToPath(import.meta.url), silent: false });
    const runs = new Map<Contender, Run[]>(order.map((c) => [c, []]));
    let seq = 0;
    for (let round = 0; round < ROUNDS; round++) {
      for (let i = 0; i < order.length; i++) {
        const c = order[(i + round) % order.length]!;
        let run: Run;
        if (c === 'ud-get' || c === 'ud-fetch') {
          const name = `udcache_${process.pid}_${++seq}`;
          using d = new UltraDict<unknown>({ name, create: true, ttl: TTL_MS, ...(bounded ? boundOptions(p.bound, 'lru') : {}) });
          const results = await runWorkers(c, p, name, 0, prefix);
          run = { ...summarize(results), keysAtEnd: d.size, evicted: evictions(d.stats()) };
        } else if (c === 'redis' && redis && admin) {
          await admin.flushall();
          await admin.config('RESETSTAT');
          const results = await runWorkers(c, p, '', redis.port, prefix);
          const stats = await admin.info('stats');
          run = { ...summarize(results), keysAtEnd: await admin.dbsize(), evicted: redisInfo(stats, 'evicted_keys') };
        } else {
          const results = await runWorkers(c, p, '', 0, prefix);
          run = { ...summarize(results), keysAtEnd: results.reduce((n, r) => n + (r.size ?? 0), 0), evicted: results.reduce((n, r) => n + (r.evicted ?? 0), 0) };
        }
        runs.get(c)!.push(run);
        console.log(
          `cache round ${round + 1}/${ROUNDS} ${c}: ${fmt(run.rate)} ops/s, hit ratio ${pct(run.hitRatio)} (2nd half ${pct(run.lateHitRatio)}), ${count(run.loads)} loader calls (${run.loadMs.toFixed(2)} ms each), ${fmt(run.keysAtEnd ?? NaN)} keys at the end, ${run.evicted ?? '?'} evicted`,
        );
      }
    }
    const rows = order.map((c) => {
      const rs = runs.get(c)!;
      const m = (f: (r: Run) => number | null): number => median(rs.map(f).filter((x): x is number => x !== null && Number.isFinite(x)));
      return { c, rate: m((r) => r.rate), hit: m((r) => r.hitRatio), late: m((r) => r.lateHitRatio), loads: m((r) => r.loads), keysAtEnd: m((r) => r.keysAtEnd), evicted: m((r) => r.evicted), loadMs: m((r) => r.loadMs) };
    });
    const base = rows.find((r) => r.c === 'ud-get') ?? rows[0]!;
    const ref = exactReference(p);
    console.log(`cache reference, exact LRU shared: hit ratio ${pct(ref.hit)} (2nd half ${pct(ref.late)}), ${count(ref.loads)} loads`);
    const label = (c: Contender): string => (c.startsWith('ud-') && !bounded ? `${CONTENDERS[c]} (**stand-in: unbounded**)` : CONTENDERS[c]);
    const total = WORKERS * p.ops;
    const L = [
      CACHE_START,
      '## A cache shared by a cluster',
      '',
      `${WORKERS} \`node:cluster\` workers use a cache cache-aside: each runs ${count(p.ops)} requests, ${p.inFlight} at a time (a server's concurrent requests), for keys drawn from a Zipf(${S}) distribution over ${count(keys)} keys (each worker's sequence is seeded by its index: the same requests for every contender). A request reads its key; on a miss it calls the loader, which stands for the upstream (a database query): it awaits a ${LOAD_MS} ms timer (\`setTimeout\`, so it costs time, not CPU), is counted, and returns a record of about 100 bytes of JSON, which is then written with a time to live of ${TTL_MS / 1000} s. Every cache is bounded to ${count(p.bound)} keys (10 %) and starts empty, so the figures include filling it; a run lasts seconds, so nothing expires: the misses are first loads and the bound's evictions. Hit ratio: requests served without a load or a wait, over all requests and over the second half of each worker's requests. One loader call: its mean duration as the worker saw it, the 1 ms timer plus the time the worker's event loop was busy or blocked elsewhere. ${ROUNDS} round${ROUNDS > 1 ? 's' : ''}, every contender in every round in a rotated order, medians of the rounds. Written by \`bench/cache.ts\` (Node ${process.versions.node}, ${os.cpus().length} cores: ${os.cpus()[0]?.model.trim() ?? '?'}); a loaded, shared machine, so read the ratios rather than the absolute figures.`,
      '',
      `| | requests/s (${WORKERS} workers) | × ${base.c === 'ud-get' ? 'ultradict get/set' : base.c} | hit ratio | hit ratio, 2nd half | loader calls (of ${count(total)} requests) | one loader call | keys at the end | evicted |`,
      '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
      ...rows.map((r) => `| ${label(r.c)} | ${fmt(r.rate)} | ${(r.rate / base.rate).toFixed(2)}× | ${pct(r.hit)} | ${pct(r.late)} | ${count(r.loads)} | ${r.loadMs.toFixed(2)} ms | ${r.c.startsWith('lru-') ? `${WORKERS} × ${fmt(r.keysAtEnd / WORKERS)}` : fmt(r.keysAtEnd)} | ${fmt(r.evicted)} |`),
      `| exact LRU of ${fmt(p.bound)} keys, shared (reference: simulated in one process, the ${WORKERS} sequences interleaved) | - | - | ${pct(ref.hit)} | ${pct(ref.late)} | ${count(ref.loads)} | - | ${fmt(p.bound)} | - |`,
      '',
      `Settings: ultradict \`new UltraDict({ name, ttl: ${TTL_MS}${bounded ? `, maxKeys: ${p.bound}, evict: 'lru'` : ''} })\`, created by the primary, attached by the workers (\`'lru'\` evicts the least recent of 5 sampled keys and a pool of 16 older candidates, as Redis does); \`fetch\` runs the loader in one caller for the machine, the callers of other workers wait for its value (they look every 10 ms; at most 16 keys load at once per dict), and a hit is counted when \`has(key)\` was true before the \`fetch\`. lru-cache ${'`'}new LRUCache({ max: ${p.bound}, ttl: ${TTL_MS} })${'`'} in each worker: ${WORKERS} caches of up to ${count(p.bound)} keys each, so up to ${WORKERS}× the memory of one shared bound, each filled by its own loads (keys at the end: ${WORKERS} × the mean of a worker's cache); its \`fetch\` counts a hit when its \`status.fetch\` is \`'hit'\` and dedups loads within one worker only.${redis ? ` Redis: redis-server on 127.0.0.1 (no persistence), \`maxmemory-policy allkeys-lru\` (default \`maxmemory-samples\` 5), \`maxmemory\` ${(maxmemory / 2 ** 20).toFixed(2)} MiB: sized before the rounds, with ${WORKERS} client connections open, by writing these values with their expiry past the bound and correcting \`maxmemory\` until it held ${fmt(fits)} keys (the bound: ${fmt(p.bound)}); one ioredis connection per worker, values as JSON text, \`SET key value PX ${TTL_MS}\`.` : ''}`,
      CACHE_END,
    ];
    mkdirSync(outDir, { recursive: true });
    spliceSection(join(outDir, 'benchmarks.md'), L.join('\n'), CACHE_START, CACHE_END);
    console.log(`wrote the cache section of ${join(outDir, 'benchmarks.md')}${bounded ? '' : ' (stand-in: not docs/)'}`);
  } finally {
    admin?.disconnect();
    await redis?.stop().catch(() => undefined);
    rmSync(tmp, { recursive: true, force: true });
  }
}

clusterMain(primary, worker);

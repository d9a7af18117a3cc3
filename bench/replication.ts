// Replication benchmark (`npm run bench`, or alone: `npm run build:bench && node out/bench/replication.js
// [--quick] [--write-docs] [--out=DIR] [--contention [--module=PATH]] [--delays]`): local reads of a bridged dict against the same dict without a
// bridge, host-to-host replication delay through two bridges, and Redis-backed writes against plain
// ioredis, all in one run against one redis-server started here. Writes the section between the
// replication markers of benchmarks.md.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { UltraDict } from '../src/index.js';
import { RedisDict } from '../src/redis/index.js';
import { startRedis, type Server } from './lib/servers.js';
import { median, nowNs, percentile } from './lib/timing.js';
import { END, spliceSection, START } from './report.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const CLI = join(here, '..', 'src', 'cli.js');

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const writeDocs = args.includes('--write-docs') || (!quick && !args.some((a) => a.startsWith('--out=')));
const outArg = args.find((a) => a.startsWith('--out='))?.slice(6);
/** --contention / --delays: only those figures, printed (not written to the docs) */
const contentionOnly = args.includes('--contention');
const delaysOnly = args.includes('--delays');
/** --module=PATH: the ultradict/redis module the contention processes load (an older build, for a before/after comparison) */
const redisModule = resolve(args.find((a) => a.startsWith('--module='))?.slice(9) ?? join(here, '..', 'src', 'redis', 'index.js'));
const REPS = quick ? 3 : 5;
const READ_MS = quick ? 150 : 400;
const WRITE_MS = quick ? 300 : 1000;
const SAMPLES = quick ? 300 : 2000;
const KEYS = 10_000;
const tag = `rb${process.pid}`;

function fmt(x: number): string {
  if (!Number.isFinite(x)) return '–';
  if (x >= 1e6) return `${(x / 1e6).toFixed(2)} M`;
  if (x >= 1e3) return `${(x / 1e3).toFixed(1)} k`;
  return x.toFixed(0);
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

class Proc {
  readonly p: ChildProcess;
  out = '';
  constructor(argv: string[]) {
    this.p = spawn(process.execPath, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.p.stdout!.on('data', (d: Buffer) => (this.out += d.toString()));
    this.p.stderr!.on('data', (d: Buffer) => (this.out += d.toString()));
  }
  async waitFor(text: string, ms = 20_000): Promise<void> {
    const t0 = Date.now();
    while (!this.out.includes(text)) {
      if (this.p.exitCode !== null) throw new Error(`process exited: ${this.out}`);
      if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${text}: ${this.out}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }
  async stop(): Promise<void> {
    if (this.p.exitCode !== null) return;
    const done = new Promise((r) => this.p.once('exit', r));
    this.p.kill('SIGTERM');
    await done;
  }
}

async function bridge(name: string, stream: string, url: string, id: string): Promise<Proc> {
  const b = new Proc([CLI, 'bridge', name, url, '--stream', stream, '--id', id, '--json']);
  await b.waitFor('"type":"ready"');
  return b;
}

/** get() over shuffled keys for READ_MS: ops/s. */
function readRate(d: UltraDict<unknown>, keys: string[]): number {
  let n = 0;
  let sink = 0;
  const t0 = nowNs();
  const end = t0 + BigInt(READ_MS) * 1_000_000n;
  for (;;) {
    for (let i = 0; i < 1000; i++) if (d.get(keys[(n + i) % keys.length]!) !== undefined) sink++;
    n += 1000;
    if (nowNs() >= end) break;
  }
  if (sink < 0) console.log(sink);
  return n / (Number(nowNs() - t0) / 1e9);
}

/**
 * Reads of a bridged dict against a dict of the same keys with no bridge, alternating rep by rep in
 * this process: first with the bridge idle, then while it applies remote writes.
 */
async function reads(url: string): Promise<{ rows: [string, number[], number[]][]; writes: [number[], number[]]; endToEnd: number; burst: number }> {
  const keys = Array.from({ length: KEYS }, (_, i) => `k${i}`).sort(() => Math.random() - 0.5);
  const bridged = new UltraDict<unknown>({ name: `${tag}_r` });
  const plain = new UltraDict<unknown>({ name: `${tag}_n` });
  for (const d of [bridged, plain]) d.update(keys.map((k, i) => [k, i] as [string, number]));
  const rows: [string, number[], number[]][] = [];
  const measure = async (label: string): Promise<void> => {
    const xs: number[] = [];
    const ys: number[] = [];
    for (let r = 0; r < REPS; r++) {
      xs.push(readRate(bridged, keys));
      ys.push(readRate(plain, keys));
      await tick();
    }
    rows.push([label, xs, ys]);
  };
  await measure('warm-up');
  rows.length = 0; // JIT warm-up, not reported
  await measure('none yet (the two dicts side by side)');
  const b = await bridge(`${tag}_r`, `${tag}_rs`, url, `${tag}-reads`);
  await measure('bridge running, idle');
  // a remote writer: 1 write per ms into the same stream (the bridge applies them locally)
  const w = new Proc([
    '--input-type=module',
    '-e',
    `import { RedisDict } from ${JSON.stringify(join(here, '..', 'src', 'redis', 'index.js'))};
     const d = await RedisDict.open({ name: ${JSON.stringify(`${tag}_rs`)}, redis: ${JSON.stringify(url)} });
     console.log('ready'); let i = 0;
     const t = setInterval(() => d.set('remote', ++i), 1);
     process.on('SIGTERM', async () => { clearInterval(t); await d.close(); process.exit(0); });`,
  ]);
  await w.waitFor('ready');
  await measure('bridge applying ~1 k remote writes/s');
  await w.stop();
  // local writes: the bridge forwards every one (alternating with the dict that has no bridge)
  const wx: number[] = [];
  const wy: number[] = [];
  let n = 0;
  const writeRate = (d: UltraDict<unknown>): number => {
    const t0 = nowNs();
    const end = t0 + BigInt(READ_MS) * 1_000_000n;
    let k = 0;
    do {
      for (let i = 0; i < 200; i++) d.set(keys[(n + i) % 1000]!, n + i);
      n += 200;
      k += 200;
    } while (nowNs() < end);
    return k / (Number(nowNs() - t0) / 1e9);
  };
  for (let r = 0; r < REPS; r++) {
    wx.push(writeRate(bridged));
    wy.push(writeRate(plain));
    await tick();
  }
  // end to end: a burst of local writes until a RedisDict reading the stream has the last one
  const rd = await RedisDict.open<unknown>({ name: `${tag}_rs`, redis: url });
  const BURST = quick ? 20_000 : 100_000;
  const t0 = nowNs();
  for (let i = 0; i < BURST; i++) {
    bridged.set(keys[i % 1000]!, -i);
    if (i % 1000 === 999) await tick(); // a real writer yields now and then
  }
  bridged.set('burst-end', BURST);
  while (rd.get('burst-end') !== BURST) await new Promise((r) => setTimeout(r, 1));
  const endToEnd = BURST / (Number(nowNs() - t0) / 1e9);
  await rd.close();
  await b.stop();
  bridged.close();
  plain.close();
  return { rows, writes: [wx, wy], endToEnd, burst: BURST };
}

/** Spacing of the writes of the spaced delay samples (ms). */
const SPACING_MS = 5;

async function delays(url: string): Promise<{ shm: number[]; spaced: number[]; event: number[]; rd: number[] }> {
  const [na, nb, stream] = [`${tag}_ha`, `${tag}_hb`, `${tag}_hs`];
  const a = new UltraDict<unknown>({ name: na });
  const b = new UltraDict<unknown>({ name: nb });
  const ba = await bridge(na, stream, url, `${tag}-A`);
  const bb = await bridge(nb, stream, url, `${tag}-B`);
  const rd = await RedisDict.open<unknown>({ name: stream, redis: url });
  const wait = async (key: string, v: number): Promise<number> => {
    const deadline = Date.now() + 5000;
    while (b.get(key) !== v) {
      if (Date.now() > deadline) throw new Error(`no replication of ${key} within 5 s`);
    }
    return Number(nowNs());
  };
  const shm: number[] = [];
  const viaRd: number[] = [];
  for (let i = 0; i < SAMPLES + 20; i++) {
    const t = Number(nowNs());
    a.set('p', t);
    const seen = await wait('p', t);
    if (i >= 20) shm.push((seen - t) / 1000);
    await tick();
  }
  // writes SPACING_MS apart: the bridges are idle between them (the usual case), host B spins on get
  const spaced: number[] = [];
  for (let i = 0; i < SAMPLES + 20; i++) {
    await new Promise((r) => setTimeout(r, SPACING_MS));
    const t = Number(nowNs());
    a.set('s', t);
    const seen = await wait('s', t);
    if (i >= 20) spaced.push((seen - t) / 1000);
  }
  // the same spacing, host B told by a 'change' event instead of polling
  const event: number[] = [];
  let resolveSeen: ((ns: number) => void) | null = null;
  b.on('change', (c: { key?: unknown }) => {
    if (c.key === 'e' && resolveSeen !== null) resolveSeen(Number(nowNs()));
  });
  for (let i = 0; i < SAMPLES + 20; i++) {
    await new Promise((r) => setTimeout(r, SPACING_MS));
    const seenP = new Promise<number>((r) => (resolveSeen = r));
    const t = Number(nowNs());
    a.set('e', t);
    const seen = await Promise.race([seenP, new Promise<number>((_, reject) => setTimeout(() => reject(new Error('no change event within 5 s')), 5000).unref())]);
    resolveSeen = null;
    if (i >= 20) event.push((seen - t) / 1000);
  }
  b.removeAllListeners('change');
  for (let i = 0; i < Math.min(SAMPLES, 500) + 20; i++) {
    const t = Number(nowNs());
    rd.set('q', t);
    await rd.flush();
    const seen = await wait('q', t);
    if (i >= 20) viaRd.push((seen - t) / 1000);
    await tick();
  }
  await rd.close();
  await ba.stop();
  await bb.stop();
  a.close();
  b.close();
  return { shm, spaced, event, rd: viaRd };
}

/** ops/s of `op` run in batches of `batch` for WRITE_MS, median of REPS. */
async function rate(op: (i: number) => Promise<unknown> | void, batch: number, after?: () => Promise<unknown>): Promise<number> {
  const xs: number[] = [];
  let i = 0;
  for (let r = 0; r < REPS; r++) {
    const t0 = nowNs();
    let n = 0;
    while (Number(nowNs() - t0) / 1e6 < WRITE_MS) {
      if (batch === 1) await op(i++);
      else {
        const ps: (Promise<unknown> | void)[] = [];
        for (let k = 0; k < batch; k++) ps.push(op(i++));
        await Promise.all(ps);
        if (after) await after();
      }
      n += batch;
    }
    xs.push(n / (Number(nowNs() - t0) / 1e9));
  }
  return median(xs);
}

async function writes(url: string): Promise<[string, number, number][]> {
  const name = `${tag}_w`;
  const rd = await RedisDict.open<number>({ name, redis: url, snapshotEvery: 100_000 });
  const io = new Redis(url, { enableAutoPipelining: true });
  const keys = Array.from({ length: 1000 }, (_, i) => `k${i}`);
  const out: [string, number, number][] = [];
  const pipelinedIo = await rate((i) => io.set(keys[i % 1000]!, String(i)), 1000);
  const pipelinedRd = await rate((i) => void rd.set(keys[i % 1000]!, i), 1000, () => rd.flush());
  out.push(['small writes, pipelined (flush every 1000)', pipelinedRd, pipelinedIo]);
  const awaitedIo = await rate((i) => io.set(keys[i % 1000]!, String(i)), 1);
  const awaitedRd = await rate((i) => {
    rd.set(keys[i % 1000]!, i);
    return rd.flush();
  }, 1);
  out.push(['small writes, each awaited (set + flush vs await SET)', awaitedRd, awaitedIo]);
  const incrIo = await rate(() => io.incr('counter'), 1);
  const incrRd = await rate(() => rd.increment('counter'), 1);
  out.push(['atomic increment, awaited (increment vs INCR)', incrRd, incrIo]);
  io.disconnect();
  await rd.close();
  return out;
}

export interface Contention {
  label: string;
  procs: number;
  opsPerSec: number;
  perProc: number;
  conflictsPer1000: number;
}

/**
 * Atomic increments from PROCS processes (each its own RedisDict: "hosts"), all on one key or each on its
 * own key, started together for CONTEND_MS: total increments/s and conflicts per 1,000 increments.
 */
async function contention(url: string): Promise<Contention[]> {
  const PROCS = 4;
  const CONTEND_MS = quick ? 1500 : 4000;
  const out: Contention[] = [];
  for (const [label, shared] of [
    ['one key for every process', true],
    ['a key per process', false],
  ] as const) {
    const name = `${tag}_c${shared ? 1 : 0}`;
    const startAt = Date.now() + 3000; // every process connects first, then all start at once
    const ps = Array.from(
      { length: PROCS },
      (_, i) =>
        new Proc([
          '--input-type=module',
          '-e',
          `import { RedisDict } from ${JSON.stringify(redisModule)};
           const d = await RedisDict.open({ name: ${JSON.stringify(name)}, redis: ${JSON.stringify(url)}, conflictTimeout: 60000 });
           const key = ${shared ? "'counter'" : `'counter-${i}'`};
           while (Date.now() < ${startAt}) await new Promise((r) => setTimeout(r, 1));
           let ops = 0;
           const t0 = Date.now();
           while (Date.now() - t0 < ${CONTEND_MS}) { await d.increment(key); ops++; }
           const secs = (Date.now() - t0) / 1000;
           console.log('result ' + JSON.stringify({ ops, secs, conflicts: d.stats().conflicts }));
           await d.close();`,
        ]),
    );
    for (const p of ps) await p.waitFor('result ', 60_000);
    const rs = ps.map((p) => JSON.parse(/result (.*)/.exec(p.out)![1]!) as { ops: number; secs: number; conflicts: number });
    const ops = rs.reduce((a, r) => a + r.ops, 0);
    const conflicts = rs.reduce((a, r) => a + r.conflicts, 0);
    const opsPerSec = rs.reduce((a, r) => a + r.ops / r.secs, 0);
    out.push({ label, procs: PROCS, opsPerSec, perProc: opsPerSec / PROCS, conflictsPer1000: (1000 * conflicts) / ops });
    for (const p of ps) await p.stop();
  }
  return out;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(os.tmpdir(), 'ud-rbench-'));
  let server: Server | null = null;
  try {
    server = await startRedis(dir);
    const url = `redis://127.0.0.1:${server.port}`;
    const started = Date.now();
    const load = os.loadavg()[0]!.toFixed(2);
    console.log(`replication bench (${quick ? 'quick' : 'full'}) against redis-server on ${url}`);
    if (delaysOnly) {
      const d = await delays(url);
      console.log(`[delay] host A -> host B, back to back: median ${median(d.shm).toFixed(0)} µs, p99 ${percentile(d.shm, 99).toFixed(0)} µs`);
      console.log(`[delay] host A -> host B, ${SPACING_MS} ms apart: median ${median(d.spaced).toFixed(0)} µs, p99 ${percentile(d.spaced, 99).toFixed(0)} µs`);
      console.log(`[delay] host A -> host B, ${SPACING_MS} ms apart, 'change' event: median ${median(d.event).toFixed(0)} µs, p99 ${percentile(d.event, 99).toFixed(0)} µs`);
      console.log(`[delay] RedisDict -> host B: median ${median(d.rd).toFixed(0)} µs, p99 ${percentile(d.rd, 99).toFixed(0)} µs`);
    }
    if (contentionOnly) {
      for (const x of await contention(url)) console.log(`[contention] ${x.procs} processes, ${x.label.padEnd(26)} ${fmt(x.opsPerSec)} increments/s (${fmt(x.perProc)}/s each), ${x.conflictsPer1000.toFixed(0)} conflicts per 1,000`);
    }
    if (contentionOnly || delaysOnly) return;
    const r = await reads(url);
    for (const [label, xs, ys] of r.rows) console.log(`[reads] ${label.padEnd(40)} bridged ${fmt(median(xs))}/s, no bridge ${fmt(median(ys))}/s`);
    console.log(`[local writes] bridged ${fmt(median(r.writes[0]))}/s, no bridge ${fmt(median(r.writes[1]))}/s; a burst of ${r.burst} reached Redis at ${fmt(r.endToEnd)}/s`);
    const d = await delays(url);
    console.log(`[delay] host A -> host B, back to back: median ${median(d.shm).toFixed(0)} µs, p99 ${percentile(d.shm, 99).toFixed(0)} µs`);
    console.log(`[delay] host A -> host B, ${SPACING_MS} ms apart: median ${median(d.spaced).toFixed(0)} µs, p99 ${percentile(d.spaced, 99).toFixed(0)} µs`);
    console.log(`[delay] host A -> host B, ${SPACING_MS} ms apart, 'change' event: median ${median(d.event).toFixed(0)} µs, p99 ${percentile(d.event, 99).toFixed(0)} µs`);
    console.log(`[delay] RedisDict -> host B: median ${median(d.rd).toFixed(0)} µs, p99 ${percentile(d.rd, 99).toFixed(0)} µs`);
    const w = await writes(url);
    for (const [label, a, b] of w) console.log(`[writes] ${label.padEnd(55)} RedisDict ${fmt(a)}/s  ioredis ${fmt(b)}/s  (${(a / b).toFixed(2)}×)`);
    const c = await contention(url);
    for (const x of c) console.log(`[contention] ${x.procs} processes, ${x.label.padEnd(26)} ${fmt(x.opsPerSec)} increments/s (${fmt(x.perProc)}/s each), ${x.conflictsPer1000.toFixed(0)} conflicts per 1,000`);

    const md = [
      START,
      `## Replication across hosts (Redis)`,
      '',
      `One run of \`bench/replication.ts\` (${quick ? 'quick' : 'full'}; ${REPS} repetitions per figure, medians) on this machine, load ${load} at the start, ` +
        `${((Date.now() - started) / 1000).toFixed(0)} s; redis-server on loopback (no persistence), ioredis 5. "Hosts" are two shared-memory dicts on this machine, each joined to one Redis stream by an \`ultradict bridge\` process.`,
      '',
      '**Local reads of a bridged dict** (`get`, 10,000 shuffled keys, msgpack) against a dict of the same keys with no bridge, measured alternately in one process:',
      '',
      '| bridge | bridged dict reads/s | no-bridge dict reads/s | ratio |',
      '|---|---:|---:|---:|',
      ...r.rows.map(([label, xs, ys]) => `| ${label} | ${fmt(median(xs))} | ${fmt(median(ys))} | ${(median(xs) / median(ys)).toFixed(2)}× |`),
      '',
      'While remote writes arrive, a read of the bridged dict after a change first applies it, as after a write of any other local process.',
      '',
      `**Local writes of a bridged dict** (\`set\`, 1,000 keys, alternating with the dict that has no bridge): ${fmt(median(r.writes[0]))}/s against ${fmt(median(r.writes[1]))}/s ` +
        `(${(median(r.writes[0]) / median(r.writes[1])).toFixed(2)}×). The bridge replays and forwards every write, and with redis-server it competes with the writer for the machine's ${os.cpus().length} cores. ` +
        `A burst of ${r.burst.toLocaleString('en-US')} local writes reached a RedisDict on the stream at ${fmt(r.endToEnd)} writes/s end to end.`,
      '',
      `**Replication delay** (${d.shm.length} samples per row: a write on host A, until host B sees it):`,
      '',
      '| path | writes | host B | median | p99 |',
      '|---|---|---|---:|---:|',
      `| host A shared memory → bridge A → Redis → bridge B → host B shared memory | back to back | spins on \`get\` | ${median(d.shm).toFixed(0)} µs | ${percentile(d.shm, 99).toFixed(0)} µs |`,
      `| same | ${SPACING_MS} ms apart | spins on \`get\` | ${median(d.spaced).toFixed(0)} µs | ${percentile(d.spaced, 99).toFixed(0)} µs |`,
      `| same | ${SPACING_MS} ms apart | \`on('change')\` | ${median(d.event).toFixed(0)} µs | ${percentile(d.event, 99).toFixed(0)} µs |`,
      `| RedisDict \`set\` + \`flush\` → Redis → bridge B → host B | back to back | spins on \`get\` | ${median(d.rd).toFixed(0)} µs | ${percentile(d.rd, 99).toFixed(0)} µs |`,
      '',
      'Back-to-back writes find the bridges awake; writes spaced out find them asleep, and each hop then costs a wake-up. Expect the spaced figures for occasional writes.',
      '',
      '**Redis-backed writes against plain ioredis** (1,000 keys, small integer values, one process):',
      '',
      '| workload | RedisDict | ioredis | ratio |',
      '|---|---:|---:|---:|',
      ...w.map(([label, a, b]) => `| ${label} | ${fmt(a)}/s | ${fmt(b)}/s | ${(a / b).toFixed(2)}× |`),
      '',
      'A RedisDict write is one `EVALSHA` (append to the stream, record the origin\'s sequence number for exactly-once resends, move the last-id key) ' +
        'instead of one `SET`, and every writer also receives its own entry back through its tail. An uncontended increment is one conditional append at the position the tail has reached; only a conflict costs a catch-up and a retry.',
      '',
      `**Contention** (${c[0]?.procs ?? 0} processes, each its own RedisDict, \`await increment\` in a loop for ${quick ? 1.5 : 4} s, started together): an increment is conditional on the keys it read, so keys of their own do not conflict.`,
      '',
      '| keys | increments/s, all processes | per process | conflicts per 1,000 increments |',
      '|---|---:|---:|---:|',
      ...c.map((x) => `| ${x.label} | ${fmt(x.opsPerSec)} | ${fmt(x.perProc)} | ${x.conflictsPer1000.toFixed(0)} |`),
      END,
    ].join('\n');
    const outDir = outArg ? resolve(outArg) : writeDocs ? join(root, 'docs') : join(root, '.bench-tmp');
    const file = join(outDir, 'benchmarks.md');
    spliceSection(file, md);
    console.log(`wrote the replication section of ${file}`);
  } finally {
    await server?.stop().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);

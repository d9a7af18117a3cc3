// `npm run bench [-- --quick] [-- --only=NAME[,NAME...]] [-- --out=DIR] [-- --write-docs]`
//
// Measures every contender on the same workloads in one run and writes docs/benchmarks.md and
// docs/bench-chart.svg (a full run without --only), or .bench-tmp/ (quick or partial runs, which must
// not overwrite the published figures unless --write-docs is given). Raw results: .bench-tmp/results-*.json.
import os from 'node:os';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { config, type Config } from './config.js';
import { CONTENDERS, type ContenderDef, type WorkloadId } from './contenders/registry.js';
import type { RunEnv } from './contenders/types.js';
import { machineInfo } from './lib/machine.js';
import { errorText, forkChild, type Child } from './lib/proc.js';
import { dictFiles, listShm, removeShm, shmFiles } from './lib/shm.js';
import { killAllServersSync, startMemcached, startRedis, type Server } from './lib/servers.js';
import { which } from '../test/lib/servers.js';
import { serializerCosts } from './lib/serializers.js';
import { msSince, nowNs } from './lib/timing.js';
import type { Job } from './workloads/common.js';
import type { SingleCaseResult, SingleParams } from './workloads/single.js';
import type { MultiParams, MultiPoint, MultiResult } from './workloads/multi.js';
import type { PropagationParams, PropagationResult } from './workloads/propagation.js';
import type { GrowthParams, GrowthResult } from './workloads/growth.js';
import { writeReport, type Outcome, type RunResults } from './report.js';

const HOST = fileURLToPath(new URL('./proc/host.js', import.meta.url));

interface Args {
  quick: boolean;
  only: string[];
  out: string | null;
  writeDocs: boolean;
  /** overrides the time limit of one job (seconds) */
  jobTimeout: number | null;
  /** re-writes the report from a raw results file instead of measuring */
  from: string | null;
}

function parseArgs(argv: string[]): Args {
  const a: Args = { quick: false, only: [], out: null, writeDocs: false, jobTimeout: null, from: null };
  for (const arg of argv) {
    if (arg === '--quick') a.quick = true;
    else if (arg === '--write-docs') a.writeDocs = true;
    else if (arg.startsWith('--only=')) a.only.push(...arg.slice(7).split(',').map((s) => s.trim()).filter(Boolean));
    else if (arg.startsWith('--out=')) a.out = arg.slice(6);
    else if (arg.startsWith('--job-timeout=')) a.jobTimeout = Number(arg.slice(14));
    else if (arg.startsWith('--from=')) a.from = arg.slice(7);
    else if (arg === '--help' || arg === '-h') {
      console.log('usage: npm run bench -- [--quick] [--only=CONTENDER|GROUP|w1..w5|replication|ratelimit|cache|lru[,...]] [--out=DIR] [--write-docs] [--job-timeout=SECONDS] [--from=RESULTS.json]');
      console.log(`contenders: ${CONTENDERS.map((c) => c.id).join(', ')}`);
      process.exit(0);
    } else throw new Error(`unknown argument ${arg} (try --help)`);
  }
  return a;
}

/** The repository root: two levels above out/bench/index.js, or the working directory. */
function repoRoot(): string {
  const guess = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
  return existsSync(join(guess, 'package.json')) ? guess : process.cwd();
}

const WORKLOADS: WorkloadId[] = ['w1', 'w2', 'w3', 'w4', 'w5'];

function selection(only: string[]): { contenders: ContenderDef[]; workloads: WorkloadId[] } {
  const wl = only.filter((t) => (WORKLOADS as string[]).includes(t)) as WorkloadId[];
  const names = only.filter((t) => !(WORKLOADS as string[]).includes(t));
  for (const n of names) {
    if (!CONTENDERS.some((c) => c.id === n || c.group === n)) throw new Error(`--only=${n}: no such contender or workload`);
  }
  return {
    contenders: names.length ? CONTENDERS.filter((c) => names.includes(c.id) || names.includes(c.group)) : [...CONTENDERS],
    workloads: wl.length ? wl : WORKLOADS,
  };
}

// ---------------------------------------------------------------------------------------------
// cleanup: servers, job hosts, temporary directory, shared memory of the run

const hosts = new Set<Child>();
let tmpDir: string | null = null;
let cleaned = false;

function cleanupSync(): void {
  if (cleaned) return;
  cleaned = true;
  for (const h of hosts) h.kill();
  killAllServersSync();
  if (tmpDir) rmSync(tmpDir, { recursive: true, force: true });
  for (const f of shmFiles(SHM_PREFIX)) removeShm(f);
}

const SHM_PREFIX = `udbench-${process.pid}-`;
let jobSeq = 0;

interface UltraDictStatic {
  unlink(name: string): unknown;
}
let ultraDict: UltraDictStatic | null = null;

async function loadUltraDict(): Promise<string | null> {
  const url = new URL('../src/index.js', import.meta.url);
  if (!existsSync(fileURLToPath(url))) return 'src/index.ts is not compiled (no out/src/index.js)';
  try {
    const mod = (await import(url.href)) as { UltraDict?: UltraDictStatic };
    if (typeof mod.UltraDict !== 'function') return 'src/index.ts does not export UltraDict';
    ultraDict = mod.UltraDict;
    return null;
  } catch (err) {
    return `src/index.js does not load: ${errorText(err)}`;
  }
}

/**
 * Everything a job created in /dev/shm must be gone after it. Leftovers of a job that succeeded (every
 * dict was closed normally) are recorded as leaks; after a failed job they are expected (its processes
 * were killed). Either way they are removed.
 */
function shmAfterJob(name: string, succeeded: boolean, leaks: string[]): void {
  const left = shmFiles(name);
  if (left.length === 0) return;
  if (succeeded) leaks.push(...left);
  if (ultraDict) {
    const candidates = new Set<string>([name, ...Array.from({ length: 10 }, (_, i) => `${name}c${i}`)]);
    for (const c of candidates) {
      if (dictFiles(c).length > 0) {
        try {
          ultraDict.unlink(c);
        } catch {
          /* removed below */
        }
      }
    }
  }
  for (const f of shmFiles(name)) removeShm(f);
}

async function runJob<T>(job: Job, cfg: Config, leaks: string[]): Promise<Outcome<T>> {
  const host = forkChild(HOST, { defaultTimeoutMs: cfg.jobTimeoutMs, detached: true });
  hosts.add(host);
  const t0 = nowNs();
  let ok = false;
  try {
    const value = await host.call<T>('run', job, cfg.jobTimeoutMs);
    ok = true;
    return { ok: true, value, seconds: msSince(t0) / 1000 };
  } catch (err) {
    return { ok: false, error: errorText(err), seconds: msSince(t0) / 1000 };
  } finally {
    host.kill(); // the whole process group: host and any worker left behind
    await Promise.race([host.exited, new Promise((r) => setTimeout(r, 5000))]);
    hosts.delete(host);
    shmAfterJob(job.name, ok, leaks);
  }
}

const fmt = (x: number): string =>
  !Number.isFinite(x) ? '-' : x >= 1e6 ? `${(x / 1e6).toFixed(2)} M` : x >= 1e3 ? `${(x / 1e3).toFixed(1)} k` : x.toFixed(0);

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  if (args.from) {
    // report only: re-render the markdown and the chart from a raw results file
    const results = JSON.parse(readFileSync(resolve(args.from), 'utf8')) as RunResults;
    const toDocs = (!results.quick && !results.partial) || args.writeDocs;
    const outDir = args.out ? resolve(args.out) : join(repoRoot(), toDocs ? 'docs' : '.bench-tmp');
    mkdirSync(outDir, { recursive: true });
    console.log(`wrote ${writeReport(results, outDir).join(', ')}`);
    return;
  }
  const cfg = config(args.quick);
  if (args.jobTimeout !== null && args.jobTimeout > 0) cfg.jobTimeoutMs = args.jobTimeout * 1000;
  const root = repoRoot();
  const started = nowNs();
  const shmBefore = new Set(listShm());
  tmpDir = mkdtempSync(join(os.tmpdir(), 'ultradict-bench-'));
  process.on('exit', cleanupSync);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      console.error(`\n${sig}: stopping servers and children`);
      cleanupSync();
      process.exit(130);
    });
  }
  // a run must never hang, whatever happens
  const watchdog = setTimeout(() => {
    console.error('bench: global time limit reached, aborting');
    cleanupSync();
    process.exit(124);
  }, args.quick ? 8 * 60_000 : 45 * 60_000); // a quick run with every section takes about 4 min on a loaded 2-core machine
  watchdog.unref();

  // the replication, rate-limit, cache and LRU-quality sections (bench/replication.ts, bench/rate-limit.ts,
  // bench/cache.ts, bench/lru-quality.ts) run after the others, or alone with --only=replication,
  // --only=ratelimit, --only=cache and/or --only=lru
  const withReplication = args.only.length === 0 || args.only.includes('replication');
  const withRateLimit = args.only.length === 0 || args.only.includes('ratelimit');
  const withCache = args.only.length === 0 || args.only.includes('cache');
  const withLru = args.only.length === 0 || args.only.includes('lru');
  const sectionsAlone = [withReplication, withRateLimit, withCache, withLru].some(Boolean);
  args.only = args.only.filter((o) => !['replication', 'ratelimit', 'cache', 'lru'].includes(o));
  if (sectionsAlone && args.only.length === 0 && process.argv.some((a) => a.startsWith('--only='))) {
    const dir = args.out ? resolve(args.out) : args.writeDocs ? join(root, 'docs') : join(root, '.bench-tmp');
    if (withReplication) await runSection('replication', args.quick, dir);
    if (withRateLimit) await runSection('rate-limit', args.quick, dir);
    if (withCache) await runSection('cache', args.quick, dir);
    if (withLru) await runSection('lru-quality', args.quick, dir);
    return;
  }
  const sel = selection(args.only);
  const machine = machineInfo(root);
  console.log(`ultradict bench (${args.quick ? 'quick' : 'full'}) on ${machine.cpuModel}, ${machine.cores} cores, Node ${machine.node}`);

  const ultradictProblem = sel.contenders.some((c) => c.needs === 'ultradict') ? await loadUltraDict() : 'not selected';
  if (ultradictProblem && ultradictProblem !== 'not selected') console.log(`ultradict unavailable: ${ultradictProblem}`);

  // servers
  const servers: Server[] = [];
  const serverStatus: Record<'redis' | 'memcached', string> = { redis: 'not needed', memcached: 'not needed' };
  let redisPort: number | null = null;
  let memcachedPort: number | null = null;
  try {
    if (sel.contenders.some((c) => c.needs === 'redis')) {
      if (!which('redis-server')) serverStatus.redis = 'redis-server is not installed: the Redis rows were skipped';
      else {
        try {
          const s = await startRedis(tmpDir);
          servers.push(s);
          redisPort = s.port;
          serverStatus.redis = `redis-server ${machine.versions['redis-server']} started by the harness on 127.0.0.1:${s.port} (--save '' --appendonly no)`;
        } catch (err) {
          serverStatus.redis = `redis-server failed to start: ${errorText(err)}`;
        }
      }
    }
    if (sel.contenders.some((c) => c.needs === 'memcached')) {
      if (!which('memcached')) serverStatus.memcached = 'memcached is not installed: the memcached rows were skipped';
      else {
        try {
          const s = await startMemcached();
          servers.push(s);
          memcachedPort = s.port;
          serverStatus.memcached = `memcached ${machine.versions['memcached']} started by the harness on 127.0.0.1:${s.port} (-U 0 -m 4096)`;
        } catch (err) {
          serverStatus.memcached = `memcached failed to start: ${errorText(err)}`;
        }
      }
    }
    const env: RunEnv = { redisPort, memcachedPort, tmpDir };

    const skipped: Record<string, string> = {};
    const runnable = sel.contenders.filter((c) => {
      let why: string | null = null;
      if (c.needs === 'ultradict' && ultradictProblem) why = ultradictProblem;
      if (c.needs === 'redis' && redisPort === null) why = serverStatus.redis;
      if (c.needs === 'memcached' && memcachedPort === null) why = serverStatus.memcached;
      if (why) skipped[c.id] = why;
      return !why;
    });

    const results: RunResults = {
      quick: args.quick,
      partial: args.only.length > 0,
      config: cfg,
      machine,
      servers: serverStatus,
      contenders: runnable.map((c) => c.id),
      skipped,
      serializerCosts: serializerCosts(args.quick),
      w1: {},
      w2: {},
      w3readers: {},
      w3writers: {},
      w4: {},
      w5: {},
      leaks: [],
      shmLeftover: [],
      seconds: 0,
    };

    const job = <P>(workload: WorkloadId, c: ContenderDef, params: P): Job<P> => ({
      workload,
      contender: c.id,
      name: `${SHM_PREFIX}${String(++jobSeq).padStart(4, '0')}`,
      env,
      quick: args.quick,
      params,
    });
    const log = (w: string, c: ContenderDef, o: Outcome<unknown>, text: string): void => {
      console.log(`[${w}] ${c.id.padEnd(18)} ${o.ok ? text : `ERROR ${o.error}`} (${o.seconds.toFixed(1)} s)`);
    };
    const forWorkload = (w: WorkloadId): ContenderDef[] =>
      sel.workloads.includes(w)
        ? runnable.filter((c) => c.workloads.includes(w) && (w === 'w1' || !cfg.reducedSet || cfg.reducedSet.includes(c.id)))
        : [];

    // workloads 1 and 2 run in the same job (one fresh process per contender, workload 1 first, a
    // fresh store for every case)
    const w1set = new Set(forWorkload('w1').map((c) => c.id));
    const w2set = new Set(forWorkload('w2').map((c) => c.id));
    for (const c of runnable.filter((x) => w1set.has(x.id) || w2set.has(x.id))) {
      const cases: SingleParams['cases'] = [];
      const tail = { warmupMs: cfg.warmupMs, reps: cfg.reps };
      if (w1set.has(c.id)) cases.push({ kind: 'int', bytes: 0, keys: cfg.w1Keys, targetMs: cfg.w1TargetMs, ...tail });
      if (w2set.has(c.id)) for (const x of cfg.w2Cases) cases.push({ ...x, targetMs: cfg.w2TargetMs, ...tail });
      const o = await runJob<SingleCaseResult[]>(job('w1', c, { cases } satisfies SingleParams), cfg, results.leaks);
      if (w1set.has(c.id)) {
        const r: Outcome<SingleCaseResult> = o.ok ? { ok: true, value: o.value[0]!, seconds: o.seconds } : o;
        results.w1[c.id] = r;
        log('w1', c, r, r.ok ? `reads ${fmt(r.value.reads?.median ?? NaN)}/s  writes ${fmt(r.value.writes.median)}/s` : '');
      }
      if (w2set.has(c.id)) {
        const r: Outcome<SingleCaseResult[]> = o.ok ? { ok: true, value: o.value.slice(w1set.has(c.id) ? 1 : 0), seconds: o.seconds } : o;
        results.w2[c.id] = r;
        log('w2', c, r, r.ok ? r.value.map((v) => `${v.kind} ${v.bytes} B: r ${fmt(v.reads?.median ?? NaN)}/s w ${fmt(v.writes.median)}/s`).join(', ') : '');
      }
    }
    for (const c of forWorkload('w3')) {
      const modes: MultiParams['modes'] = ['readers', 'writers'];
      const p: MultiParams = { modes, ns: cfg.w3Ns, durationMs: cfg.w3DurationMs, reps: cfg.reps, keys: cfg.w1Keys, startDelayMs: cfg.quick ? 10 : 40 };
      const o = await runJob<MultiResult>(job('w3', c, p), cfg, results.leaks);
      for (const mode of modes) {
        const r: Outcome<MultiPoint[]> = o.ok
          ? o.value[mode] ? { ok: true, value: o.value[mode]!, seconds: o.seconds } : { ok: false, error: 'not measured', seconds: o.seconds }
          : o;
        (mode === 'readers' ? results.w3readers : results.w3writers)[c.id] = r;
        log(`w3 ${mode}`, c, r, r.ok ? r.value.map((x) => `N=${x.n}: ${fmt(x.main.median)}/s${x.exact === false ? ' INEXACT' : ''}`).join(', ') : '');
      }
    }
    for (const c of forWorkload('w4')) {
      const p: PropagationParams = { samplesPerRep: cfg.w4SamplesPerRep, reps: cfg.reps };
      const o = await runJob<PropagationResult>(job('w4', c, p), cfg, results.leaks);
      results.w4[c.id] = o;
      log('w4', c, o, o.ok ? `median ${o.value.medianUs.toFixed(1)} µs, p99 ${o.value.p99Us.toFixed(1)} µs` : '');
    }
    for (const c of forWorkload('w5')) {
      const bySize: Record<string, Outcome<GrowthResult>> = {};
      results.w5[c.id] = bySize;
      const largest = Math.max(...cfg.w5Sizes);
      for (const size of cfg.w5Sizes) {
        const attach = size === largest && c.id !== 'map' && c.id !== 'manager';
        const p: GrowthParams = { size, sample: cfg.w5Sample, targetMs: cfg.w5TargetMs, warmupMs: cfg.warmupMs / 4, reps: cfg.reps, attach };
        const o = await runJob<GrowthResult>(job('w5', c, p), cfg, results.leaks);
        bySize[String(size)] = o;
        log(`w5 ${size}`, c, o, o.ok ? `writes ${fmt(o.value.writes.median)}/s reads ${fmt(o.value.reads?.median ?? NaN)}/s${o.value.attach ? ` attach ${o.value.attach.openMs.toFixed(0)} ms` : ''}` : '');
      }
    }

    results.seconds = msSince(started) / 1000;
    results.loadAvgEnd = os.loadavg().map((x) => Math.round(x * 100) / 100);
    // /dev/shm must be as before the run
    results.shmLeftover = listShm().filter((f) => !shmBefore.has(f) && f.startsWith(SHM_PREFIX));
    for (const f of results.shmLeftover) removeShm(f);

    const toDocs = (!args.quick && !results.partial) || args.writeDocs;
    const outDir = args.out ? resolve(args.out) : toDocs ? join(root, 'docs') : join(root, '.bench-tmp');
    mkdirSync(outDir, { recursive: true });
    mkdirSync(join(root, '.bench-tmp'), { recursive: true });
    const raw = join('.bench-tmp', `results-${args.quick ? 'quick' : 'full'}${results.partial ? '-partial' : ''}.json`);
    writeFileSync(join(root, raw), JSON.stringify(results, null, 2));
    const files = writeReport(results, outDir);
    if (withReplication) await runSection('replication', args.quick, outDir);
    if (withRateLimit) await runSection('rate-limit', args.quick, outDir);
    if (withCache) await runSection('cache', args.quick, outDir);
    if (withLru) await runSection('lru-quality', args.quick, outDir);
    console.log(`\nwrote ${files.join(', ')} (raw results: ${raw}) in ${results.seconds.toFixed(0)} s`);
    if (results.leaks.length) console.log(`warning: ${results.leaks.length} shared-memory segment(s) outlived their dict (removed): ${results.leaks.slice(0, 5).join(', ')}`);
  } finally {
    for (const s of servers) await s.stop().catch(() => undefined);
    cleanupSync();
    clearTimeout(watchdog);
  }
}

/**
 * Runs bench/replication.ts, bench/rate-limit.ts, bench/cache.ts or bench/lru-quality.ts (its own process:
 * its own redis-server, bridges, workers).
 */
async function runSection(section: 'replication' | 'rate-limit' | 'cache' | 'lru-quality', quick: boolean, outDir: string): Promise<void> {
  const { spawn } = await import('node:child_process');
  const script = join(dirname(fileURLToPath(import.meta.url)), `${section}.js`);
  const p = spawn(process.execPath, [script, ...(quick ? ['--quick'] : []), `--out=${outDir}`], { stdio: 'inherit' });
  const code = await new Promise<number | null>((r) => p.on('exit', r));
  if (code !== 0) console.log(`warning: the ${section} benchmark failed (exit ${code}); its section of benchmarks.md was not updated`);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    cleanupSync();
    process.exit(1);
  },
);


// Command-line entry of the full reliability suites: `node out/test/reliability/run.js <suite>`; prints RESULT lines.

import { envInt, printResult, type SuiteResult } from './lib.js';
import { runKillMatrix } from './killmatrix.js';
import { PROFILES } from './writer-ops.js';
import { runModel } from './model.js';
import { runFuzz } from './fuzz-run.js';
import { leakCycles } from './limits.js';
import { gcScenario } from './gc.js';
import { expirySoak } from './expiry-soak.js';
import { runReplicationChaos } from './replication.js';
import { inPrivateShm, privateShmUnavailable } from './lib.js';
import { fixture } from '../lib/helpers.js';
import { spawn } from 'node:child_process';

const suites: Record<string, () => Promise<SuiteResult>> = {
  async kill() {
    const t = Date.now();
    const seedBase = envInt('ULTRADICT_SEED', 1000);
    const rounds = envInt('ULTRADICT_KILL_ROUNDS', 40);
    console.log(`kill matrix: ${rounds} rounds from seed ${seedBase} (reproduce a round: ULTRADICT_SEED=<its seed> ULTRADICT_KILL_ROUNDS=1)`);
    const r = await runKillMatrix({
      rounds,
      seedBase,
      kills: envInt('ULTRADICT_KILLS', 8),
      writers: envInt('ULTRADICT_WRITERS', 3),
      freshProcessEvery: 4,
      profiles: PROFILES,
      log: (s) => console.log(s),
    });
    const { failures, trials, lostWrites, ...details } = r;
    return { suite: 'kill', trials, inputs: r.ackedWrites, failures: failures.length, lostWrites, seconds: (Date.now() - t) / 1000, details, problems: failures };
  },
  async model() {
    const t = Date.now();
    const seedBase = envInt('ULTRADICT_SEED', 1);
    const seeds = envInt('ULTRADICT_MODEL_SEEDS', 20);
    const processes = envInt('ULTRADICT_MODEL_PROCESSES', 4);
    const ops = envInt('ULTRADICT_MODEL_OPS', 1500);
    console.log(`model test: ${seeds} seeds from ${seedBase}, ${processes} processes x ${ops} ops`);
    const runs = await runModel({ seeds, seedBase, processes, ops, log: (s) => console.log(s) });
    const problems = runs.flatMap((r) => r.problems);
    const sum = (f: (r: (typeof runs)[number]) => number): number => runs.reduce((a, r) => a + f(r), 0);
    return {
      suite: 'model',
      trials: runs.length,
      inputs: sum((r) => r.processes * r.ops),
      failures: problems.length,
      lostWrites: 0,
      seconds: (Date.now() - t) / 1000,
      details: { committed: sum((r) => r.committed), failedAsExpected: sum((r) => r.failed), rolledBack: sum((r) => r.aborted), dumps: sum((r) => r.dumps), errors: runs.reduce((a: Record<string, number>, r) => { for (const [k, v] of Object.entries(r.errors)) a[k] = (a[k] ?? 0) + v; return a; }, {}), seeds: runs.map((r) => `${r.seed}:${r.profile}`) },
      problems,
    };
  },
  async fuzz() {
    const seed = envInt('ULTRADICT_SEED', 1);
    const scale = envInt('ULTRADICT_FUZZ_SCALE', 1);
    const counts = {
      decoder: 400_000 * scale,
      stream: 200_000 * scale,
      dump: 200_000 * scale,
      control: 100_000 * scale,
      attach: 100_000 * scale,
      addon: 100_000 * scale,
      process: Math.ceil(200 * scale),
    };
    console.log(`fuzz: seed ${seed}, ${JSON.stringify(counts)}`);
    return runFuzz(seed, counts, (s) => console.log(s));
  },
  async limits() {
    const t = Date.now();
    const trials = envInt('ULTRADICT_ENOSPC_TRIALS', 200);
    const cycles = envInt('ULTRADICT_LEAK_CYCLES', 10_000);
    const problems: string[] = [];
    const details: Record<string, unknown> = {};
    const reason = privateShmUnavailable();
    let checks = 0;
    let enospcTrials = 0;
    if (reason !== null) {
      console.log(`full /dev/shm: SKIPPED (${reason})`);
      details.enospc = `skipped: ${reason}`;
    } else {
      const [cmd, argv] = inPrivateShm('4m', fixture('rel-enospc'), [JSON.stringify({ seedBase: envInt('ULTRADICT_SEED', 1), trials })]);
      const p = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      p.stdout.on('data', (b: Buffer) => (out += b));
      const code = await new Promise((r) => p.on('exit', (c, s) => r(c ?? s)));
      if (code !== 0) problems.push(`the ENOSPC driver exited with ${code}`);
      const line = out.split('\n').find((l) => l.startsWith('ENOSPC '));
      const res = line ? (JSON.parse(line.slice(7)) as { label: string; writesBeforeFull: number; checks: number; problems: string[] }[]) : [];
      enospcTrials = res.length;
      checks = res.reduce((a, x) => a + x.checks, 0);
      problems.push(...res.flatMap((x) => x.problems));
      details.enospc = { trials: res.length, checks, writesBeforeFull: res.reduce((a, x) => a + x.writesBeforeFull, 0) };
      console.log(`full /dev/shm: ${res.length} trials, ${checks} checks, ${res.reduce((a, x) => a + x.problems.length, 0)} problems`);
    }
    const lk = leakCycles(cycles);
    details.leaks = lk;
    console.log(`leaks: ${cycles} cycles (${lk.ops} opens/creates/failed opens + closes): ${JSON.stringify(lk.before)} -> ${JSON.stringify(lk.after)}`);
    if (lk.after.fds !== lk.before.fds) problems.push(`file descriptors: ${lk.before.fds} -> ${lk.after.fds}`);
    if (lk.after.shmMaps !== lk.before.shmMaps) problems.push(`/dev/shm mappings: ${lk.before.shmMaps} -> ${lk.after.shmMaps}`);
    if (lk.after.live !== lk.before.live) problems.push(`live mappings: ${lk.before.live} -> ${lk.after.live}`);
    return { suite: 'limits', trials: enospcTrials + 1, inputs: lk.ops + checks, failures: problems.length, lostWrites: 0, seconds: (Date.now() - t) / 1000, details, problems };
  },
  async gc() {
    const t = Date.now();
    const rounds = envInt('ULTRADICT_GC_ROUNDS', 5);
    const dicts = envInt('ULTRADICT_GC_DICTS', 100);
    const problems: string[] = [];
    let dead = 0;
    let live = 0;
    for (let i = 0; i < rounds; i++) {
      const r = await gcScenario({ killedDicts: dicts, processes: 5, gcCalls: 50 });
      dead += r.dead;
      live += r.live;
      problems.push(...r.problems);
      console.log(`gc round ${i + 1}/${rounds}: ${r.dead} dead dicts removed ${r.removed}, ${r.live} live kept, ${r.problems.length} problems`);
    }
    return { suite: 'gc', trials: rounds, inputs: dead + live, failures: problems.length, lostWrites: 0, seconds: (Date.now() - t) / 1000, details: { deadDicts: dead, liveDicts: live, gcCallsPerRound: 50 }, problems };
  },
  async expiry() {
    const seconds = envInt('ULTRADICT_EXPIRY_SOAK_S', 300);
    const perTick = envInt('ULTRADICT_EXPIRY_PER_TICK', 300);
    console.log(`expiry soak: ${seconds} s, 2 writers x ${perTick * 10} fresh keys/s with a 1 s ttl`);
    return expirySoak({ seconds, perTick, ttl: 1000, log: (s) => console.log(s) });
  },
  async replication() {
    const t = Date.now();
    const seedBase = envInt('ULTRADICT_SEED', 1);
    const seeds = envInt('ULTRADICT_REPLICATION_SEEDS', 10);
    const ops = envInt('ULTRADICT_REPLICATION_OPS', 100_000);
    console.log(`replication chaos: ${seeds} seeds from ${seedBase}, 3 hosts + 2 RedisDict writers, 12 faults each (reproduce: ULTRADICT_SEED=<seed> ULTRADICT_REPLICATION_SEEDS=1)`);
    const problems: string[] = [];
    const faults = { cuts: 0, bridgeKills: 0, redisRestarts: 0 };
    let writes = 0;
    for (let i = 0; i < seeds; i++) {
      const r = await runReplicationChaos({ seed: seedBase + i, hosts: 3, rdWriters: 2, ops, faults: envInt('ULTRADICT_REPLICATION_FAULTS', 12), paceMs: envInt('ULTRADICT_REPLICATION_PACE_MS', 10), log: (s) => console.log(s) });
      problems.push(...r.problems);
      writes += r.writes;
      for (const k of Object.keys(faults) as (keyof typeof faults)[]) faults[k] += r.faults[k];
    }
    return { suite: 'replication', trials: seeds, inputs: writes, failures: problems.length, lostWrites: 0, seconds: (Date.now() - t) / 1000, details: faults, problems };
  },
};

const which = process.argv.slice(2);
if (which.length === 0 || which.some((w) => !(w in suites))) {
  console.error(`usage: run.js <${Object.keys(suites).join('|')}>...`);
  process.exit(2);
}
let bad = 0;
for (const w of which) {
  const r = await suites[w]!();
  printResult(r);
  if (r.failures > 0 || r.lostWrites > 0) bad++;
}
process.exit(bad > 0 ? 1 : 0);

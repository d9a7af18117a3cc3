// Runs the fuzz driver (test/fixtures/rel-fuzz.ts) as a child, in a private tmpfs on /dev/shm when possible, and sums its targets.

import { spawn } from 'node:child_process';
import { fixture } from '../lib/helpers.js';
import type { FuzzStats } from './fuzz.js';
import { inPrivateShm, privateShmUnavailable, type SuiteResult } from './lib.js';

export async function runFuzz(
  seed: number,
  counts: Record<string, number>,
  log?: (s: string) => void,
  timeoutMs = 30 * 60_000,
): Promise<SuiteResult & { targets: FuzzStats[]; privateShm: string | null }> {
  const t = Date.now();
  const reason = privateShmUnavailable();
  // writes after a corrupt attach may allocate what a corrupt header asks for: only inside a small private tmpfs
  const args = [JSON.stringify({ seed, counts, writes: reason === null })];
  const [cmd, argv] = reason === null ? inPrivateShm('1g', fixture('rel-fuzz'), args) : [process.execPath, [fixture('rel-fuzz'), ...args]];
  if (reason !== null) log?.(`(no private /dev/shm: ${reason}; attaches are fuzzed without writes)`);
  const child = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (b: Buffer) => {
    out += b;
    for (const line of b.toString().split('\n')) if (line.startsWith('FUZZ ')) log?.(line.slice(0, 400));
  });
  child.stderr.on('data', (b: Buffer) => (err += b));
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, timeoutMs);
  const { code, signal } = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (c, s) => resolve({ code: c, signal: s })),
  );
  clearTimeout(timer);
  if (timedOut) err = `no result within ${timeoutMs} ms (a hang); ${err}`;
  const targets = out
    .split('\n')
    .filter((l) => l.startsWith('FUZZ '))
    .map((l) => JSON.parse(l.slice(5)) as FuzzStats);
  const problems = targets.flatMap((x) => x.findings);
  if (signal !== null || code !== 0) problems.push(`the fuzz driver exited with ${signal ?? code} (seed ${seed}): ${err.slice(0, 2000)}`);
  const inputs = targets.reduce((a, x) => a + x.inputs, 0);
  return {
    suite: 'fuzz',
    trials: targets.length,
    inputs,
    failures: problems.length,
    lostWrites: 0,
    seconds: (Date.now() - t) / 1000,
    details: Object.fromEntries(targets.map((x) => [x.target, { inputs: x.inputs, ok: x.ok, typed: x.typed, slowestMs: Math.round(x.slowestMs), seconds: x.seconds }])),
    problems,
    targets,
    privateShm: reason,
  };
}

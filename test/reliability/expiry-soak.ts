// Expiry soak: minutes of fresh keys with a 1 s ttl from 2 writer processes; the key count, the shared
// memory and every process's RSS must stay flat (expired keys are reclaimed everywhere).

import { UltraDict } from '../../src/index.js';
import { Child, uniqueName } from '../lib/helpers.js';
import type { SuiteResult } from './lib.js';

interface Sample {
  s: number;
  keys: number;
  shared: number;
  rss: number;
  writerRss: number;
}

export async function expirySoak(o: { seconds: number; perTick: number; ttl: number; log: (s: string) => void }): Promise<SuiteResult> {
  const t0 = Date.now();
  const name = uniqueName('soak');
  using d = new UltraDict<unknown>({ name, bufferSize: 256 * 1024 });
  const writers = [0, 1].map(() => new Child('ttl-child', { name, op: 'soak', perTick: o.perTick, ms: o.seconds * 1000, ttl: o.ttl, report: 50 }, (o.seconds + 120) * 1000));
  const samples: Sample[] = [];
  const lastRss = (w: Child): number => (w.messages.filter((m) => m.type === 'rss').at(-1)?.rss as number | undefined) ?? 0;
  const timer = setInterval(() => {
    const st = d.stats();
    const s: Sample = {
      s: Math.round((Date.now() - t0) / 1000),
      keys: st.keys,
      shared: st.sharedMemoryBytes,
      rss: process.memoryUsage().rss,
      writerRss: Math.max(...writers.map(lastRss)),
    };
    samples.push(s);
    if (samples.length % 6 === 0) o.log(`${s.s}s: ${s.keys} keys, shared ${mib(s.shared)}, reader RSS ${mib(s.rss)}, writer RSS ${mib(s.writerRss)}, expired ${st.expired}, dumps ${st.dumps}`);
  }, 5000);
  const done = await Promise.all(writers.map((w) => w.message('done', (o.seconds + 60) * 1000)));
  clearInterval(timer);
  await Promise.all(writers.map((w) => w.done()));
  const writes = done.reduce((n, m) => n + (m.writes as number), 0);
  // flat: the last third of the run may not exceed the second third (after warm-up) by more than noise
  const third = (i: number): Sample[] => samples.slice(Math.floor((samples.length * i) / 3), Math.floor((samples.length * (i + 1)) / 3));
  const max = (xs: Sample[], f: (s: Sample) => number): number => Math.max(...xs.map(f));
  const problems: string[] = [];
  const details: Record<string, unknown> = { writes, samples: samples.length };
  for (const [what, f, slack] of [
    ['keys', (s: Sample) => s.keys, 1.5],
    ['shared memory', (s: Sample) => s.shared, 1.5],
    ['reader RSS', (s: Sample) => s.rss, 1.25],
    ['writer RSS', (s: Sample) => s.writerRss, 1.25],
  ] as const) {
    const mid = max(third(1), f);
    const end = max(third(2), f);
    details[what] = { secondThirdMax: mid, lastThirdMax: end };
    if (end > mid * slack + (what === 'keys' ? 0 : 8 << 20)) problems.push(`${what} grew: ${mid} -> ${end}`);
  }
  return { suite: 'expiry', trials: 1, inputs: writes, failures: problems.length, lostWrites: 0, seconds: (Date.now() - t0) / 1000, details, problems };
}

function mib(n: number): string {
  return `${(n / 1048576).toFixed(1)} MiB`;
}

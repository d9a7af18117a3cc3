// Workload 3: several processes at once, aggregate throughput for N = 1, 2, 4, 8 (quick: 1, 2).
//   readers: 1 writer (small int values over 10,000 keys) + N readers of the same keys;
//   writers: N processes incrementing one counter with the store's atomic read-modify-write
//            (ultradict: withLock(get + 1, set)); the final total must equal the increments done.
import { keys as makeKeys, shuffle, valuePool } from '../lib/data.js';
import { median, nowNs } from '../lib/timing.js';
import type { Child } from '../lib/proc.js';
import {
  currentStore, incrementRunner, loadAll, openStore, readRunner, runFor, stepOf, writeRunner,
  closeStore, type HostContext, type OpenArgs,
} from './common.js';

export interface MultiParams {
  mode: 'readers' | 'writers';
  ns: number[];
  durationMs: number;
  reps: number;
  keys: number;
}

export interface Rate {
  median: number;
  min: number;
  max: number;
  reps: number[];
}
export interface MultiPoint {
  n: number;
  processes: number;
  /** readers: aggregate reads/s of the N readers; writers: aggregate increments/s */
  main: Rate;
  /** readers mode: writes/s of the single writer */
  writer?: Rate;
  /** writers mode: final counter equal to the sum of increments after every repetition */
  exact?: boolean;
  detail?: string;
}

const COUNTER = 'n';
const pool = valuePool('int', 0, 1021);

let runners: { read?: ReturnType<typeof readRunner>; write?: ReturnType<typeof writeRunner>; incr?: ReturnType<typeof incrementRunner> } = {};

export const workerFns = {
  multiOpen: async (args: { open: OpenArgs; keys: number }) => {
    const store = await openStore(args.open);
    if (args.open.create) {
      await loadAll(store, args.keys, pool);
      await store.load([[COUNTER, 0]]);
    }
    store.sync?.();
    const order = shuffle(makeKeys(args.keys), process.pid);
    runners = {
      read: readRunner(store, order),
      write: writeRunner(store, order, pool),
      incr: incrementRunner(store, COUNTER),
    };
    return process.pid;
  },
  multiRun: async (args: { role: 'read' | 'write' | 'incr'; startAt: string; durationMs: number }) => {
    const store = currentStore();
    const runner = runners[args.role];
    if (!runner) throw new Error(`no ${args.role} runner`);
    store.sync?.();
    return runFor(runner, stepOf(store), BigInt(args.startAt), args.durationMs);
  },
  readCounter: async () => {
    const store = currentStore();
    store.sync?.();
    return Number(await store.get(COUNTER));
  },
  multiClose: () => closeStore(),
};

function rate(values: number[]): Rate {
  return { median: median(values), min: Math.min(...values), max: Math.max(...values), reps: values };
}

export async function host(ctx: HostContext): Promise<MultiPoint[]> {
  const { job } = ctx;
  const p = job.params as MultiParams;
  const workers: Child[] = [];
  const need = (count: number): Promise<void>[] => {
    const started: Promise<void>[] = [];
    while (workers.length < count) {
      const w = ctx.fork();
      const create = workers.length === 0;
      workers.push(w);
      const open: OpenArgs = { contender: job.contender, name: job.name, create, env: job.env };
      started.push(w.call('multiOpen', { open, keys: p.keys }).then(() => undefined));
      if (create) break; // the creator must be ready before the others attach
    }
    return started;
  };
  const out: MultiPoint[] = [];
  try {
    let total = 0;
    for (const n of p.ns) {
      const processes = p.mode === 'readers' ? n + 1 : n;
      while (workers.length < processes) await Promise.all(need(processes));
      const mains: number[] = [];
      const writes: number[] = [];
      let exact = true;
      let detail = '';
      for (let r = 0; r < p.reps; r++) {
        const startAt = (nowNs() + 50_000_000n).toString();
        const calls = workers.slice(0, processes).map((w, i) => {
          const role = p.mode === 'writers' ? 'incr' : i === 0 ? 'write' : 'read';
          return w.call<{ ops: number; ms: number }>('multiRun', { role, startAt, durationMs: p.durationMs }, p.durationMs + 60_000);
        });
        const res = await Promise.all(calls);
        const wall = Math.max(...res.map((x) => x.ms)) / 1000;
        if (p.mode === 'readers') {
          writes.push(res[0]!.ops / (res[0]!.ms / 1000));
          mains.push(res.slice(1).reduce((a, x) => a + x.ops, 0) / wall);
        } else {
          const done = res.reduce((a, x) => a + x.ops, 0);
          total += done;
          mains.push(done / wall);
          const seen = await workers[0]!.call<number>('readCounter');
          if (seen !== total) {
            exact = false;
            detail = `counter ${seen}, expected ${total} (${total - seen} lost)`;
            total = seen;
          }
        }
      }
      const point: MultiPoint = { n, processes, main: rate(mains) };
      if (p.mode === 'readers') point.writer = rate(writes);
      else point.exact = exact;
      if (detail) point.detail = detail;
      out.push(point);
    }
  } finally {
    // attached processes first, the creator last
    for (const w of workers.slice(1)) await w.call('multiClose').catch(() => undefined);
    if (workers[0]) await workers[0].call('multiClose').catch(() => undefined);
    for (const w of workers) w.kill();
  }
  return out;
}

// Workload 3: several processes at once, aggregate throughput for N = 1, 2, 4, 8 (quick: 1, 2).
//   (both in the same processes, readers first)
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
  /** both run in the same processes, readers first */
  modes: ('readers' | 'writers')[];
  ns: number[];
  durationMs: number;
  reps: number;
  keys: number;
  /** every repetition starts this long after the host sends it, at the same instant in all processes */
  startDelayMs: number;
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
    return runFor(runner, stepOf(store), BigInt(args.startAt), args.durationMs, store.sync?.bind(store));
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

export type MultiResult = Partial<Record<'readers' | 'writers', MultiPoint[]>>;

export async function host(ctx: HostContext): Promise<MultiResult> {
  const { job } = ctx;
  const p = job.params as MultiParams;
  const workers: Child[] = [];
  /** Forks workers up to `count`: the creator alone first (it loads the keys), then the others at once. */
  const ensure = async (count: number): Promise<void> => {
    const open = (create: boolean): OpenArgs => ({ contender: job.contender, name: job.name, create, env: job.env });
    if (workers.length === 0) {
      const w = ctx.fork();
      workers.push(w);
      await w.call('multiOpen', { open: open(true), keys: p.keys });
    }
    const started: Promise<unknown>[] = [];
    while (workers.length < count) {
      const w = ctx.fork();
      workers.push(w);
      started.push(w.call('multiOpen', { open: open(false), keys: p.keys }));
    }
    await Promise.all(started);
  };
  let total = 0; // increments counted by the writers so far (the counter must equal it)

  const point = async (mode: 'readers' | 'writers', n: number): Promise<MultiPoint> => {
    const processes = mode === 'readers' ? n + 1 : n;
    await ensure(processes);
    const mains: number[] = [];
    const writes: number[] = [];
    let exact = true;
    let detail = '';
    for (let r = 0; r < p.reps; r++) {
      const startAt = (nowNs() + BigInt(Math.round(p.startDelayMs * 1e6))).toString();
      const res = await Promise.all(
        workers.slice(0, processes).map((w, i) => {
          const role = mode === 'writers' ? 'incr' : i === 0 ? 'write' : 'read';
          return w.call<{ ops: number; ms: number }>('multiRun', { role, startAt, durationMs: p.durationMs }, p.durationMs + 60_000);
        }),
      );
      const wall = Math.max(...res.map((x) => x.ms)) / 1000;
      if (mode === 'readers') {
        writes.push(res[0]!.ops / (res[0]!.ms / 1000));
        mains.push(res.slice(1).reduce((a, x) => a + x.ops, 0) / wall);
        continue;
      }
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
    const pt: MultiPoint = { n, processes, main: rate(mains) };
    if (mode === 'readers') pt.writer = rate(writes);
    else pt.exact = exact;
    if (detail) pt.detail = detail;
    return pt;
  };

  const result: MultiResult = {};
  try {
    for (const mode of p.modes) {
      const out: MultiPoint[] = [];
      for (const n of p.ns) out.push(await point(mode, n));
      result[mode] = out;
    }
  } finally {
    // attached processes first, the creator last
    for (const w of workers.slice(1)) await w.call('multiClose').catch(() => undefined);
    if (workers[0]) await workers[0].call('multiClose').catch(() => undefined);
    for (const w of workers) w.kill();
  }
  return result;
}

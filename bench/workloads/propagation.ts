// Workload 4: propagation delay. Process A writes the current monotonic time (hrtime, a clock shared by
// all processes of the machine) into key 'p'; process B spins on get('p') and, when the value changes,
// records now - value. A writes again only after B has reported (so B is always already polling).
import { median, nowNs, percentile } from '../lib/timing.js';
import { closeStore, currentStore, openStore, type HostContext, type OpenArgs } from './common.js';

export interface PropagationParams {
  samplesPerRep: number;
  reps: number;
}
export interface PropagationResult {
  samples: number;
  /** all samples, in µs */
  medianUs: number;
  p99Us: number;
  minUs: number;
  maxUs: number;
  /** median of each repetition, µs */
  repMediansUs: number[];
}

const KEY = 'p';

export const workerFns = {
  propOpen: async (args: { open: OpenArgs }) => {
    const store = await openStore(args.open);
    if (args.open.create) await store.load([[KEY, -1]]);
    return process.pid;
  },
  propWrite: async () => {
    const store = currentStore();
    const t = Number(nowNs());
    if (store.mode === 'sync') store.set(KEY, t);
    else if (store.mode === 'async') await store.set(KEY, t);
    else await store.setMany([KEY], [t]);
  },
  /** Spins until `count` new values were seen; reports each one to the host as it goes. */
  propRead: async (args: { count: number; timeoutMs: number }) => {
    const store = currentStore();
    const delays: number[] = [];
    store.sync?.();
    let last = await store.get(KEY);
    process.send!({ t: 'prop-ready' });
    let deadline = nowNs() + BigInt(args.timeoutMs) * 1_000_000n;
    let spins = 0;
    const sync = store.sync?.bind(store);
    while (delays.length < args.count) {
      let v: unknown;
      if (store.mode === 'sync') {
        if (sync) sync();
        v = store.get(KEY);
      } else {
        v = await store.get(KEY);
      }
      if (v !== last) {
        const t1 = nowNs();
        delays.push(Number(t1) - (v as number));
        last = v;
        process.send!({ t: 'prop-seen', i: delays.length });
        deadline = t1 + BigInt(args.timeoutMs) * 1_000_000n;
      } else if ((++spins & 255) === 0 && nowNs() > deadline) {
        throw new Error(`no new value within ${args.timeoutMs} ms (seen ${delays.length} of ${args.count})`);
      }
    }
    return delays;
  },
  propClose: () => closeStore(),
};

export async function host(ctx: HostContext): Promise<PropagationResult> {
  const { job } = ctx;
  const p = job.params as PropagationParams;
  const a = ctx.fork();
  const b = ctx.fork();
  let waiting: { resolve: () => void; reject: (e: Error) => void } | null = null;
  let readyResolve: (() => void) | null = null;
  ctx.onMessage((child, message) => {
    const m = message as { t?: string };
    if (child !== b) return;
    if (m.t === 'prop-seen' && waiting) {
      const w = waiting;
      waiting = null;
      w.resolve();
    } else if (m.t === 'prop-ready' && readyResolve) {
      readyResolve();
      readyResolve = null;
    }
  });
  const all: number[] = [];
  const repMedians: number[] = [];
  try {
    await a.call('propOpen', { open: { contender: job.contender, name: job.name, create: true, env: job.env } });
    await b.call('propOpen', { open: { contender: job.contender, name: job.name, create: false, env: job.env } });
    for (let r = 0; r < p.reps; r++) {
      const ready = new Promise<void>((resolve) => (readyResolve = resolve));
      const reading = b.call<number[]>('propRead', { count: p.samplesPerRep, timeoutMs: 5000 }, 120_000);
      reading.catch(() => undefined);
      await Promise.race([ready, reading]);
      for (let i = 0; i < p.samplesPerRep; i++) {
        const seen = new Promise<void>((resolve, reject) => {
          waiting = { resolve, reject };
        });
        await a.call('propWrite');
        await Promise.race([seen, reading.then(() => undefined)]);
      }
      const delays = (await reading).map((ns) => ns / 1000);
      all.push(...delays);
      repMedians.push(median(delays));
    }
  } finally {
    await b.call('propClose').catch(() => undefined);
    await a.call('propClose').catch(() => undefined);
    a.kill();
    b.kill();
  }
  return {
    samples: all.length,
    medianUs: median(all),
    p99Us: percentile(all, 99),
    minUs: Math.min(...all),
    maxUs: Math.max(...all),
    repMediansUs: repMedians,
  };
}

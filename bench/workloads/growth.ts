// Workload 5: growth. With 1 K, 100 K and 1 M keys in the store: cost of writes and reads (10,000
// distinct keys spread over the whole key space), time for another process to open (attach to) the
// store and read one key, memory of the creating process and of the attached one (RSS growth after a
// full GC), and memory outside the processes (shared memory, server memory, file size).
import { accessKeys, valuePool } from '../lib/data.js';
import { measure, msSince, nowNs, type Measurement } from '../lib/timing.js';
import { rssAfterGc } from '../lib/proc.js';
import { contender, loadModule } from '../contenders/registry.js';
import { closeStore, currentStore, loadAll, openStore, readRunner, writeRunner, type HostContext, type OpenArgs } from './common.js';

export interface GrowthParams {
  size: number;
  sample: number;
  targetMs: number;
  warmupMs: number;
  reps: number;
  attach: boolean;
}
export interface GrowthResult {
  size: number;
  loadMs: number;
  reads: Measurement | null;
  writes: Measurement;
  /** RSS growth of the creating process (bytes) */
  ownerRss: number;
  /** shared memory / server / file bytes (see the contender), or null */
  storage: number | null;
  attach: { openMs: number; rss: number } | null;
  info?: unknown;
}

const pool = valuePool('int', 0, 1021);

export const workerFns = {
  growthLoad: async (args: { open: OpenArgs; size: number }) => {
    await loadModule(contender(args.open.contender)); // module code is not the store's memory
    const rss0 = rssAfterGc();
    const store = await openStore(args.open);
    const t0 = nowNs();
    await loadAll(store, args.size, pool);
    const loadMs = msSince(t0);
    const ownerRss = rssAfterGc() - rss0;
    return { loadMs, ownerRss };
  },
  growthMeasure: async (args: { size: number; sample: number; targetMs: number; warmupMs: number; reps: number }) => {
    const store = currentStore();
    store.sync?.();
    const order = accessKeys(args.size, args.sample);
    const multiple = store.mode === 'batch' ? store.batchSize : 1;
    const startOps = multiple;
    const opts = { targetMs: args.targetMs, warmupMs: args.warmupMs, reps: args.reps, startOps, multiple };
    const rr = readRunner(store, order);
    const reads = rr ? await measure(rr, opts) : null;
    const writes = await measure(writeRunner(store, order, pool), opts);
    return { reads, writes };
  },
  growthStorage: async () => {
    const store = currentStore();
    const storage = store.storageBytes ? await store.storageBytes() : null;
    return { storage, info: store.info?.() };
  },
  growthAttach: async (args: { open: OpenArgs; size: number }) => {
    await loadModule(contender(args.open.contender));
    const rss0 = rssAfterGc();
    const t0 = nowNs();
    const store = await openStore(args.open);
    const key = `k${args.size - 1}`;
    const v = await store.get(key);
    const openMs = msSince(t0);
    if (v !== pool[(args.size - 1) % pool.length]) throw new Error(`attached store has ${String(v)} at ${key}`);
    const rss = rssAfterGc() - rss0;
    await closeStore();
    return { openMs, rss };
  },
  growthClose: () => closeStore(),
};

export async function host(ctx: HostContext): Promise<GrowthResult> {
  const { job } = ctx;
  const p = job.params as GrowthParams;
  const owner = ctx.fork();
  try {
    const open: OpenArgs = { contender: job.contender, name: job.name, create: true, env: job.env };
    const load = await owner.call<{ loadMs: number; ownerRss: number }>('growthLoad', { open, size: p.size });
    const m = await owner.call<{ reads: Measurement | null; writes: Measurement }>('growthMeasure', {
      size: p.size, sample: p.sample, targetMs: p.targetMs, warmupMs: p.warmupMs, reps: p.reps,
    });
    const st = await owner.call<{ storage: number | null; info?: unknown }>('growthStorage');
    let attach: GrowthResult['attach'] = null;
    if (p.attach) {
      const other = ctx.fork();
      try {
        attach = await other.call('growthAttach', { open: { ...open, create: false }, size: p.size });
      } finally {
        other.kill();
      }
    }
    return { size: p.size, loadMs: load.loadMs, reads: m.reads, writes: m.writes, ownerRss: load.ownerRss, storage: st.storage, attach, info: st.info };
  } finally {
    await owner.call('growthClose').catch(() => undefined);
    owner.kill();
  }
}

// Shared pieces of the workloads: job description, worker state, measuring loops for each access mode.
import type { Child } from '../lib/proc.js';
import { nowNs, spinUntil, type Measurement } from '../lib/timing.js';
import { contender, loadModule, type ContenderDef, type WorkloadId } from '../contenders/registry.js';
import type { RunEnv, Store, Value } from '../contenders/types.js';

export interface Job<P = unknown> {
  workload: WorkloadId;
  contender: string;
  /** unique per job; every store name of the job starts with it (shm accounting and cleanup rely on it) */
  name: string;
  env: RunEnv;
  quick: boolean;
  params: P;
}

export interface HostContext {
  job: Job;
  /** Forks a worker (bench/proc/worker.ts) whose calls time out after `timeoutMs`. */
  fork(): Child;
  /** Non-reply messages sent by workers (other than manager requests). */
  onMessage(listener: (child: Child, message: unknown) => void): void;
  /** RSS of the host process after GC (the manager contender keeps its Map there). */
  hostRss(): number;
}

export interface WorkloadHost {
  host(ctx: HostContext): Promise<unknown>;
}

// ---------------------------------------------------------------------------------------------
// Worker side

export interface WorkerState {
  def: ContenderDef | null;
  store: Store | null;
  env: RunEnv | null;
}
export const worker: WorkerState = { def: null, store: null, env: null };

export interface OpenArgs {
  contender: string;
  name: string;
  create: boolean;
  env: RunEnv;
}

export async function openStore(args: OpenArgs): Promise<Store> {
  if (worker.store) throw new Error('a store is already open in this worker');
  const def = contender(args.contender);
  const mod = await loadModule(def);
  const store = await mod.open(def.variant, { env: args.env, name: args.name, create: args.create });
  worker.def = def;
  worker.store = store;
  worker.env = args.env;
  return store;
}

export async function closeStore(): Promise<void> {
  const s = worker.store;
  worker.store = null;
  if (s) await s.close();
}

export function currentStore(): Store {
  if (!worker.store) throw new Error('no store open in this worker');
  return worker.store;
}

/** `count` entries k0.. with values from `pool` (key i gets pool[i % pool.length]). */
export function entries(from: number, to: number, pool: readonly Value[]): [string, Value][] {
  const out: [string, Value][] = [];
  for (let i = from; i < to; i++) out.push([`k${i}`, pool[i % pool.length]]);
  return out;
}

export async function loadAll(store: Store, count: number, pool: readonly Value[]): Promise<void> {
  for (let i = 0; i < count; i += 10_000) await store.load(entries(i, Math.min(count, i + 10_000), pool));
}

type Runner = (n: number) => number | Promise<number>;

function batches<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) {
    const b = items.slice(i, i + size);
    while (b.length < size) b.push(items[(i + b.length) % items.length]!);
    out.push(b);
  }
  return out;
}

/** Reads cycling over `keys`; returns a runner, or null if the contender has no reads of its own. */
export function readRunner(store: Store, keys: readonly string[]): Runner | null {
  const K = keys.length;
  let j = 0;
  if (store.mode === 'sync') {
    const s = store;
    return (n) => {
      let hits = 0;
      for (let i = 0; i < n; i++) {
        if (s.get(keys[j]!) !== undefined) hits++;
        if (++j === K) j = 0;
      }
      return hits;
    };
  }
  if (store.mode === 'async') {
    const s = store;
    return async (n) => {
      let hits = 0;
      for (let i = 0; i < n; i++) {
        if ((await s.get(keys[j]!)) !== undefined) hits++;
        if (++j === K) j = 0;
      }
      return hits;
    };
  }
  const s = store;
  const getMany = s.getMany;
  if (!getMany) return null;
  const kb = batches(keys, s.batchSize);
  let b = 0;
  return async (n) => {
    let hits = 0;
    for (let i = 0; i < n; i += s.batchSize) {
      const vals = await getMany(kb[b]!);
      for (const v of vals) if (v !== undefined) hits++;
      if (++b === kb.length) b = 0;
    }
    return hits;
  };
}

/** Writes cycling over `keys` and, independently, over `values` (so a key gets changing values). */
export function writeRunner(store: Store, keys: readonly string[], values: readonly Value[]): Runner {
  const K = keys.length;
  const P = values.length;
  let j = 0;
  let p = 0;
  if (store.mode === 'sync') {
    const s = store;
    return (n) => {
      for (let i = 0; i < n; i++) {
        s.set(keys[j]!, values[p]);
        if (++j === K) j = 0;
        if (++p === P) p = 0;
      }
      return n;
    };
  }
  if (store.mode === 'async') {
    const s = store;
    return async (n) => {
      for (let i = 0; i < n; i++) {
        await s.set(keys[j]!, values[p]);
        if (++j === K) j = 0;
        if (++p === P) p = 0;
      }
      return n;
    };
  }
  const s = store;
  const B = s.batchSize;
  const kb = batches(keys, B);
  // value batches: the value sequence continues across batches (it repeats after lcm(P, B) values)
  const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));
  const vbCount = Math.min(P / gcd(P, B), 10_000);
  const vb: Value[][] = [];
  for (let c = 0, q = 0; c < vbCount; c++) {
    const arr: Value[] = [];
    for (let i = 0; i < B; i++) {
      arr.push(values[q]);
      if (++q === P) q = 0;
    }
    vb.push(arr);
  }
  let b = 0;
  let v = 0;
  return async (n) => {
    for (let i = 0; i < n; i += B) {
      await s.setMany(kb[b]!, vb[v]!);
      if (++b === kb.length) b = 0;
      if (++v === vb.length) v = 0;
    }
    return n;
  };
}

/** Increments of one counter (workload 3). */
export function incrementRunner(store: Store, key: string): Runner {
  if (store.mode === 'sync') {
    const s = store;
    return (n) => {
      for (let i = 0; i < n; i++) s.increment(key);
      return n;
    };
  }
  if (store.mode === 'batch') {
    const s = store as Store & { incrementMany?: (key: string, count: number) => Promise<number> };
    const many = s.incrementMany;
    if (many) {
      const B = store.batchSize;
      return async (n) => {
        for (let i = 0; i < n; i += B) await many.call(s, key, B);
        return n;
      };
    }
  }
  const s = store;
  return async (n) => {
    for (let i = 0; i < n; i++) await s.increment(key);
    return n;
  };
}

/** Granularity of the loop in `runFor`: sync ops are checked against the clock every 64. */
export function stepOf(store: Store): number {
  return store.mode === 'sync' ? 64 : store.mode === 'batch' ? store.batchSize : 1;
}

/**
 * Runs `runner` in steps from `startAt` until `durationMs` have passed; returns the operations done and
 * the time they took (several processes started at the same hrtime instant: a shared monotonic clock).
 * `sync` runs before every step (lmdb's resetReadTxn, so its readers see the writer's data as it goes).
 */
export async function runFor(
  runner: Runner,
  step: number,
  startAt: bigint,
  durationMs: number,
  sync?: () => void,
): Promise<{ ops: number; ms: number }> {
  spinUntil(startAt);
  const t0 = nowNs();
  const end = t0 + BigInt(Math.round(durationMs * 1e6));
  let ops = 0;
  let t = t0;
  while (t < end) {
    sync?.(); // snapshot stores (lmdb): see what other processes wrote, at least every `step` operations
    const done = await runner(step);
    if (done !== step) throw new Error(`contender returned ${done} correct results out of ${step}`);
    ops += step;
    t = nowNs();
  }
  return { ops, ms: Number(t - t0) / 1e6 };
}

export type { Measurement };

// Workloads 1 and 2: one process, preloaded keys, reads then writes.
//   1. 10,000 keys, small integer values (the Python README's benchmark);
//   2. values of 100 B, 1 KB and 100 KB, strings and objects.
import { keys as makeKeys, shuffle, valuePool, type ValueKind } from '../lib/data.js';
import { measure, type Measurement } from '../lib/timing.js';
import { closeStore, currentStore, loadAll, openStore, readRunner, writeRunner, type HostContext, type OpenArgs } from './common.js';

export interface SingleCase {
  kind: ValueKind;
  bytes: number;
  keys: number;
  targetMs: number;
  warmupMs: number;
  reps: number;
}
export interface SingleParams {
  cases: SingleCase[];
}
export interface SingleCaseResult {
  kind: ValueKind;
  bytes: number;
  keys: number;
  reads: Measurement | null;
  writes: Measurement;
}

/** Pool of distinct values per case: writes cycle through them. Sizes coprime with the key counts. */
const poolSize = (kind: ValueKind): number => (kind === 'int' ? 1021 : 7);

async function singleCase(c: SingleCase): Promise<SingleCaseResult> {
  const store = currentStore();
  const pool = valuePool(c.kind, c.bytes, poolSize(c.kind));
  await loadAll(store, c.keys, pool);
  store.sync?.();
  // the value read back is the value written (also checks serialization of every contender)
  const back = await store.get('k1');
  if (JSON.stringify(back) !== JSON.stringify(pool[1 % pool.length])) throw new Error('value read back differs from the value written');
  const order = shuffle(makeKeys(c.keys), 7);
  const multiple = store.mode === 'batch' ? store.batchSize : 1;
  const startOps = multiple;
  const opts = { targetMs: c.targetMs, warmupMs: c.warmupMs, reps: c.reps, startOps, multiple };
  const rr = readRunner(store, order);
  const reads = rr ? await measure(rr, opts) : null;
  const writes = await measure(writeRunner(store, order, pool), opts);
  return { kind: c.kind, bytes: c.bytes, keys: c.keys, reads, writes };
}

export const workerFns = {
  singleCase: (args: { open: OpenArgs; c: SingleCase }) =>
    (async () => {
      await openStore(args.open);
      try {
        return await singleCase(args.c);
      } finally {
        await closeStore();
      }
    })(),
};

export async function host(ctx: HostContext): Promise<SingleCaseResult[]> {
  const { job } = ctx;
  const params = job.params as SingleParams;
  const w = ctx.fork();
  const out: SingleCaseResult[] = [];
  try {
    for (let i = 0; i < params.cases.length; i++) {
      const open: OpenArgs = { contender: job.contender, name: `${job.name}c${i}`, create: true, env: job.env };
      out.push(await w.call<SingleCaseResult>('singleCase', { open, c: params.cases[i] }));
    }
  } finally {
    w.kill();
  }
  return out;
}

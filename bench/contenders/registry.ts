// The contenders, what they are, and which workloads apply to them.
import type { ContenderModule } from './types.js';

export type WorkloadId = 'w1' | 'w2' | 'w3' | 'w4' | 'w5';

export interface ContenderDef {
  id: string;
  /** group for --only=GROUP (e.g. 'ultradict' selects every serializer) */
  group: string;
  label: string;
  /** module file under bench/contenders/ (loaded lazily: a worker only loads what it measures) */
  module: 'map' | 'ultradict' | 'redis' | 'memcached' | 'lmdb' | 'sqlite' | 'manager';
  variant: string;
  mode: 'sync' | 'async' | 'batch';
  /** single-process reads are a row of their own (false: the row is about writes only) */
  reads: boolean;
  workloads: readonly WorkloadId[];
  needs?: 'redis' | 'memcached' | 'ultradict';
  /** one line for the report on how it is used */
  how: string;
}

export const BATCH = 100;

const ALL: readonly WorkloadId[] = ['w1', 'w2', 'w3', 'w4', 'w5'];

export const CONTENDERS: readonly ContenderDef[] = [
  { id: 'map', group: 'map', label: 'Map (one process, not shared)', module: 'map', variant: '', mode: 'sync', reads: true,
    workloads: ['w1', 'w2', 'w5'], how: 'a plain `Map` in the measuring process: the ceiling, shares nothing' },
  { id: 'ultradict-msgpack', group: 'ultradict', label: 'ultradict (msgpack)', module: 'ultradict', variant: 'msgpack', mode: 'sync',
    reads: true, workloads: ALL, needs: 'ultradict', how: "`new UltraDict({ serializer: 'msgpack' })`, default options otherwise" },
  { id: 'ultradict-json', group: 'ultradict', label: 'ultradict (json)', module: 'ultradict', variant: 'json', mode: 'sync',
    reads: true, workloads: ALL, needs: 'ultradict', how: "`serializer: 'json'`" },
  { id: 'ultradict-v8', group: 'ultradict', label: 'ultradict (v8)', module: 'ultradict', variant: 'v8', mode: 'sync',
    reads: true, workloads: ALL, needs: 'ultradict', how: "`serializer: 'v8'`" },
  { id: 'ultradict-events', group: 'ultradict', label: "ultradict (msgpack, 'change' listener)", module: 'ultradict', variant: 'events',
    mode: 'async', reads: false, workloads: ['w4'], needs: 'ultradict',
    how: "workload 4 only: the reader waits for `dict.on('change')` instead of polling `get()`" },
  { id: 'redis', group: 'redis', label: 'Redis (ioredis, awaited)', module: 'redis', variant: 'seq', mode: 'async', reads: true,
    workloads: ALL, needs: 'redis', how: 'ioredis, one awaited GET/SET per operation, values as JSON text; INCR for the counter' },
  { id: 'redis-pipeline', group: 'redis', label: `Redis (ioredis, pipeline of ${BATCH})`, module: 'redis', variant: 'pipeline', mode: 'batch',
    reads: true, workloads: ['w1', 'w2', 'w3'], needs: 'redis', how: `ioredis \`pipeline()\` of ${BATCH} GETs/SETs/INCRs, awaited per batch` },
  { id: 'memcached', group: 'memcached', label: 'memcached (memjs, awaited)', module: 'memcached', variant: 'seq', mode: 'async', reads: true,
    workloads: ALL, needs: 'memcached', how: 'memjs (binary protocol), one awaited get/set per operation, values as JSON text; `increment` for the counter' },
  { id: 'memcached-batch', group: 'memcached', label: `memcached (memjs, ${BATCH} in flight)`, module: 'memcached', variant: 'batch', mode: 'batch',
    reads: true, workloads: ['w1', 'w2'], needs: 'memcached', how: `memjs with ${BATCH} requests in flight (memjs has no explicit pipeline), awaited per batch` },
  { id: 'lmdb', group: 'lmdb', label: 'lmdb (getSync / putSync)', module: 'lmdb', variant: 'sync', mode: 'sync', reads: true,
    workloads: ALL, how: 'lmdb-js `get` (synchronous) and `putSync`, default msgpack encoding, `noSync: true`; counter in `transactionSync`' },
  { id: 'lmdb-async', group: 'lmdb', label: `lmdb (async put, ${BATCH} per turn)`, module: 'lmdb', variant: 'async', mode: 'batch', reads: false,
    workloads: ['w1', 'w2'], how: `lmdb-js \`put\` (async, batched by lmdb-js into one transaction per event turn), ${BATCH} per awaited turn` },
  { id: 'sqlite', group: 'sqlite', label: 'better-sqlite3 (WAL, prepared)', module: 'sqlite', variant: 'auto', mode: 'sync', reads: true,
    workloads: ALL, how: 'better-sqlite3 12, WAL, `synchronous=NORMAL`, prepared SELECT/UPSERT on a `WITHOUT ROWID` key/value table, JSON text values, one implicit transaction per write' },
  { id: 'sqlite-tx', group: 'sqlite', label: `better-sqlite3 (transaction of ${BATCH})`, module: 'sqlite', variant: 'tx', mode: 'batch', reads: false,
    workloads: ['w1', 'w2'], how: `same, ${BATCH} writes per transaction` },
  { id: 'manager', group: 'manager', label: 'manager process (IPC)', module: 'manager', variant: '', mode: 'async', reads: true,
    workloads: ALL, how: 'a parent process holds a Map; the measuring child does get/set with `process.send` and awaits the reply (the `cluster-shared-memory`/`memored` pattern)' },
];

export function contender(id: string): ContenderDef {
  const c = CONTENDERS.find((x) => x.id === id);
  if (!c) throw new Error(`unknown contender ${id}`);
  return c;
}

/** Loads a contender module by computed URL (keeps workers from loading native modules they don't use). */
export async function loadModule(def: ContenderDef): Promise<ContenderModule> {
  const url = new URL(`./${def.module}.js`, import.meta.url);
  return (await import(url.href)) as ContenderModule;
}

/** The Python UltraDict library's published figures (README, Python 3.9.2, Debian 11, another machine). */
export const PYTHON_FIGURES: readonly { label: string; writes: number; reads: number }[] = [
  { label: 'Python dict', writes: 16_413_569, reads: 16_479_191 },
  { label: 'Python UltraDict', writes: 479_860, reads: 2_337_944 },
  { label: 'Python UltraDict (shared_lock=True)', writes: 41_176, reads: 1_518_652 },
  { label: 'Python Redis (redis-py)', writes: 24_351, reads: 30_466 },
  { label: 'Python multiprocessing.Manager dict', writes: 19_371, reads: 22_290 },
];

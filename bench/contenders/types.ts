// The adapter interface every contender implements. One adapter instance lives in one worker process.
//
// Three access modes, because they are measured differently:
// - 'sync':  get/set return the value directly (Map, ultradict, lmdb getSync/putSync, better-sqlite3);
// - 'async': every operation is a Promise awaited before the next one (Redis, memcached, manager);
// - 'batch': operations are sent in batches of `batchSize` and the batch is awaited (Redis pipeline,
//            lmdb async put, sqlite transaction of `batchSize` writes).
// Every contender gets the same keys, values and repetitions; see bench/workloads/.

export type Value = unknown;

/** Where the shared services of one run live; passed from the orchestrator to every worker. */
export interface RunEnv {
  redisPort: number | null;
  memcachedPort: number | null;
  /** Temporary directory of this run (lmdb and sqlite files go below it). */
  tmpDir: string;
}

export interface OpenOptions {
  env: RunEnv;
  /** Name of the store of this job: the dict name, the sqlite/lmdb file stem, a Redis key prefix. */
  name: string;
  /** true: this process creates the store (and empties it); false: it attaches to one that exists. */
  create: boolean;
}

interface StoreBase {
  readonly mode: 'sync' | 'async' | 'batch';
  /** Bulk load that is not measured (fastest way the store offers). Overwrites existing keys. */
  load(entries: ReadonlyArray<readonly [string, Value]>): void | Promise<void>;
  /**
   * Make the next read see every write published by other processes, for stores whose reads are
   * snapshots (lmdb's read transaction). A no-op for the others: ultradict, Redis etc. are always current.
   */
  sync?(): void;
  /** The read-modify-write increment of workload 3, atomic across processes; returns the new value. */
  increment(key: string): number | Promise<number>;
  /** Size of the data outside this process: shm bytes, server memory, file size (bytes), or null. */
  storageBytes?(): Promise<number | null> | number | null;
  /** Free-form facts for the report (e.g. ultradict stats()). */
  info?(): unknown;
  close(): void | Promise<void>;
}

export interface SyncStore extends StoreBase {
  readonly mode: 'sync';
  get(key: string): Value;
  set(key: string, value: Value): void;
  increment(key: string): number;
}

export interface AsyncStore extends StoreBase {
  readonly mode: 'async';
  get(key: string): Promise<Value>;
  set(key: string, value: Value): Promise<void>;
}

export interface BatchStore extends StoreBase {
  readonly mode: 'batch';
  readonly batchSize: number;
  /** null when the contender has no batched read of its own (its reads are another row's reads). */
  getMany: ((keys: string[]) => Promise<Value[]>) | null;
  setMany(keys: string[], values: Value[]): Promise<void>;
  /** Single reads, used by the propagation and growth workloads. */
  get(key: string): Promise<Value> | Value;
}

export type Store = SyncStore | AsyncStore | BatchStore;

/** What a contender module under bench/contenders/ exports. */
export interface ContenderModule {
  open(variant: string, options: OpenOptions): Promise<Store>;
  /** Whether the contender can run here (e.g. the server binary is missing); null when it can. */
  unavailable?(env: RunEnv): string | null;
}

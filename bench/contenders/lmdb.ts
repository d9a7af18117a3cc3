// lmdb-js: synchronous get/putSync ('sync'), or async put batched per event turn ('async').
import { open as openLmdb, type RootDatabase } from 'lmdb';
import { statSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { BATCH } from './registry.js';
import type { BatchStore, OpenOptions, Store, SyncStore, Value } from './types.js';

type Db = RootDatabase<Value, string>;

abstract class LmdbBase {
  constructor(
    protected readonly db: Db,
    private readonly dir: string,
  ) {}
  load(entries: ReadonlyArray<readonly [string, Value]>): void {
    for (let i = 0; i < entries.length; i += 10_000) {
      const chunk = entries.slice(i, i + 10_000);
      this.db.transactionSync(() => {
        for (const [k, v] of chunk) this.db.putSync(k, v);
      });
    }
  }
  sync(): void {
    this.db.resetReadTxn();
  }
  increment(key: string): number {
    return this.db.transactionSync(() => {
      const n = ((this.db.get(key) as number | undefined) ?? 0) + 1;
      this.db.putSync(key, n);
      return n;
    });
  }
  storageBytes(): number | null {
    try {
      const st = statSync(join(this.dir, 'data.mdb'));
      return st.blocks * 512;
    } catch {
      return null;
    }
  }
  async close(): Promise<void> {
    await this.db.close();
  }
}

class LmdbSync extends LmdbBase implements SyncStore {
  readonly mode = 'sync' as const;
  get(key: string): Value {
    return this.db.get(key);
  }
  set(key: string, value: Value): void {
    this.db.putSync(key, value);
  }
}

class LmdbAsync extends LmdbBase implements BatchStore {
  readonly mode = 'batch' as const;
  readonly batchSize = BATCH;
  readonly getMany = null;
  get(key: string): Value {
    return this.db.get(key);
  }
  async setMany(keys: string[], values: Value[]): Promise<void> {
    let last: Promise<boolean> | undefined;
    for (let i = 0; i < keys.length; i++) last = this.db.put(keys[i]!, values[i]);
    await last; // every put of this turn is in the same transaction: the last resolves when it commits
  }
}

export async function open(variant: string, options: OpenOptions): Promise<Store> {
  const dir = join(options.env.tmpDir, `lmdb-${options.name}`);
  if (options.create) mkdirSync(dir, { recursive: true });
  const db = openLmdb<Value, string>({
    path: dir,
    noSync: true, // same durability as ultradict (survives a process crash, not a power loss)
    compression: false,
    maxReaders: 256,
    mapSize: 4 * 2 ** 30,
  });
  if (options.create) await db.clearAsync();
  return variant === 'async' ? new LmdbAsync(db, dir) : new LmdbSync(db, dir);
}

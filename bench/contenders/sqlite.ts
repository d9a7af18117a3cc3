// better-sqlite3 12: WAL, synchronous=NORMAL, prepared statements on a key/value table.
import Database from 'better-sqlite3';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { BATCH } from './registry.js';
import type { BatchStore, OpenOptions, Store, SyncStore, Value } from './types.js';

type Db = InstanceType<typeof Database>;

class SqliteBase {
  protected readonly sel;
  protected readonly ups;
  private readonly incTx;
  private readonly loadTx;
  protected readonly manyTx;
  constructor(
    protected readonly db: Db,
    private readonly file: string,
  ) {
    this.sel = db.prepare<[string]>('SELECT v FROM kv WHERE k = ?').pluck();
    this.ups = db.prepare<[string, string]>('INSERT INTO kv (k, v) VALUES (?, ?) ON CONFLICT(k) DO UPDATE SET v = excluded.v');
    const inc = (key: string): number => {
      const cur = this.sel.get(key) as string | undefined;
      const n = (cur === undefined ? 0 : (JSON.parse(cur) as number)) + 1;
      this.ups.run(key, JSON.stringify(n));
      return n;
    };
    this.incTx = db.transaction(inc);
    const load = (entries: ReadonlyArray<readonly [string, Value]>): void => {
      for (const [k, v] of entries) this.ups.run(k, JSON.stringify(v));
    };
    this.loadTx = db.transaction(load);
    const many = (keys: string[], values: Value[]): void => {
      for (let i = 0; i < keys.length; i++) this.ups.run(keys[i]!, JSON.stringify(values[i]));
    };
    this.manyTx = db.transaction(many);
  }
  get(key: string): Value {
    const s = this.sel.get(key) as string | undefined;
    return s === undefined ? undefined : JSON.parse(s);
  }
  load(entries: ReadonlyArray<readonly [string, Value]>): void {
    for (let i = 0; i < entries.length; i += 10_000) this.loadTx(entries.slice(i, i + 10_000));
  }
  /** BEGIN IMMEDIATE: takes the write lock before reading, so concurrent increments cannot be lost. */
  increment(key: string): number {
    return this.incTx.immediate(key);
  }
  storageBytes(): number {
    let total = 0;
    for (const f of [this.file, `${this.file}-wal`, `${this.file}-shm`]) {
      try {
        total += statSync(f).blocks * 512;
      } catch {
        /* absent */
      }
    }
    return total;
  }
  close(): void {
    this.db.close();
  }
}

class SqliteAuto extends SqliteBase implements SyncStore {
  readonly mode = 'sync' as const;
  set(key: string, value: Value): void {
    this.ups.run(key, JSON.stringify(value));
  }
}

class SqliteTx extends SqliteBase implements BatchStore {
  readonly mode = 'batch' as const;
  readonly batchSize = BATCH;
  readonly getMany = null;
  async setMany(keys: string[], values: Value[]): Promise<void> {
    this.manyTx(keys, values);
  }
}

export async function open(variant: string, options: OpenOptions): Promise<Store> {
  const file = join(options.env.tmpDir, `sqlite-${options.name}.db`);
  const db = new Database(file, { timeout: 30_000 });
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL'); // same durability as ultradict: survives a process crash
  if (options.create) {
    db.exec('DROP TABLE IF EXISTS kv; CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT NOT NULL) WITHOUT ROWID');
  }
  return variant === 'tx' ? new SqliteTx(db, file) : new SqliteAuto(db, file);
}

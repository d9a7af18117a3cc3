// ultradict, with each built-in serializer, default options otherwise.
import { UltraDict } from '../../src/index.js';
import { shmBytes } from '../lib/shm.js';
import type { AsyncStore, OpenOptions, Store, SyncStore, Value } from './types.js';

type Serializer = 'msgpack' | 'json' | 'v8';

/** Detaches; the process that created the store also removes the dict. */
function closeDict(d: UltraDict<Value>, owner: boolean): void {
  if (owner) {
    try {
      d.unlink();
    } catch {
      /* autoUnlink may already have done it */
    }
  }
  d.close();
}

class UltraDictStore implements SyncStore {
  readonly mode = 'sync' as const;
  constructor(
    private readonly d: UltraDict<Value>,
    private readonly name: string,
    private readonly owner: boolean,
  ) {}
  get(key: string): Value {
    return this.d.get(key);
  }
  set(key: string, value: Value): void {
    this.d.set(key, value);
  }
  load(entries: ReadonlyArray<readonly [string, Value]>): void {
    // update() publishes one atomic batch; batches of 10,000 keep a single frame reasonable.
    for (let i = 0; i < entries.length; i += 10_000) this.d.update(entries.slice(i, i + 10_000) as [string, Value][]);
  }
  increment(key: string): number {
    return this.d.withLock(() => {
      const n = ((this.d.get(key) as number | undefined) ?? 0) + 1;
      this.d.set(key, n);
      return n;
    });
  }
  storageBytes(): number {
    return shmBytes(this.name).allocated;
  }
  info(): unknown {
    return this.d.stats();
  }
  close(): void {
    closeDict(this.d, this.owner);
  }
}

/**
 * The same dict read through change events instead of polling (workload 4 only): get() returns the
 * current value if it was not returned yet, else resolves with the value of the next change of that key,
 * as a 'change' listener receives it (native watcher thread, futex wake-up, thread-safe call into JS).
 */
class UltraDictEventStore implements AsyncStore {
  readonly mode = 'async' as const;
  private first = true;
  private last: Value = undefined;
  private waiting: { key: string; resolve: (v: Value) => void } | null = null;
  constructor(
    private readonly d: UltraDict<Value>,
    private readonly owner: boolean,
  ) {
    d.on('change', (c) => {
      const w = this.waiting;
      if (w !== null && c.type === 'set' && c.key === w.key) {
        this.waiting = null;
        w.resolve(c.value);
      }
    });
  }
  get(key: string): Promise<Value> {
    // a value not returned yet is returned at once; otherwise wait for the next change event
    const cur = this.d.get(key);
    if (this.first || !Object.is(cur, this.last)) {
      this.first = false;
      this.last = cur;
      return Promise.resolve(cur);
    }
    return new Promise((resolve) => {
      this.waiting = {
        key,
        resolve: (v) => {
          this.last = v;
          resolve(v);
        },
      };
    });
  }
  /** The next get() returns the current value (workload 4 calls this before it starts reading). */
  sync(): void {
    this.first = true;
  }
  async set(key: string, value: Value): Promise<void> {
    this.d.set(key, value);
  }
  load(entries: ReadonlyArray<readonly [string, Value]>): void {
    this.d.update(entries as [string, Value][]);
  }
  increment(key: string): number {
    return this.d.increment(key);
  }
  close(): void {
    closeDict(this.d, this.owner);
  }
}

export async function open(variant: string, options: OpenOptions): Promise<Store> {
  if (variant === 'events') {
    const d = new UltraDict<Value>({ name: options.name, create: options.create });
    return new UltraDictEventStore(d, options.create);
  }
  const serializer = variant as Serializer;
  const d = options.create
    ? new UltraDict<Value>({ name: options.name, create: true, serializer })
    : new UltraDict<Value>({ name: options.name, create: false, serializer });
  return new UltraDictStore(d, options.name, options.create);
}

// ultradict, with each built-in serializer, default options otherwise.
import { UltraDict } from '../../src/index.js';
import { shmBytes } from '../lib/shm.js';
import type { OpenOptions, Store, SyncStore, Value } from './types.js';

type Serializer = 'msgpack' | 'json' | 'v8';

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
    if (this.owner) {
      try {
        this.d.unlink();
      } catch {
        /* autoUnlink may already have done it */
      }
    }
    this.d.close();
  }
}

export async function open(variant: string, options: OpenOptions): Promise<Store> {
  const serializer = variant as Serializer;
  const d = options.create
    ? new UltraDict<Value>({ name: options.name, create: true, serializer })
    : new UltraDict<Value>({ name: options.name, create: false, serializer });
  return new UltraDictStore(d, options.name, options.create);
}

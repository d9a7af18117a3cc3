// A plain Map: the ceiling. Shares nothing with other processes.
import type { OpenOptions, Store, SyncStore, Value } from './types.js';

class MapStore implements SyncStore {
  readonly mode = 'sync' as const;
  private readonly m = new Map<string, Value>();
  get(key: string): Value {
    return this.m.get(key);
  }
  set(key: string, value: Value): void {
    this.m.set(key, value);
  }
  load(entries: ReadonlyArray<readonly [string, Value]>): void {
    for (const [k, v] of entries) this.m.set(k, v);
  }
  increment(key: string): number {
    const n = ((this.m.get(key) as number | undefined) ?? 0) + 1;
    this.m.set(key, n);
    return n;
  }
  storageBytes(): null {
    return null;
  }
  close(): void {
    this.m.clear();
  }
}

export async function open(_variant: string, options: OpenOptions): Promise<Store> {
  if (!options.create) throw new Error('a Map cannot be attached to from another process');
  return new MapStore();
}

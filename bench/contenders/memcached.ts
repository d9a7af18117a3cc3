// memcached through memjs (binary protocol): awaited requests ('seq') or BATCH requests in flight ('batch').
import memjs from 'memjs';
import { BATCH } from './registry.js';
import type { AsyncStore, BatchStore, OpenOptions, RunEnv, Store, Value } from './types.js';

type Client = ReturnType<typeof memjs.Client.create>;

const decode = (b: Buffer | null): Value => (b === null ? undefined : JSON.parse(b.toString('utf8')));

abstract class MemcachedBase {
  constructor(protected readonly c: Client) {}
  async get(key: string): Promise<Value> {
    const { value } = await this.c.get(key);
    return decode(value);
  }
  async set(key: string, value: Value): Promise<void> {
    const ok = await this.c.set(key, JSON.stringify(value), { expires: 0 });
    if (!ok) throw new Error('memcached set failed');
  }
  async load(entries: ReadonlyArray<readonly [string, Value]>): Promise<void> {
    for (let i = 0; i < entries.length; i += 1000) {
      await Promise.all(entries.slice(i, i + 1000).map(([k, v]) => this.set(k, v)));
    }
  }
  async increment(key: string): Promise<number> {
    const r = await this.c.increment(key, 1, { initial: 1 });
    if (!r.success) throw new Error('memcached increment failed');
    return r.value;
  }
  storageBytes(): Promise<number | null> {
    return new Promise((resolve) => {
      this.c.stats((err, _server, stats) => resolve(err ? null : Number(stats['bytes'] ?? NaN)));
    });
  }
  close(): void {
    this.c.close();
  }
}

class MemcachedSeq extends MemcachedBase implements AsyncStore {
  readonly mode = 'async' as const;
}

class MemcachedBatch extends MemcachedBase implements BatchStore {
  readonly mode = 'batch' as const;
  readonly batchSize = BATCH;
  getMany = (keys: string[]): Promise<Value[]> => Promise.all(keys.map((k) => this.get(k)));
  async setMany(keys: string[], values: Value[]): Promise<void> {
    await Promise.all(keys.map((k, i) => this.set(k, values[i])));
  }
}

export function unavailable(env: RunEnv): string | null {
  return env.memcachedPort === null ? 'memcached is not installed on this machine' : null;
}

export async function open(variant: string, options: OpenOptions): Promise<Store> {
  if (options.env.memcachedPort === null) throw new Error('no memcached');
  const c = memjs.Client.create(`127.0.0.1:${options.env.memcachedPort}`, {
    timeout: 10,
    conntimeout: 5,
    retries: 0,
    logger: { log: () => undefined },
  });
  if (options.create) await c.flush();
  return variant === 'batch' ? new MemcachedBatch(c) : new MemcachedSeq(c);
}

// Redis through ioredis: one awaited command per operation ('seq'), or pipelines ('pipeline').
import { Redis } from 'ioredis';
import { BATCH } from './registry.js';
import type { AsyncStore, BatchStore, OpenOptions, RunEnv, Store, Value } from './types.js';

const decode = (s: string | null): Value => (s === null ? undefined : JSON.parse(s));

abstract class RedisBase {
  constructor(protected readonly r: Redis) {}
  async load(entries: ReadonlyArray<readonly [string, Value]>): Promise<void> {
    for (let i = 0; i < entries.length; i += 1000) {
      const args: string[] = [];
      for (const [k, v] of entries.slice(i, i + 1000)) args.push(k, JSON.stringify(v));
      await this.r.mset(args);
    }
  }
  async storageBytes(): Promise<number | null> {
    const info = await this.r.info('memory');
    const m = /^used_memory:(\d+)/m.exec(info);
    return m ? Number(m[1]) : null;
  }
  async close(): Promise<void> {
    await this.r.quit().catch(() => undefined);
    this.r.disconnect();
  }
}

class RedisSeq extends RedisBase implements AsyncStore {
  readonly mode = 'async' as const;
  async get(key: string): Promise<Value> {
    return decode(await this.r.get(key));
  }
  async set(key: string, value: Value): Promise<void> {
    await this.r.set(key, JSON.stringify(value));
  }
  increment(key: string): Promise<number> {
    return this.r.incr(key);
  }
}

class RedisPipeline extends RedisBase implements BatchStore {
  readonly mode = 'batch' as const;
  readonly batchSize = BATCH;
  getMany = async (keys: string[]): Promise<Value[]> => {
    const p = this.r.pipeline();
    for (const k of keys) p.get(k);
    const res = (await p.exec()) ?? [];
    return res.map(([err, v]) => {
      if (err) throw err;
      return decode(v as string | null);
    });
  };
  async setMany(keys: string[], values: Value[]): Promise<void> {
    const p = this.r.pipeline();
    for (let i = 0; i < keys.length; i++) p.set(keys[i]!, JSON.stringify(values[i]));
    const res = (await p.exec()) ?? [];
    for (const [err] of res) if (err) throw err;
  }
  async get(key: string): Promise<Value> {
    return decode(await this.r.get(key));
  }
  /** A pipeline of BATCH INCRs counts as BATCH increments; returns the last value. */
  async increment(key: string): Promise<number> {
    return this.r.incr(key);
  }
  async incrementMany(key: string, count: number): Promise<number> {
    const p = this.r.pipeline();
    for (let i = 0; i < count; i++) p.incr(key);
    const res = (await p.exec()) ?? [];
    let last = 0;
    for (const [err, v] of res) {
      if (err) throw err;
      last = v as number;
    }
    return last;
  }
}

export function unavailable(env: RunEnv): string | null {
  return env.redisPort === null ? 'redis-server is not installed on this machine' : null;
}

export async function open(variant: string, options: OpenOptions): Promise<Store> {
  if (options.env.redisPort === null) throw new Error('no redis-server');
  const r = new Redis({
    host: '127.0.0.1',
    port: options.env.redisPort,
    maxRetriesPerRequest: 1,
    connectTimeout: 5000,
    commandTimeout: 10_000,
    lazyConnect: true,
  });
  await r.connect();
  if (options.create) await r.flushall();
  return variant === 'pipeline' ? new RedisPipeline(r) : new RedisSeq(r);
}

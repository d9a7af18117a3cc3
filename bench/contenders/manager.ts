// The "manager" pattern: the parent process (the job host, bench/proc/host.ts) holds a Map; this
// process asks it for every get/set over the IPC channel and awaits the reply.
import type { AsyncStore, OpenOptions, Store, Value } from './types.js';

export interface ManagerRequest {
  t: 'mgr';
  id: number;
  op: 'get' | 'set' | 'incr' | 'load' | 'memory' | 'clear';
  k?: string;
  v?: unknown;
}
export interface ManagerReply {
  t: 'mgr-r';
  id: number;
  v?: unknown;
  err?: string;
}

class ManagerClient implements AsyncStore {
  readonly mode = 'async' as const;
  private seq = 0;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private readonly onMessage = (message: unknown): void => {
    const m = message as Partial<ManagerReply>;
    if (!m || m.t !== 'mgr-r' || typeof m.id !== 'number') return;
    const p = this.pending.get(m.id);
    if (!p) return;
    this.pending.delete(m.id);
    if (m.err) p.reject(new Error(m.err));
    else p.resolve(m.v);
  };
  constructor() {
    if (!process.send) throw new Error('the manager contender needs an IPC channel to its parent');
    process.on('message', this.onMessage);
  }
  private request(op: ManagerRequest['op'], k?: string, v?: unknown): Promise<unknown> {
    const id = ++this.seq;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      const msg: ManagerRequest = { t: 'mgr', id, op, k, v };
      process.send!(msg);
    });
  }
  get(key: string): Promise<Value> {
    return this.request('get', key);
  }
  async set(key: string, value: Value): Promise<void> {
    await this.request('set', key, value);
  }
  async increment(key: string): Promise<number> {
    return (await this.request('incr', key)) as number;
  }
  async load(entries: ReadonlyArray<readonly [string, Value]>): Promise<void> {
    for (let i = 0; i < entries.length; i += 10_000) await this.request('load', undefined, entries.slice(i, i + 10_000));
  }
  /** Growth of the manager process's RSS since the job started (it holds the data). */
  async storageBytes(): Promise<number | null> {
    return (await this.request('memory')) as number;
  }
  close(): void {
    process.off('message', this.onMessage);
  }
}

export async function open(_variant: string, options: OpenOptions): Promise<Store> {
  const c = new ManagerClient();
  if (options.create) await c['request']('clear');
  return c;
}

/** Host side: answers the requests of one child from a Map held in this process. */
export class ManagerServer {
  private readonly map = new Map<string, unknown>();
  private readonly baseline: number;
  constructor(private readonly rss: () => number) {
    this.baseline = rss();
  }
  handle(message: unknown, reply: (r: ManagerReply) => void): boolean {
    const m = message as Partial<ManagerRequest>;
    if (!m || m.t !== 'mgr' || typeof m.id !== 'number') return false;
    const id = m.id;
    switch (m.op) {
      case 'get':
        reply({ t: 'mgr-r', id, v: this.map.get(m.k!) });
        break;
      case 'set':
        this.map.set(m.k!, m.v);
        reply({ t: 'mgr-r', id });
        break;
      case 'incr': {
        const n = ((this.map.get(m.k!) as number | undefined) ?? 0) + 1;
        this.map.set(m.k!, n);
        reply({ t: 'mgr-r', id, v: n });
        break;
      }
      case 'load':
        for (const [k, v] of m.v as [string, unknown][]) this.map.set(k, v);
        reply({ t: 'mgr-r', id });
        break;
      case 'clear':
        this.map.clear();
        reply({ t: 'mgr-r', id });
        break;
      case 'memory':
        reply({ t: 'mgr-r', id, v: this.rss() - this.baseline });
        break;
      default:
        reply({ t: 'mgr-r', id, err: `unknown op ${String(m.op)}` });
    }
    return true;
  }
}

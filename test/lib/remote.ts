// A dict handle in another process (fixture trust-child), optionally run as another user: call(op) over IPC.

import { Child } from './helpers.js';

export interface Reply {
  ok: boolean;
  value?: unknown;
  error?: string;
  typed?: boolean;
  code?: string;
  message?: string;
}

export class Remote {
  private next = 0;
  private constructor(readonly child: Child) {}

  static async start(as?: { uid: number; gid: number }): Promise<Remote> {
    const c = new Child('trust-child', {}, 120_000, as);
    await c.message('ready');
    return new Remote(c);
  }

  async call(op: string, args: Record<string, unknown> = {}): Promise<Reply> {
    const id = ++this.next;
    this.child.send({ id, op, ...args });
    return (await this.child.message(`r${id}`, 60_000)) as unknown as Reply;
  }

  /** call(), and fail unless it succeeded. */
  async ok(op: string, args: Record<string, unknown> = {}): Promise<unknown> {
    const r = await this.call(op, args);
    if (!r.ok) throw new Error(`${op} failed in the other process: ${r.error}: ${r.message}`);
    return r.value;
  }

  async exit(): Promise<void> {
    this.child.send({ op: 'exit' });
    await this.child.done();
  }
}

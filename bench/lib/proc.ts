// Child processes with a tiny request/reply protocol and hard timeouts, so that a bench run never hangs.
import { fork, type ChildProcess } from 'node:child_process';
import cluster, { type Worker } from 'node:cluster';

export interface CallMessage {
  t: 'call';
  id: number;
  fn: string;
  args: unknown;
}
export interface ReplyMessage {
  t: 'reply';
  id: number;
  ok: boolean;
  value?: unknown;
  error?: string;
}

export interface Child {
  readonly proc: ChildProcess;
  readonly pid: number;
  /** Calls a function registered in the child; rejects (and kills the child) after timeoutMs. */
  call<T = unknown>(fn: string, args?: unknown, timeoutMs?: number): Promise<T>;
  send(message: unknown): void;
  kill(): void;
  /** Resolves when the process has exited. */
  readonly exited: Promise<void>;
}

export interface ForkOptions {
  defaultTimeoutMs: number;
  /** Messages that are not replies (e.g. manager requests, propagation acks). */
  onMessage?: (child: Child, message: unknown) => void;
  /** Own process group, so the whole tree can be killed at once (used for job hosts). */
  detached?: boolean;
  env?: NodeJS.ProcessEnv;
}

export function forkChild(script: string, options: ForkOptions): Child {
  const proc = fork(script, [], {
    execArgv: ['--expose-gc'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    detached: options.detached ?? false,
    env: options.env ?? process.env,
    serialization: 'json',
  });
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  let seq = 0;
  let dead = false;
  const exited = new Promise<void>((resolve) => {
    proc.once('exit', (code, signal) => {
      dead = true;
      for (const p of pending.values()) {
        clearTimeout(p.timer);
        p.reject(new Error(`child ${proc.pid} exited (code ${code}, signal ${signal}) before replying`));
      }
      pending.clear();
      resolve();
    });
    proc.once('error', () => resolve());
  });
  const kill = (): void => {
    if (dead || proc.pid === undefined) return;
    try {
      if (options.detached) process.kill(-proc.pid, 'SIGKILL');
      else proc.kill('SIGKILL');
    } catch {
      try {
        proc.kill('SIGKILL');
      } catch {
        /* already gone */
      }
    }
  };
  const child: Child = {
    proc,
    pid: proc.pid ?? -1,
    exited,
    kill,
    send(message) {
      if (!dead && proc.connected) proc.send(message as never);
    },
    call<T>(fn: string, args?: unknown, timeoutMs = options.defaultTimeoutMs): Promise<T> {
      if (dead) return Promise.reject(new Error(`child ${proc.pid} is not running`));
      const id = ++seq;
      return new Promise<T>((resolve, reject) => {
        const timer = setTimeout(() => {
          pending.delete(id);
          kill();
          reject(new Error(`timeout after ${timeoutMs} ms in ${fn} (child ${proc.pid} killed)`));
        }, timeoutMs);
        pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer });
        const msg: CallMessage = { t: 'call', id, fn, args };
        proc.send(msg);
      });
    },
  };
  proc.on('message', (message: unknown) => {
    const m = message as Partial<ReplyMessage>;
    if (m && m.t === 'reply' && typeof m.id === 'number') {
      const p = pending.get(m.id);
      if (!p) return;
      pending.delete(m.id);
      clearTimeout(p.timer);
      if (m.ok) p.resolve(m.value);
      else p.reject(new Error(m.error ?? 'error in child'));
      return;
    }
    options.onMessage?.(child, message);
  });
  return child;
}


/** Child side: serve calls from the parent; exits when the parent goes away. */
export function serve(handlers: Record<string, (args: never) => unknown>): void {
  if (!process.send) throw new Error('this script must be started with child_process.fork');
  process.on('disconnect', () => process.exit(3));
  process.on('message', (message: unknown) => {
    const m = message as Partial<CallMessage>;
    if (!m || m.t !== 'call' || typeof m.id !== 'number' || typeof m.fn !== 'string') return;
    const id = m.id;
    const handler = handlers[m.fn];
    const reply = (r: ReplyMessage): void => {
      if (process.connected) process.send!(r);
    };
    if (!handler) {
      reply({ t: 'reply', id, ok: false, error: `unknown function ${m.fn}` });
      return;
    }
    Promise.resolve()
      .then(() => handler(m.args as never))
      .then(
        (value) => reply({ t: 'reply', id, ok: true, value }),
        (err: unknown) => reply({ t: 'reply', id, ok: false, error: errorText(err) }),
      );
  });
}

export function errorText(err: unknown): string {
  if (err instanceof Error) return `${err.name}: ${err.message}`;
  return String(err);
}

export function gc(): void {
  const g = (globalThis as { gc?: () => void }).gc;
  if (g) {
    g();
    g();
  }
}

/** Resident set size of this process after a full GC, in bytes. */
export function rssAfterGc(): number {
  gc();
  return process.memoryUsage().rss;
}

/** Entry point of a section run as a node:cluster primary and its workers: runs the one this process is, exits 1 on a failure. */
export function clusterMain(primary: () => Promise<void>, worker: () => Promise<void>): void {
  const fail = (e: unknown): void => {
    console.error(e);
    process.exit(1);
  };
  if (cluster.isPrimary) primary().then(() => process.exit(0), fail);
  else worker().catch(fail);
}

/** Waits for one message of `type` from every cluster worker (rejects if one exits first). */
export function fromEachWorker<M extends { type: string }>(workers: readonly Worker[], type: string, label: string): Promise<M[]> {
  return Promise.all(
    workers.map(
      (w) =>
        new Promise<M>((resolve, reject) => {
          const on = (m: M): void => {
            if (m.type === type) {
              w.off('message', on);
              resolve(m);
            }
          };
          w.on('message', on);
          w.once('exit', (code) => reject(new Error(`${label} worker exited (${code}) before ${type}`)));
        }),
    ),
  );
}

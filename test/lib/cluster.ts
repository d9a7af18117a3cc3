// node:cluster from a test: forks N workers running a fixture, collects their IPC messages, and stops them.

import cluster, { type Worker } from 'node:cluster';
import { fixture, scaled, waitFor, type ChildMessage } from './helpers.js';

/** A running cluster of workers of one fixture (given its command as JSON in argv[2]). */
export class TestCluster implements AsyncDisposable {
  readonly workers: Worker[] = [];
  /** Every message, with the cluster id of the worker that sent it. */
  readonly messages: Array<ChildMessage & { worker: number }> = [];
  readonly #exits: Array<Promise<number | null>> = [];
  stderr = '';

  constructor(script: string, command: object, n: number) {
    cluster.setupPrimary({ exec: fixture(script), args: [JSON.stringify(command)], silent: true });
    for (let i = 0; i < n; i++) {
      const w = cluster.fork();
      w.process.stderr?.on('data', (d: Buffer) => (this.stderr += d.toString()));
      w.on('message', (m: ChildMessage) => this.messages.push({ ...m, worker: w.id }));
      this.#exits.push(new Promise((resolve) => w.on('exit', (code) => resolve(code))));
      this.workers.push(w);
    }
  }

  /** The messages of `type`, one from each worker, once every worker has sent it. */
  async all(type: string, timeoutMs = 30_000): Promise<Array<ChildMessage & { worker: number }>> {
    await waitFor(
      () => {
        const failed = this.messages.find((m) => m.type === 'error');
        if (failed !== undefined) throw new Error(`worker ${failed.worker} failed: ${JSON.stringify(failed)}\n${this.stderr}`);
        if (this.workers.some((w) => w.process.exitCode !== null)) throw new Error(`a worker exited before sending ${type}:\n${this.stderr}`);
        return this.workers.every((w) => this.messages.some((m) => m.type === type && m.worker === w.id));
      },
      `${type} from ${this.workers.length} workers`,
      timeoutMs,
    );
    return this.workers.map((w) => this.messages.find((m) => m.type === type && m.worker === w.id)!);
  }

  send(m: object): void {
    for (const w of this.workers) w.send(m);
  }

  /** Asks the workers to stop (`{ type: 'stop' }`), waits for their exit codes, and kills any that hang. */
  async stop(): Promise<Array<number | null>> {
    for (const w of this.workers) if (w.isConnected()) w.send({ type: 'stop' });
    const timer = setTimeout(() => this.workers.forEach((w) => w.process.kill('SIGKILL')), scaled(15_000));
    const codes = await Promise.all(this.#exits);
    clearTimeout(timer);
    return codes;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}

/** In a worker: parses the command, reports failures as `{ type: 'error' }`, and resolves on `{ type: 'stop' }`. */
export function workerSide<C>(): { cmd: C; send: (m: object) => void; stopped: Promise<void> } {
  const send = (m: object): void => void process.send?.(m);
  process.on('uncaughtException', (e) => {
    send({ type: 'error', message: String(e?.stack ?? e) });
    process.exitCode = 1;
  });
  const stopped = new Promise<void>((resolve) =>
    process.on('message', (m: { type?: string }) => {
      if (m?.type === 'stop') resolve();
    }),
  );
  return { cmd: JSON.parse(process.argv[2]!) as C, send, stopped };
}

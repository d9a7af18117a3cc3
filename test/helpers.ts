// Test helpers: unique names, condition waits with timeouts, child processes with IPC, /dev/shm snapshots.

import { fork, type ChildProcess } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
let counter = 0;

export function uniqueName(prefix = 't'): string {
  return `${prefix}_${process.pid}_${++counter}_${Math.random().toString(36).slice(2, 8)}`;
}

export function fixture(name: string): string {
  return join(here, 'fixtures', `${name}.js`);
}

export function shmEntries(filter?: string): string[] {
  return readdirSync('/dev/shm')
    .filter((f) => f.startsWith('ud.') && (filter === undefined || f.includes(filter)))
    .sort();
}

export async function waitFor(
  cond: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 15_000,
  intervalMs = 2,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

export interface ChildMessage {
  type: string;
  [k: string]: unknown;
}

/** A forked fixture process speaking JSON messages over IPC. */
export class Child {
  readonly proc: ChildProcess;
  readonly messages: ChildMessage[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr = '';

  /** as: run the child as another user (needs root). */
  constructor(script: string, command: object, timeoutMs = 60_000, as?: { uid: number; gid: number }) {
    this.proc = fork(fixture(script), [JSON.stringify(command)], { stdio: ['ignore', 'inherit', 'pipe', 'ipc'], ...as });
    this.proc.stderr!.on('data', (d: Buffer) => (this.stderr += d.toString()));
    this.proc.on('message', (m) => this.messages.push(m as ChildMessage));
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), timeoutMs);
    this.exited = new Promise((resolve) => {
      this.proc.on('exit', (code, signal) => {
        clearTimeout(timer);
        resolve({ code, signal });
      });
    });
  }

  async message(type: string, timeoutMs = 20_000): Promise<ChildMessage> {
    let found: ChildMessage | undefined;
    await waitFor(
      () => {
        found = this.messages.find((m) => m.type === type);
        if (found === undefined && this.messages.some((m) => m.type === 'error')) {
          throw new Error(`child failed: ${JSON.stringify(this.messages.find((m) => m.type === 'error'))}`);
        }
        return found !== undefined || this.proc.exitCode !== null;
      },
      `message ${type} from child`,
      timeoutMs,
    );
    if (found === undefined) throw new Error(`child exited (${this.proc.exitCode}) before sending ${type}: ${this.stderr}`);
    return found;
  }

  send(m: object | string): void {
    this.proc.send(m);
  }

  kill9(): Promise<unknown> {
    this.proc.kill('SIGKILL');
    return this.exited;
  }

  async done(): Promise<void> {
    const r = await this.exited;
    if (r.code !== 0) throw new Error(`child exited with ${r.code ?? r.signal}: ${this.stderr}`);
  }
}

/** Runs a fixture to completion and returns its messages. */
export async function runChild(script: string, command: object, timeoutMs = 60_000): Promise<ChildMessage[]> {
  const c = new Child(script, command, timeoutMs);
  await c.done();
  return c.messages;
}

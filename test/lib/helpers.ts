// Test helpers: unique names, condition waits with timeouts, child processes with IPC, /dev/shm snapshots.

import { fork, type ChildProcess } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
let counter = 0;

/**
 * How much longer timing-based waits may take: ULTRADICT_TEST_TIME_SCALE (set by .ci/run for the emulated
 * arm64 run, where everything is several times slower). Only deadlines scale; what is asserted does not.
 */
export const TIME_SCALE = Math.max(1, Number(process.env.ULTRADICT_TEST_TIME_SCALE) || 1);
export function scaled(ms: number): number {
  return ms * TIME_SCALE;
}

/**
 * The share of their rounds the long randomized tests run: ULTRADICT_TEST_ROUNDS, from 0.1 to 1 (default 1;
 * .ci/run's emulated arm64 run sets 0.5, and the runner prints a line saying so). Fewer kill trials, fuzz
 * inputs, leak cycles and full-/dev/shm trials, every case and plan still covered: what is asserted of each
 * one is unchanged, and the x64 runs do all of them.
 */
export const ROUNDS = Math.min(1, Math.max(0.1, Number(process.env.ULTRADICT_TEST_ROUNDS) || 1));
export function rounds(n: number, min = 1): number {
  return Math.max(min, Math.round(n * ROUNDS));
}

export function uniqueName(prefix = 't'): string {
  return `${prefix}_${process.pid}_${++counter}_${Math.random().toString(36).slice(2, 8)}`;
}

export function fixture(name: string): string {
  return join(here, '..', 'fixtures', `${name}.js`);
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
  timeoutMs = scaled(timeoutMs);
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
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), scaled(timeoutMs));
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

/**
 * Attaches to `name` in a fresh process (handles of one dict in one thread share their engine, so a
 * second, independent reader must live elsewhere): its contents as JSON, or the error class it got.
 */
export async function attachElsewhere(name: string): Promise<{ json?: string; error?: string; message?: string }> {
  const c = new Child('child', { op: 'json', name });
  await c.exited;
  const m = c.messages.find((x) => x.type === 'json' || x.type === 'error');
  if (m === undefined) throw new Error(`the attaching process said nothing (exit ${c.proc.exitCode ?? c.proc.signalCode}): ${c.stderr}`);
  return m.type === 'json' ? { json: m.json as string } : { error: m.name as string, message: m.message as string };
}

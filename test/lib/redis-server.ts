// Replication test helpers: a real redis-server, `ultradict bridge` processes, a pausable proxy, shared checks.
// The redis-server (the Debian package) runs on a free loopback port with AOF fsync on every write, so that
// a restart keeps every acknowledged write (stop, kill -9, restart on the same port).

import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, Socket, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { Redis } from 'ioredis';
import { scaled, waitFor } from './helpers.js';
import { CLI } from './paths.js';
import { freePort, listenOnLoopback, which } from './servers.js';

export const REDIS_SKIP_REASON =
  'redis-server is not installed, so the Redis tests are skipped: apt-get install redis-server to run them ' +
  '(with ULTRADICT_REQUIRE_REDIS=1, as in CI, a missing redis-server fails them instead)';

/**
 * The skip reason for the tests that need redis-server when it is not installed, else false. Never a
 * skip under ULTRADICT_REQUIRE_REDIS=1 (CI): the tests then run and fail on the missing server.
 */
export function redisSkip(): string | false {
  if (process.env.ULTRADICT_REQUIRE_REDIS === '1') return false;
  return which('redis-server') === null ? REDIS_SKIP_REASON : false;
}

/**
 * One redis-server and an admin connection for the tests of a file: started before them and stopped after,
 * unless the Redis tests are skipped (then nothing starts). `set` receives both. Returns the skip reason
 * (or false), for the file's tests: `describe('…', { skip }, …)`.
 */
export function redisForFile(set: (server: RedisServer, admin: Redis) => void): string | false {
  const skip = redisSkip();
  let server: RedisServer | undefined;
  let admin: Redis | undefined;
  before(async () => {
    if (skip) return;
    server = await RedisServer.start();
    admin = new Redis(server.url, { maxRetriesPerRequest: null });
    admin.on('error', () => {});
    set(server, admin);
  });
  after(async () => {
    admin?.disconnect();
    await server?.close();
  });
  return skip;
}

export function redisServerPath(): string {
  const p = which('redis-server');
  if (p === null) {
    throw new Error('redis-server is not installed: the Redis tests need it (apt-get install redis-server; .ci/run installs it)');
  }
  return p;
}

/** True once the server answers PING on the port. */
async function answers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = new Socket();
    let buf = '';
    const done = (ok: boolean): void => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(500, () => done(false));
    sock.once('error', () => done(false));
    sock.on('data', (d) => {
      buf += d.toString();
      if (buf.includes('PONG') || buf.startsWith('-NOAUTH')) done(true); // up (NOAUTH: it wants a password)
      else if (buf.startsWith('-')) done(false); // -LOADING: still reading its AOF
    });
    sock.connect(port, '127.0.0.1', () => sock.write('PING\r\n'));
  });
}

export class RedisServer {
  proc: ChildProcess | null = null;
  readonly dir = mkdtempSync(join(tmpdir(), 'ud-redis-'));
  log = '';

  private constructor(
    readonly port: number,
    /** more redis-server arguments (later ones override the defaults: e.g. --appendonly no, --requirepass X) */
    readonly extra: string[] = [],
  ) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  static async start(extra: string[] = []): Promise<RedisServer> {
    const s = new RedisServer(await freePort(), extra);
    await s.launch();
    return s;
  }

  async launch(): Promise<void> {
    const args = ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'yes', '--appendfsync', 'always', '--dir', this.dir, ...this.extra];
    const p = spawn(redisServerPath(), args, { stdio: ['ignore', 'pipe', 'pipe'] });
    p.stdout!.on('data', (d: Buffer) => (this.log = (this.log + d.toString()).slice(-4000)));
    p.stderr!.on('data', (d: Buffer) => (this.log = (this.log + d.toString()).slice(-4000)));
    this.proc = p;
    try {
      await waitFor(() => answers(this.port), `redis-server on port ${this.port}`, 15_000, 20);
    } catch (e) {
      throw new Error(`${(e as Error).message}\n${this.log}`);
    }
  }

  /** Stops the server (SIGTERM, or SIGKILL) and waits for it to exit. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const p = this.proc;
    if (p === null) return;
    this.proc = null;
    if (p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise((r) => p.once('exit', r));
    p.kill(signal);
    await exited;
  }

  async restart(signal: NodeJS.Signals = 'SIGKILL', downMs = 0): Promise<void> {
    await this.stop(signal);
    if (downMs > 0) await new Promise((r) => setTimeout(r, downMs));
    await this.launch();
  }

  async close(): Promise<void> {
    await this.stop('SIGKILL');
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** `await using server = await RedisServer.start()`: close() at the end of the block. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** Sorted [key, value] pairs: what "identical contents" compares. */
export function contents(d: Iterable<[unknown, unknown]>): string {
  return JSON.stringify([...d].sort((a, b) => (String(a[0]) < String(b[0]) ? -1 : 1)));
}

/** The contents with the keys of every dict sorted: iteration order may differ between hosts (see docs/replication.md). */
export function canon(d: { toJSON(): Record<string, unknown> }): string {
  const sortDeep = (v: unknown): unknown =>
    v !== null && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(
          Object.keys(v)
            .sort()
            .map((k) => [k, sortDeep((v as Record<string, unknown>)[k])]),
        )
      : v;
  return JSON.stringify(sortDeep(d.toJSON()));
}

/** The final value of each of a writer's own keys (`${id}/${i % keys}` = i): the last i it wrote there. */
export function expectedOwn(id: string, n: number, keys = 40): Map<string, number> {
  const m = new Map<string, number>();
  for (let i = 1; i <= n; i++) m.set(`${id}/${i % keys}`, i);
  return m;
}

/** (origin, seq) of every entry still in the stream must be unique: each write landed once. Returns the count. */
export async function assertNoDuplicates(admin: Redis, stream: string): Promise<number> {
  const entries = (await admin.xrange(`ultradict:{${stream}}:stream`, '-', '+')) as [string, string[]][];
  const seen = new Set<string>();
  for (const [id, f] of entries) {
    const k = `${f[f.indexOf('o') + 1]}/${f[f.indexOf('s') + 1]}`;
    assert.ok(!seen.has(k), `entry ${id} repeats ${k}`);
    seen.add(k);
  }
  return entries.length;
}

/** `ultradict bridge NAME URL --stream S --id ID --json` as a separate process. */
export class BridgeProc {
  readonly proc: ChildProcess;
  out = '';
  err = '';
  readonly exited: Promise<number | null>;

  constructor(url: string, name: string, stream: string, id: string) {
    this.proc = spawn(process.execPath, [CLI, 'bridge', name, url, '--stream', stream, '--id', id, '--json', '--connect-timeout', String(scaled(5000))], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc.stdout!.on('data', (d: Buffer) => (this.out += d.toString()));
    this.proc.stderr!.on('data', (d: Buffer) => (this.err += d.toString()));
    this.exited = new Promise((r) => this.proc.on('exit', (code) => r(code)));
  }

  static async start(url: string, name: string, stream: string, id: string): Promise<BridgeProc> {
    const b = new BridgeProc(url, name, stream, id);
    await waitFor(() => {
      if (b.proc.exitCode !== null) throw new Error(`bridge exited ${b.proc.exitCode}: ${b.err}`);
      return b.out.includes('"type":"ready"');
    }, `bridge ${id} ready`, 20_000);
    return b;
  }

  /** SIGTERM: forwards what is left and exits 0. */
  async stop(): Promise<void> {
    this.proc.kill('SIGTERM');
    const code = await this.exited;
    assert.equal(code, 0, `bridge exit code (stderr: ${this.err})`);
  }

  async kill9(): Promise<void> {
    this.proc.kill('SIGKILL');
    await this.exited;
  }
}

/**
 * A TCP proxy on loopback in front of a redis-server that can be paused: while paused, no byte moves in
 * either direction (a host cut off by a slow network). Its clients' commands and replies are delivered,
 * in order, on resume.
 */
export class PausableProxy {
  private readonly server: Server;
  private readonly pairs = new Set<[Socket, Socket]>();
  private paused = false;
  private readonly held: (() => void)[] = [];

  private constructor(readonly target: number, readonly port: number, server: Server) {
    this.server = server;
  }

  static async start(targetPort: number): Promise<PausableProxy> {
    const server = createServer();
    const port = await listenOnLoopback(server);
    const p = new PausableProxy(targetPort, port, server);
    server.on('connection', (c) => p.accept(c));
    return p;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  private accept(c: Socket): void {
    const u = new Socket();
    const pair: [Socket, Socket] = [c, u];
    this.pairs.add(pair);
    const relay = (from: Socket, to: Socket): void => {
      from.on('data', (d: Buffer) => {
        if (this.paused) this.held.push(() => to.write(d));
        else to.write(d);
      });
    };
    relay(c, u);
    relay(u, c);
    const end = (): void => {
      this.pairs.delete(pair);
      c.destroy();
      u.destroy();
    };
    c.on('error', end).on('close', end);
    u.on('error', end).on('close', end);
    u.connect(this.target, '127.0.0.1');
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
    for (const f of this.held.splice(0)) f();
  }

  async close(): Promise<void> {
    this.resume();
    for (const [c, u] of this.pairs) {
      c.destroy();
      u.destroy();
    }
    await new Promise((r) => this.server.close(r));
  }

  /** `await using proxy = await PausableProxy.start(port)`: close() at the end of the block. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

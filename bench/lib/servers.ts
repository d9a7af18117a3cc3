// Starts redis-server and memcached on free loopback ports for the duration of a run, and always
// stops them (normal end, error, signal, or exit of the orchestrator).
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { readFileSync } from 'node:fs';
import { freePort } from '../../test/lib/servers.js';
import { sleep } from './timing.js';

export interface Server {
  name: string;
  port: number;
  pid: number;
  stop(): Promise<void>;
  /** Resident memory of the server process in bytes (from /proc). */
  rss(): number | null;
}

const running = new Set<ChildProcess>();

/** Kills every server still running; synchronous so it can run from an 'exit' handler. */
export function killAllServersSync(): void {
  for (const p of running) {
    try {
      p.kill('SIGKILL');
    } catch {
      /* gone */
    }
  }
  running.clear();
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    const done = (ok: boolean): void => {
      s.destroy();
      resolve(ok);
    };
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
    s.setTimeout(500, () => done(false));
  });
}

export function processRss(pid: number): number | null {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

async function startServer(name: string, binary: string, args: (port: number) => string[], timeoutMs = 5000): Promise<Server> {
  const port = await freePort();
  const proc = spawn(binary, args(port), { stdio: ['ignore', 'ignore', 'pipe'] });
  running.add(proc);
  let stderr = '';
  proc.stderr?.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-2000);
  });
  let exited = false;
  const exitPromise = new Promise<void>((resolve) => {
    proc.once('exit', () => {
      exited = true;
      running.delete(proc);
      resolve();
    });
    proc.once('error', () => {
      exited = true;
      running.delete(proc);
      resolve();
    });
  });
  const deadline = Date.now() + timeoutMs;
  while (!(await canConnect(port))) {
    if (exited || Date.now() > deadline) {
      proc.kill('SIGKILL');
      throw new Error(`${name} did not start on 127.0.0.1:${port}: ${stderr.trim() || 'timeout'}`);
    }
    await sleep(20);
  }
  return {
    name,
    port,
    pid: proc.pid ?? -1,
    rss: () => (proc.pid ? processRss(proc.pid) : null),
    async stop() {
      if (exited) return;
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 2000);
      await exitPromise;
      clearTimeout(t);
    },
  };
}

export function startRedis(dir: string): Promise<Server> {
  return startServer('redis-server', 'redis-server', (port) => [
    '--port', String(port),
    '--bind', '127.0.0.1',
    '--protected-mode', 'yes',
    '--save', '',
    '--appendonly', 'no',
    '--daemonize', 'no',
    '--dir', dir,
    '--loglevel', 'warning',
  ]);
}

export function startMemcached(): Promise<Server> {
  const asRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  return startServer('memcached', 'memcached', (port) => [
    '-l', '127.0.0.1',
    '-p', String(port),
    '-U', '0',
    '-m', '4096', // MB: room for the 1 M-key growth workload without evictions
    ...(asRoot ? ['-u', 'nobody'] : []),
  ]);
}

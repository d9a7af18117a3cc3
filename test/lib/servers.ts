// Server binaries on the PATH and free loopback TCP ports: shared by the tests, their runner and the bench harness.

import { spawnSync } from 'node:child_process';
import { createServer, type AddressInfo, type Server } from 'node:net';

/** The path of `binary` on the PATH (as `command -v` finds it), or null. */
export function which(binary: string): string | null {
  const r = spawnSync('sh', ['-c', 'command -v "$1"', 'sh', binary], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  const p = (r.stdout ?? '').trim();
  return r.status !== 0 || p === '' ? null : p;
}

/** Makes `server` listen on a port of 127.0.0.1 that the system picks; resolves with that port. */
export function listenOnLoopback(server: Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port));
  });
}

/** A port of 127.0.0.1 that was free a moment ago: for a server that is started on it next. */
export async function freePort(): Promise<number> {
  const s = createServer();
  s.unref();
  const port = await listenOnLoopback(s);
  await new Promise((resolve) => s.close(resolve));
  return port;
}

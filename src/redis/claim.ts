// One bridge per local dict on a host: a bridge claims its dict by listening on an abstract Unix socket
// named after the dict's incarnation (freed by the kernel when the process dies, even by kill -9). A
// second bridge finds the name taken, asks the first who it is, and is refused with a clear error;
// `ultradict inspect` asks the same way for the running bridge's counters.

import { createConnection, createServer, type Server } from 'node:net';
import { ReplicationError } from '../errors.js';

/** The socket name ('\0' first: Linux's abstract namespace, no file) for one incarnation of a dict. */
function socketName(name: string, tag: string): string {
  return `\0ultradict-bridge/${tag}/${name}`;
}

export interface Claim {
  release(): void;
}

/** Who holds a claim: what the bridge answers on its socket (its pid, origin and counters). */
export interface Holder {
  pid: number;
  origin: string;
  [counter: string]: unknown;
}

/** The bridge running on the local dict `name` (incarnation `tag`), or null if there is none. */
export function bridgeOf(name: string, tag: string): Promise<Holder | null> {
  return askHolder(socketName(name, tag));
}

async function askHolder(path: string): Promise<Holder | null> {
  return new Promise((resolve) => {
    let buf = '';
    const s = createConnection(path);
    const done = (h: Holder | null): void => {
      s.destroy();
      resolve(h);
    };
    s.setTimeout(1000, () => done(null));
    s.on('error', () => done(null));
    s.on('data', (d: Buffer) => (buf += d.toString()));
    s.on('end', () => {
      try {
        done(JSON.parse(buf) as Holder);
      } catch {
        done(null);
      }
    });
  });
}

/**
 * Claims the local dict `name` (incarnation `tag`) for the bridge `origin`; rejects with
 * ReplicationError if another bridge holds it. The claim lasts until release() or the process ends.
 * Whoever connects gets {pid, origin, ...counters()}.
 */
export async function claimDict(name: string, tag: string, origin: string, counters: () => Record<string, unknown> = () => ({})): Promise<Claim> {
  const path = socketName(name, tag);
  const server: Server = createServer((c) => {
    c.on('error', () => {});
    let answer: Holder = { pid: process.pid, origin };
    try {
      answer = { ...counters(), pid: process.pid, origin };
    } catch {
      // closing: pid and origin only
    }
    c.end(JSON.stringify(answer));
  });
  server.on('error', () => {}); // after listening: nothing to report (the claim holds while it listens)
  const err = await new Promise<NodeJS.ErrnoException | null>((resolve) => {
    server.once('error', (e: NodeJS.ErrnoException) => resolve(e));
    server.listen(path, () => resolve(null));
  });
  if (err !== null) {
    if (err.code !== 'EADDRINUSE') throw new ReplicationError(`cannot register the bridge of ${JSON.stringify(name)}: ${err.message}`, { cause: err });
    const h = await askHolder(path);
    const who = h === null ? 'another bridge' : `the bridge ${h.origin} (pid ${h.pid})`;
    throw new ReplicationError(
      `${who} already runs on the local dict ${JSON.stringify(name)}; run one bridge per host per dict (a second one would forward every local write twice, or with the same --id reload the dict again and again)`,
    );
  }
  server.unref();
  return {
    release: () => {
      server.close();
    },
  };
}

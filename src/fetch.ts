// fetch(): a missing value computed once on the machine. The first caller claims the key in the table of
// loads (engine/loads.ts) and runs the loader; the callers of every other thread and process wait for its
// value or its failure, and take over the claim of a loader that died.

import { setTimeout as sleep } from 'node:timers/promises';
import { abortError } from './args.js';
import type { Key } from './codec/ops.js';
import type { Loads } from './engine/loads.js';
import { LoadFailedError } from './errors.js';

/** How often a waiting caller looks at the load it waits for (and at its loader's liveness). */
const POLL_MS = 10;

/** What fetch needs of a dict: reads, a locked scope, and the write of the loaded value. */
export interface FetchTarget<V> {
  has(key: Key): boolean;
  get(key: Key): V | undefined;
  withLock<R>(fn: () => R): R;
  readonly closed: boolean;
}

/** One fetch: the dict, its table of loads, the key, the loader and the write of the loaded value. */
export interface FetchCall<V> {
  d: FetchTarget<V>;
  loads: Loads;
  key: Key;
  loader: (key: Key) => V | Promise<V>;
  write: (value: V) => void;
}

/** The fetches of a key running in this thread, per engine: a second one waits for the first. */
const running = new WeakMap<Loads, Map<Key, Promise<unknown>>>();

export function fetchOnce<V>(call: FetchCall<V>, signal: AbortSignal | undefined): Promise<V> {
  const { loads, key } = call;
  let mine = running.get(loads);
  if (mine === undefined) running.set(loads, (mine = new Map()));
  const inFlight = mine.get(key) as Promise<V> | undefined;
  if (inFlight !== undefined) return withSignal(inFlight, signal);
  // shared by every call of this thread: each call's own signal only ends its own wait (withSignal)
  const p = fetchAcrossProcesses(call);
  const done = (): void => {
    if (mine.get(key) === p) mine.delete(key);
  };
  mine.set(key, p);
  p.then(done, done);
  return withSignal(p, signal);
}

/** `p`, or an AbortError as soon as `signal` aborts (p goes on for the others waiting for it). */
function withSignal<V>(p: Promise<V>, signal: AbortSignal | undefined): Promise<V> {
  if (signal === undefined) return p;
  if (signal.aborted) return Promise.reject(abortError(signal));
  return new Promise<V>((resolve, reject) => {
    const onAbort = (): void => reject(abortError(signal));
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}

async function fetchAcrossProcesses<V>(call: FetchCall<V>): Promise<V> {
  const { d, loads, key } = call;
  for (;;) {
    const claim = d.withLock(() => (d.has(key) ? 'present' : loads.claim(key)));
    if (claim === 'present') return d.get(key) as V;
    if (claim !== null && claim.mine) return load(call, claim.slot, claim.seq);
    // another thread loads it (or every slot is busy): wait for its value, its failure or its loader's death
    if (claim === null) {
      await sleep(POLL_MS);
      continue;
    }
    try {
      for (;;) {
        await sleep(POLL_MS);
        if (d.has(key)) return d.get(key) as V;
        const status = d.withLock(() => loads.status(claim.slot, claim.seq));
        if (status.running) continue;
        if (status.failed !== null) throw new LoadFailedError(`the loader of ${JSON.stringify(key)} failed in another thread or process: ${status.failed}`);
        break; // it ended without a value here yet, or its loader died: look again (and claim it if still missing)
      }
    } finally {
      if (!d.closed) d.withLock(() => loads.leave(claim.slot, claim.seq));
    }
  }
}

/** Runs the loader of a claimed key and writes its value (or records its failure for the waiters). */
async function load<V>({ d, loads, key, loader, write }: FetchCall<V>, slot: number, seq: number): Promise<V> {
  let value: V;
  try {
    value = await loader(key);
    d.withLock(() => {
      write(value);
      loads.finish(slot, seq);
    });
  } catch (e) {
    if (!d.closed) d.withLock(() => loads.fail(slot, seq, (e as Error)?.message ?? String(e)));
    throw e;
  }
  return d.get(key) as V;
}

// Entry point of ultradict/express-rate-limit: an express-rate-limit Store whose hit counts every process of the machine shares (needs express-rate-limit).

import type { ClientRateLimitInfo, Options, Store } from 'express-rate-limit';
import type { UltraDict, UltraDictOptions } from '../dict.js';
import { requirePeer } from '../adapters/peer.js';
import { deleteByPrefix, openDict } from '../adapters/dict-option.js';
import { setWithTtl } from '../adapters/expiry.js';

requirePeer('ultradict/express-rate-limit', 'express-rate-limit');

export { MissingPeerError } from '../adapters/peer.js';

export interface UltraDictStoreOptions {
  /** An open dict (left open on shutdown), or the options of one to create or attach (default: a random name: pass a name to share it). */
  dict?: UltraDict<unknown> | UltraDictOptions;
  /** Prepended to every client key in the dict (default `'rl:'`). */
  prefix?: string;
}

/** A client's window as stored: [hits, reset time in ms since the epoch]. */
type Window = readonly [number, number];

/**
 * An express-rate-limit store on an UltraDict: every worker of a cluster (every process attached to the
 * dict) counts into the same window. A client's first hit opens a window of `windowMs`, which is also
 * the key's TTL (where ultradict has expiry), so finished windows leave the dict; each check is one
 * read-modify-write in a transaction (under the dict's lock; a transaction, not withLock: a compute()
 * nested in withLock() is several times slower).
 */
export class UltraDictStore implements Store {
  /** The counts are shared: a key incremented in one process is counted in all. */
  readonly localKeys = false;
  readonly prefix: string;
  readonly dict: UltraDict<unknown>;
  windowMs = 60_000;
  readonly #owned: boolean;

  constructor(options: UltraDictStoreOptions = {}) {
    const d = openDict(options.dict);
    this.dict = d.dict;
    this.#owned = d.owned;
    this.prefix = options.prefix ?? 'rl:';
  }

  /** Called by express-rate-limit with the limiter's options: takes the window length. */
  init(options: Options): void {
    this.windowMs = options.windowMs;
  }

  /** The client's current window, or undefined if it has none (or it has ended). */
  #current(key: string, now: number): Window | undefined {
    const w = this.dict.get(key) as Window | undefined;
    return w !== undefined && w[1] > now ? w : undefined;
  }

  get(key: string): ClientRateLimitInfo | undefined {
    const w = this.#current(this.prefix + key, Date.now());
    return w && info(w);
  }

  increment(key: string): ClientRateLimitInfo {
    const k = this.prefix + key;
    const now = Date.now();
    return this.dict.transaction(() => {
      const w = this.#current(k, now);
      if (w === undefined) {
        const opened: Window = [1, now + this.windowMs];
        setWithTtl(this.dict, k, opened, this.windowMs);
        return info(opened);
      }
      const next: Window = [w[0] + 1, w[1]];
      this.dict.compute(k, () => next); // compute keeps the key's expiry
      return info(next);
    });
  }

  decrement(key: string): void {
    const k = this.prefix + key;
    const now = Date.now();
    this.dict.transaction(() => {
      const w = this.#current(k, now);
      if (w !== undefined && w[0] > 0) this.dict.compute(k, () => [w[0] - 1, w[1]] as Window);
    });
  }

  resetKey(key: string): void {
    this.dict.delete(this.prefix + key);
  }

  /** Removes every client's window (the keys with this store's prefix), as one atomic batch. */
  resetAll(): void {
    deleteByPrefix(this.dict, this.prefix);
  }

  /** Closes the dict if this store opened it. */
  shutdown(): void {
    if (this.#owned && !this.dict.closed) this.dict.close();
  }
}

function info(w: Window): ClientRateLimitInfo {
  return { totalHits: w[0], resetTime: new Date(w[1]) };
}

export default UltraDictStore;

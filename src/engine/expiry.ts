// Per-key deadlines of a dict's root keys (absolute wall-clock ms, Date.now()): the engine's side-table
// of key metadata beside the local copy, a min-heap that finds the due keys, and the keys expired here
// whose delete no writer has published yet.

import type { Key } from '../codec/ops.js';

/** The absolute deadline of a write made now with a time to live of `ttl` ms. */
export function deadlineAfter(ttl: number): number {
  return Date.now() + ttl;
}

/** Most EXPIRED deletes one write publishes (the rest go with the next writes): bounded work per write. */
export const EXPIRED_PER_WRITE = 256;

export class Expiry {
  /** key → deadline (ms since the epoch); only root keys that have one. */
  readonly deadlines = new Map<Key, number>();
  /**
   * Keys removed here because their deadline passed, with their values, until a published EXPIRED (or a
   * later write of the key) is seen. A writer whose clock read came just before the deadline may still
   * publish an EXPIRE of such a key: then its value comes back (every process ends up agreeing).
   */
  readonly unpublished = new Map<Key, unknown>();
  // min-heap of (deadline, key); entries whose deadline no longer matches `deadlines` are stale and skipped
  private ds: number[] = [];
  private ks: Key[] = [];

  /** The earliest deadline in the heap (Infinity: none); may belong to a stale entry. */
  get next(): number {
    return this.ds.length > 0 ? this.ds[0]! : Infinity;
  }

  get(k: Key): number | undefined {
    return this.deadlines.get(k);
  }

  set(k: Key, deadline: number): void {
    this.deadlines.set(k, deadline);
    this.unpublished.delete(k);
    this.push(deadline, k);
    // stale entries (keys re-set, deleted or given another deadline) are dropped once they outnumber the live ones
    if (this.ds.length > 2 * this.deadlines.size + 1024) this.rebuild();
  }

  /** The key was written without a deadline, deleted, or its expiry removed. */
  forget(k: Key): void {
    this.deadlines.delete(k);
    this.unpublished.delete(k);
  }

  /** Replaces the table with the deadlines of a loaded dump. */
  load(deadlines: ReadonlyMap<Key, number>): void {
    this.clear();
    for (const [k, d] of deadlines) this.set(k, d);
  }

  clear(): void {
    this.deadlines.clear();
    this.unpublished.clear();
    this.ds = [];
    this.ks = [];
  }

  /**
   * Takes every key due at `now` out of the table and into `out` (each at most once; the caller removes
   * them from the local copy and marks them unpublished).
   */
  takeDue(now: number, out: Key[]): void {
    const ds = this.ds;
    while (ds.length > 0 && ds[0]! <= now) {
      const d = ds[0]!;
      const k = this.ks[0]!;
      this.pop();
      if (this.deadlines.get(k) !== d) continue; // stale
      this.deadlines.delete(k);
      out.push(k);
    }
  }

  /** Up to `max` keys expired here and not yet published (the caller publishes them). */
  toPublish(max: number): Key[] {
    const out: Key[] = [];
    for (const k of this.unpublished.keys()) {
      if (out.length >= max) break;
      out.push(k);
    }
    return out;
  }

  private push(d: number, k: Key): void {
    const ds = this.ds;
    const ks = this.ks;
    let i = ds.length;
    ds.push(d);
    ks.push(k);
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (ds[p]! <= d) break;
      ds[i] = ds[p]!;
      ks[i] = ks[p]!;
      i = p;
    }
    ds[i] = d;
    ks[i] = k;
  }

  private pop(): void {
    const ds = this.ds;
    const ks = this.ks;
    const d = ds.pop()!;
    const k = ks.pop()!;
    const n = ds.length;
    if (n === 0) return;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const c = r < n && ds[r]! < ds[l]! ? r : l;
      if (ds[c]! >= d) break;
      ds[i] = ds[c]!;
      ks[i] = ks[c]!;
      i = c;
    }
    ds[i] = d;
    ks[i] = k;
  }

  private rebuild(): void {
    this.ds = [];
    this.ks = [];
    for (const [k, d] of this.deadlines) this.push(d, k);
  }
}

// The table of loads in progress of fetch() (in the control block): which thread computes which missing
// key, so that a value is loaded once on the machine; the callers waiting for each, failures kept until
// every waiter has seen them, and take-overs from dead loaders. Every method runs under the dict's lock.

import type { Key } from '../codec/ops.js';
import { LOAD_FAILED, LOAD_FREE, LOAD_RUNNING, LOAD_SLOTS, type Control } from '../shm/control.js';
import { threadGone } from './lock.js';

/**
 * A failed load is kept until each of its waiters has seen it (they look every few ms); a waiter that died
 * waiting cannot say so, so a failure is dropped after FAILED_KEEP_MS whatever its count.
 */
const FAILED_KEEP_MS = 10_000;

/** What a fetch found for a missing key: its own new claim, or a load it now waits for; null: no free slot. */
export type LoadClaim = { mine: boolean; slot: number; seq: number } | null;

/** How a load stands for a waiter: running (by a live thread), or ended (failed: its message; null: no failure). */
export type LoadStatus = { running: true } | { running: false; failed: string | null };

/** Two 32-bit hashes of a key (its type and text): a 64-bit identity for the table. */
function hashes(key: Key): [number, number] {
  const s = `${typeof key}:${String(key)}`;
  let h1 = 0x811c9dc5;
  let h2 = 0x01000193 ^ s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 0x01000193);
    h2 = Math.imul(h2 ^ c, 0x5bd1e995) ^ (h2 >>> 15);
  }
  return [h1 >>> 0, h2 >>> 0];
}

export class Loads {
  constructor(
    private readonly ctrl: Control,
    /** this thread's id (lock-word form) */
    private readonly me: number,
  ) {}

  /**
   * Joins the load of `key` in progress (a live loader's, or a failure not yet seen by all its waiters) as
   * a waiter; else claims the key for this thread, taking over the slot of a dead loader. Null if every
   * slot is busy (the caller looks again later).
   */
  claim(key: Key): LoadClaim {
    const [h1, h2] = hashes(key);
    const now = Date.now();
    let free = -1;
    for (let i = 0; i < LOAD_SLOTS; i++) {
      const l = this.ctrl.loadSlot(i);
      const same = l.hash1 === h1 && l.hash2 === h2;
      if (l.state === LOAD_RUNNING && !threadGone(this.ctrl, l.owner)) {
        if (!same) continue;
        this.ctrl.setLoadSlot(i, { ...l, waiters: l.waiters + 1 });
        return { mine: false, slot: i, seq: l.seq };
      }
      if (l.state === LOAD_FAILED && now - l.at < FAILED_KEEP_MS) {
        if (!same) continue;
        if (l.waiters > 0) {
          // its waiters are still to see it: this fetch shares the failure
          this.ctrl.setLoadSlot(i, { ...l, waiters: l.waiters + 1 });
          return { mine: false, slot: i, seq: l.seq };
        }
      }
      // free, a dead loader's, a failure every waiter has seen, or an old one
      if (free < 0 || same) free = i;
      if (same) break;
    }
    if (free < 0) return null;
    const seq = (this.ctrl.loadSlot(free).seq + 1) >>> 0;
    this.ctrl.setLoadSlot(free, { state: LOAD_RUNNING, owner: this.me, seq, hash1: h1, hash2: h2, at: now, waiters: 0, message: '' });
    return { mine: true, slot: free, seq };
  }

  /** How the load (slot, seq) stands for one of its waiters. */
  status(slot: number, seq: number): LoadStatus {
    const l = this.ctrl.loadSlot(slot);
    if (l.seq !== seq) return { running: false, failed: null };
    if (l.state === LOAD_RUNNING) return threadGone(this.ctrl, l.owner) ? { running: false, failed: null } : { running: true };
    return { running: false, failed: l.state === LOAD_FAILED ? l.message : null };
  }

  /** A waiter of the load (slot, seq) is done with it (it saw its end, or gave up). */
  leave(slot: number, seq: number): void {
    const l = this.ctrl.loadSlot(slot);
    if (l.seq === seq && l.waiters > 0) this.ctrl.setLoadSlot(slot, { ...l, waiters: l.waiters - 1 });
  }

  /** This thread's load (slot, seq) wrote its value: the slot is free. */
  finish(slot: number, seq: number): void {
    const l = this.ctrl.loadSlot(slot);
    if (l.seq === seq && l.owner === this.me) this.ctrl.setLoadSlot(slot, { ...l, state: LOAD_FREE, waiters: 0, message: '' });
  }

  /** This thread's load (slot, seq) failed: its waiters see `message`. */
  fail(slot: number, seq: number, message: string): void {
    const l = this.ctrl.loadSlot(slot);
    if (l.seq === seq && l.owner === this.me) this.ctrl.setLoadSlot(slot, { ...l, state: LOAD_FAILED, at: Date.now(), message });
  }
}

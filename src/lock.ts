// The cross-process, cross-thread lock of a dict: a futex word in the control block naming the owner's
// attach slot, re-entrant per thread, with recovery from owners that died holding it.
//
// Lock word: 0 = free; otherwise (owner slot + 1) | WAITERS. The owner is named by the same atomic
// compare-exchange that takes the lock, so there is no window in which the lock is held by nobody known.

import { Control, I_HANDOFF, I_LOCK, OFF_LOCK } from './control.js';
import { LockTimeoutError } from './errors.js';
import { native } from './native.js';
import * as diag from './diagnostics.js';

const WAITERS = 0x40000000;
const OWNER_MASK = 0x3fffffff;
const SPINS = 200;
const WAKE_ALL = 0x7fffffff;
/** Releases wake a waiter at most this often (see exit()). */
const WAKE_INTERVAL_MS = 1;
/** A waiter that waited this long asks for a direct hand-off, so barging writers cannot starve it. */
const STARVE_MS = 200;
/** Hand-off word: (slot + 1) of a starving waiter, | GRANTED once the holder has handed the lock over. */
const GRANTED = 0x20000000;
/** How long one futex wait lasts before the owner's liveness is checked again. */
const CHECK_INTERVAL_MS = 50;

/** Per-thread state of one dict incarnation, shared by every UltraDict instance of it in the thread. */
export interface ThreadEntry {
  key: string;
  slot: number;
  depth: number;
  refs: number;
}

const entries = new Map<string, ThreadEntry>();

export function threadEntry(key: string, claim: () => number): ThreadEntry {
  let e = entries.get(key);
  if (!e) {
    e = { key, slot: claim(), depth: 0, refs: 0 };
    entries.set(key, e);
  }
  e.refs++;
  return e;
}

/** Drops one reference; returns true when the caller was the last one (and must free the slot). */
export function dropThreadEntry(e: ThreadEntry): boolean {
  if (--e.refs > 0) return false;
  entries.delete(e.key);
  return true;
}

/** A taken lock; release it exactly once (or use `using`). */
export interface LockHandle {
  release(): void;
  [Symbol.dispose](): void;
}

export interface LockOwner {
  pid: number;
  tid: number;
  /** ms since epoch when the holder took the lock, if it had to wait for it (0: not recorded) */
  since: number;
}

export class SharedLock {
  private readonly me: number;

  constructor(
    private readonly ctrl: Control,
    private readonly entry: ThreadEntry,
    private readonly defaultTimeout: number,
    private readonly onRecover: (deadPid: number) => void,
    private readonly checkOpen: () => void,
  ) {
    this.me = entry.slot + 1;
  }

  /** True if the calling thread holds the lock. */
  get held(): boolean {
    return this.entry.depth > 0;
  }

  /** Takes the lock (re-entrant), waiting at most `timeout` ms (default: the dict's lockTimeout). */
  acquire(options?: { timeout?: number }): LockHandle {
    this.checkOpen();
    const timeout = options?.timeout ?? this.defaultTimeout;
    if (typeof timeout !== 'number' || !(timeout >= 0)) throw new TypeError('timeout must be a number of ms >= 0');
    this.enter(timeout);
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      this.exit();
    };
    return { release, [Symbol.dispose]: release };
  }

  /** Takes the lock (re-entrant); pair with exit(). Prefer acquire() or withLock(). */
  enter(timeout: number = this.defaultTimeout): void {
    if (!this.ctrl.seg.mapped) this.checkOpen();
    const e = this.entry;
    if (e.depth > 0) {
      e.depth++;
      return;
    }
    if (Atomics.compareExchange(this.ctrl.i32, I_LOCK, 0, this.me) !== 0) {
      this.slowEnter(timeout);
      // a clock read costs ~15% of a write: only contended acquisitions record when they happened
      this.ctrl.setLockSince(Date.now());
    }
    e.depth = 1;
  }

  exit(): void {
    if (!this.ctrl.seg.mapped) this.checkOpen();
    const e = this.entry;
    if (e.depth <= 0) throw new Error('ultradict: lock released more often than taken');
    if (--e.depth > 0) return;
    const ctrl = this.ctrl;
    ctrl.setLockSince(0);
    const i32 = ctrl.i32;
    const h = Atomics.load(i32, I_HANDOFF);
    if (h > 0 && h < GRANTED && h !== this.me) {
      // a waiter has starved (waited longer than STARVE_MS while others barged in): hand the lock to
      // it directly; the grant is visible before the lock word names it
      Atomics.store(i32, I_HANDOFF, h | GRANTED);
      Atomics.store(i32, I_LOCK, h | WAITERS);
      ctrl.recordHandoff();
      diag.lockHandedOff(ctrl.name, h - 1);
      native.futexWake(ctrl.seg.buffer, OFF_LOCK, WAKE_ALL);
      return;
    }
    const v = Atomics.exchange(i32, I_LOCK, 0);
    if ((v & WAITERS) === 0) return;
    // wake one waiter, at most once per WAKE_INTERVAL_MS: a woken waiter preempts the running holder
    // (the scheduler favours it), and with more writers than cores, a wake-up per release turns into a
    // context switch per write; waiters also wake up on their own every CHECK_INTERVAL_MS
    const now = Date.now();
    if (now - ctrl.lastWake >= WAKE_INTERVAL_MS) {
      ctrl.lastWake = now;
      native.futexWake(ctrl.seg.buffer, OFF_LOCK, 1);
    }
  }

  /** Releases the lock whatever the depth (close() while holding it). */
  forceExit(): void {
    if (this.entry.depth > 0) {
      this.entry.depth = 1;
      this.exit();
    }
  }

  /** The thread holding the lock, or null. */
  owner(): LockOwner | null {
    this.checkOpen();
    const v = Atomics.load(this.ctrl.i32, I_LOCK);
    if (v === 0) return null;
    const s = this.ctrl.slot((v & OWNER_MASK) - 1);
    return { pid: Math.abs(s.pid), tid: s.tid, since: this.ctrl.lockSince };
  }

  private slowEnter(timeout: number): void {
    const i32 = this.ctrl.i32;
    const me = this.me;
    for (let i = 0; i < SPINS; i++) {
      if (Atomics.load(i32, I_LOCK) === 0 && Atomics.compareExchange(i32, I_LOCK, 0, me) === 0) return;
    }
    const start = performance.now();
    const deadline = start + timeout;
    let nextCheck = start + CHECK_INTERVAL_MS;
    let requested = false; // we asked for a direct hand-off (I_HANDOFF = me)
    const withdraw = (): boolean => {
      // false: too late, the hand-off was granted (the lock is, or is about to be, ours)
      return !requested || Atomics.compareExchange(i32, I_HANDOFF, me, 0) === me;
    };
    for (;;) {
      let v = Atomics.load(i32, I_LOCK);
      if (requested && Atomics.load(i32, I_HANDOFF) === (me | GRANTED)) {
        if ((v & OWNER_MASK) === me) {
          Atomics.store(i32, I_HANDOFF, 0);
          return; // handed over to us
        }
        continue; // granted: the lock word names us in a moment
      }
      if (v === 0) {
        // we may not be the only waiter: keep the flag so our release wakes the next one
        if (Atomics.compareExchange(i32, I_LOCK, 0, me | WAITERS) === 0) {
          if (!withdraw()) Atomics.store(i32, I_HANDOFF, 0); // cannot be granted while we hold it
          return;
        }
        continue;
      }
      if ((v & OWNER_MASK) === me) {
        // the word names our slot but this thread does not hold it (and no hand-off was granted): only
        // a dead thread that had our slot before us can have left it (slots are reclaimed from the
        // dead); take it back
        if (Atomics.compareExchange(i32, I_LOCK, v, me | WAITERS) === v) {
          withdraw();
          this.recovered(-1, 0);
          return;
        }
        continue;
      }
      if ((v & WAITERS) === 0) {
        if (Atomics.compareExchange(i32, I_LOCK, v, v | WAITERS) !== v) continue;
        v |= WAITERS;
      }
      const now = performance.now();
      if (!requested && now - start > STARVE_MS) requested = Atomics.compareExchange(i32, I_HANDOFF, 0, me) === 0;
      if (now >= nextCheck) {
        nextCheck = now + CHECK_INTERVAL_MS;
        if (this.tryRecover(v)) {
          withdraw();
          return;
        }
      }
      const left = deadline - now;
      if (left <= 0) {
        if (!withdraw()) continue; // granted in the last moment: take it
        const o = this.owner();
        throw new LockTimeoutError(
          `could not take the lock of ${this.ctrl.name} within ${timeout} ms` +
            (o ? `: held by pid ${o.pid} (thread ${o.tid})${o.since ? `, taken ${Math.round(Date.now() - o.since)} ms ago` : ''}` : ''),
          o?.pid ?? null,
        );
      }
      native.futexWait(this.ctrl.seg.buffer, OFF_LOCK, v, Math.min(CHECK_INTERVAL_MS, left, nextCheck - now + 1));
    }
  }

  /** If the owner named by lock word v is dead, takes the lock over from it. */
  private tryRecover(v: number): boolean {
    const ownerSlot = (v & OWNER_MASK) - 1;
    if (ownerSlot < 0 || this.ctrl.slotAlive(ownerSlot)) return false;
    const dead = this.ctrl.slot(ownerSlot);
    if (Atomics.compareExchange(this.ctrl.i32, I_LOCK, v, this.me | WAITERS) !== v) return false;
    this.recovered(ownerSlot, dead.pid);
    return true;
  }

  /** Runs after the lock was taken over from a dead owner. */
  private recovered(deadSlot: number, deadPid: number): void {
    const i32 = this.ctrl.i32;
    // a hand-off requested (or granted) by the dead owner is void
    const h = Atomics.load(i32, I_HANDOFF);
    if (deadSlot >= 0 && h !== 0 && (h & ~GRANTED) === deadSlot + 1) Atomics.compareExchange(i32, I_HANDOFF, h, 0);
    // the dead owner's slot is free for reuse once the word no longer names it
    if (deadSlot >= 0 && deadPid !== 0) this.ctrl.freeDeadSlot(deadSlot, deadPid);
    this.ctrl.recordRecovery();
    diag.lockRecovered(this.ctrl.name, Math.abs(deadPid));
    this.entry.depth = 1; // onRecover may write (under the lock)
    try {
      this.onRecover(Math.abs(deadPid));
    } finally {
      this.entry.depth = 0; // enter() sets it again
    }
  }
}

// The cross-process, cross-thread lock of a dict: a futex word in the control block naming the owner's
// attach slot and claim epoch, re-entrant per thread, with recovery from owners that died holding it
// and a direct hand-off to starving waiters that they must accept themselves.
//
// Lock word: 0 = free; otherwise a thread id (slot + 1 | epoch << 11) | WAITERS, or RESERVED | id |
// WAITERS while the lock is offered to that waiter. The owner is named by the same atomic
// compare-exchange that takes the lock, so there is no window in which the lock is held by nobody
// known, and it never names a thread that did not take it: an offer the waiter does not accept within
// ACCEPT_MS (stopped, dead, or its slot reused) is withdrawn by anyone who sees it.

import { Control, I_HANDOFF, I_LOCK, OFF_LOCK } from '../shm/control.js';
import { CorruptSegmentError, LockTimeoutError } from '../errors.js';
import { native } from '../shm/native.js';
import * as diag from '../diagnostics.js';

const WAITERS = 0x40000000;
const RESERVED = 0x20000000;
const SLOT_BITS = 11;
const SLOT_MASK = (1 << SLOT_BITS) - 1;
const EPOCH_MASK = 0x3ffff;
/** A thread id: (slot + 1) | (epoch << SLOT_BITS). */
const ID_MASK = 0x1fffffff;
const SPINS = 200;
const WAKE_ALL = 0x7fffffff;
/** Releases wake a waiter at most this often (see exit()). */
const WAKE_INTERVAL_MS = 1;
/** A waiter that waited this long asks for a direct hand-off, so barging writers cannot starve it. */
export const STARVE_MS = 200;
/** An offered hand-off not accepted within this time is withdrawn: the lock is free again. */
export const ACCEPT_MS = 250;
/** How long one futex wait lasts before the owner's liveness is checked again. */
const CHECK_INTERVAL_MS = 50;

/** The lock-word id of a thread holding slot `slot` with claim epoch `epoch`. */
export function threadId(slot: number, epoch: number): number {
  return (slot + 1) | ((epoch & EPOCH_MASK) << SLOT_BITS);
}

/** Slot named by a lock or hand-off word (-1: none). */
export function slotOfWord(v: number): number {
  return (v & SLOT_MASK) - 1;
}

/** Whether thread `id` (lock-word form) still holds its slot with the same claim epoch (no liveness check). */
export function threadCurrent(ctrl: Control, id: number): boolean {
  const slot = slotOfWord(id);
  if (slot < 0 || slot >= ctrl.slotCount) return false;
  return ctrl.slotClaimed(slot) && threadId(slot, ctrl.slotEpoch(slot)) === (id & ID_MASK);
}

/** Whether thread `id` is gone: its slot freed or claimed again (another epoch), or its thread dead. */
export function threadGone(ctrl: Control, id: number): boolean {
  return !threadCurrent(ctrl, id) || !ctrl.slotAlive(slotOfWord(id));
}

/** The slot holding (or being offered) the lock, -1 if free: attach-slot reaping leaves it to recovery. */
export function lockOwnerSlot(ctrl: Control): number {
  return slotOfWord(Atomics.load(ctrl.i32, I_LOCK));
}

/**
 * Clears what refers to a reaped (dead) slot: its hand-off request, and an offer of the lock to it. Its
 * successor in the slot has another epoch and so could not take either, but they would stall writers.
 */
export function forgetSlot(ctrl: Control, slot: number): void {
  const i32 = ctrl.i32;
  const h = Atomics.load(i32, I_HANDOFF);
  if (h !== 0 && slotOfWord(h) === slot) Atomics.compareExchange(i32, I_HANDOFF, h, 0);
  const v = Atomics.load(i32, I_LOCK);
  if ((v & RESERVED) !== 0 && slotOfWord(v) === slot && Atomics.compareExchange(i32, I_LOCK, v, 0) === v) {
    native.futexWake(ctrl.seg.buffer, OFF_LOCK, WAKE_ALL);
  }
}

/** Per-thread state of one dict incarnation, shared by every UltraDict handle of it in the thread. */
export interface ThreadEntry {
  key: string;
  slot: number;
  /** this thread's id in lock words: slot and the epoch of its claim */
  id: number;
  depth: number;
  refs: number;
  /** the current acquisition recorded its time in the control block (a contended one): clear it on release */
  since: boolean;
  /** Runs once when the thread's outermost lock scope ends (a close deferred until then). */
  onIdle: (() => void) | null;
}

const entries = new Map<string, ThreadEntry>();

export function threadEntry(key: string, claim: () => { slot: number; epoch: number }): ThreadEntry {
  let e = entries.get(key);
  if (!e) {
    const c = claim();
    e = { key, slot: c.slot, id: threadId(c.slot, c.epoch), depth: 0, refs: 0, since: false, onIdle: null };
    entries.set(key, e);
  }
  e.refs++;
  return e;
}

/** Runs fn once when the thread's outermost lock scope on this entry ends (null: cancels it). */
export function whenIdle(e: ThreadEntry, fn: (() => void) | null): void {
  e.onIdle = fn;
}

/** Drops one reference; returns true when the caller was the last one (and must free the slot). */
export function dropThreadEntry(e: ThreadEntry): boolean {
  if (e.refs <= 0) return false; // dropped already: its slot was released by whoever dropped it last
  if (--e.refs > 0) return false;
  if (entries.get(e.key) === e) entries.delete(e.key);
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
  /** true while the lock is offered to this (starving) waiter and not yet accepted by it */
  offered?: boolean;
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
    this.me = entry.id;
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
      e.since = true;
    }
    e.depth = 1;
  }

  exit(): void {
    if (!this.ctrl.seg.mapped) this.checkOpen();
    const e = this.entry;
    if (e.depth <= 0) throw new Error('ultradict: lock released more often than taken');
    if (--e.depth > 0) return;
    this.release();
    const idle = e.onIdle;
    if (idle !== null) {
      e.onIdle = null;
      idle();
    }
  }

  private release(): void {
    const ctrl = this.ctrl;
    if (this.entry.since) {
      this.entry.since = false;
      ctrl.setLockSince(0);
    }
    const i32 = ctrl.i32;
    const h = Atomics.load(i32, I_HANDOFF);
    if (h !== 0 && h !== this.me) {
      if (threadCurrent(this.ctrl, h)) {
        // a waiter has starved (waited longer than STARVE_MS while others barged in): offer it the lock;
        // it takes it by naming itself in the word, or the offer lapses after ACCEPT_MS
        ctrl.setHandoffAt(Date.now());
        Atomics.store(i32, I_LOCK, RESERVED | h | WAITERS);
        ctrl.recordHandoff();
        diag.lockHandedOff(ctrl.name, slotOfWord(h));
        native.futexWake(ctrl.seg.buffer, OFF_LOCK, WAKE_ALL);
        return;
      }
      Atomics.compareExchange(i32, I_HANDOFF, h, 0); // its slot was freed or reused since it asked
    }
    const v = Atomics.exchange(i32, I_LOCK, 0);
    if ((v & WAITERS) === 0) return;
    // wake one waiter, at most once per WAKE_INTERVAL_MS: a woken waiter preempts the running holder
    // (the scheduler favours it), and with more writers than cores, a wake-up per release turns into a
    // context switch per write; waiters also wake up on their own every CHECK_INTERVAL_MS
    const now = Date.now();
    if (now - ctrl.lastWake >= WAKE_INTERVAL_MS) {
      ctrl.setLastWake(now);
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

  /** The thread holding the lock (or being offered it), or null. */
  owner(): LockOwner | null {
    this.checkOpen();
    const v = Atomics.load(this.ctrl.i32, I_LOCK);
    if (v === 0) return null;
    this.checkWord(v);
    const s = this.ctrl.slot(slotOfWord(v));
    if ((v & RESERVED) !== 0) return { pid: Math.abs(s.pid), tid: s.tid, since: this.ctrl.handoffAt, offered: true };
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
    const withdraw = (): void => {
      if (requested) Atomics.compareExchange(i32, I_HANDOFF, me, 0);
      requested = false;
    };
    for (;;) {
      let v = Atomics.load(i32, I_LOCK);
      if (v !== 0) this.checkWord(v);
      if ((v & RESERVED) !== 0) {
        if ((v & ID_MASK) === me) {
          // offered to us: accept by naming ourselves
          if (Atomics.compareExchange(i32, I_LOCK, v, me | WAITERS) === v) {
            withdraw();
            return;
          }
          continue;
        }
        // offered to another waiter: withdraw the offer if it lapsed or its waiter is gone
        const now = Date.now();
        if (now - this.ctrl.handoffAt > ACCEPT_MS || (performance.now() >= nextCheck && threadGone(this.ctrl, v & ID_MASK))) {
          if (Atomics.compareExchange(i32, I_LOCK, v, 0) === v) {
            Atomics.compareExchange(i32, I_HANDOFF, v & ID_MASK, 0);
            this.ctrl.recordLapsedHandoff();
          }
          continue;
        }
      } else if (v === 0) {
        // we may not be the only waiter: keep the flag so our release wakes the next one
        if (Atomics.compareExchange(i32, I_LOCK, 0, me | WAITERS) === 0) {
          withdraw();
          return;
        }
        continue;
      } else if ((v & ID_MASK) === me) {
        // the word names this thread (slot and epoch) but this thread does not hold it: impossible unless
        // the word was corrupted; take it back rather than wait for ourselves
        if (Atomics.compareExchange(i32, I_LOCK, v, me | WAITERS) === v) {
          withdraw();
          this.recovered(-1, 0);
          return;
        }
        continue;
      } else if ((v & WAITERS) === 0) {
        if (Atomics.compareExchange(i32, I_LOCK, v, v | WAITERS) !== v) continue;
        v |= WAITERS;
      }
      const now = performance.now();
      if (requested && Atomics.load(i32, I_HANDOFF) !== me) requested = false; // our request lapsed: ask again
      if (!requested && now - start > STARVE_MS) requested = Atomics.compareExchange(i32, I_HANDOFF, 0, me) === 0;
      if (now >= nextCheck) {
        nextCheck = now + CHECK_INTERVAL_MS;
        if ((v & RESERVED) === 0 && this.tryRecover(v)) {
          withdraw();
          return;
        }
      }
      const left = deadline - now;
      if (left <= 0) {
        withdraw();
        const w = Atomics.load(i32, I_LOCK);
        if ((w & RESERVED) !== 0 && (w & ID_MASK) === me) continue; // offered in the last moment: take it
        const o = this.owner();
        throw new LockTimeoutError(
          `could not take the lock of ${this.ctrl.name} within ${timeout} ms` +
            (o
              ? o.offered
                ? `: offered to pid ${o.pid} (thread ${o.tid}), which has not taken it yet`
                : `: held by pid ${o.pid} (thread ${o.tid})${o.since ? `, taken ${Math.round(Date.now() - o.since)} ms ago` : ''}`
              : ''),
          o?.pid ?? null,
        );
      }
      native.futexWait(this.ctrl.seg.buffer, OFF_LOCK, v, Math.min(CHECK_INTERVAL_MS, left, nextCheck - now + 1));
    }
  }

  /** A lock word naming no possible slot is corrupt: refuse it rather than guess. */
  private checkWord(v: number): void {
    const slot = slotOfWord(v);
    if (slot < 0 || slot >= this.ctrl.slotCount || (v & ~(ID_MASK | WAITERS | RESERVED)) !== 0) {
      throw new CorruptSegmentError(`${this.ctrl.name}: corrupt lock word 0x${(v >>> 0).toString(16)} (names no attach slot)`);
    }
  }

  /** If the owner named by lock word v is dead (or its slot was freed or reused), takes the lock over from it. */
  private tryRecover(v: number): boolean {
    const id = v & ID_MASK;
    const ownerSlot = slotOfWord(id);
    if (ownerSlot < 0 || !threadGone(this.ctrl, id)) return false;
    const dead = this.ctrl.slot(ownerSlot);
    const sameThread = threadCurrent(this.ctrl, id); // the slot still names the dead thread (not yet reaped)
    if (Atomics.compareExchange(this.ctrl.i32, I_LOCK, v, this.me | WAITERS) !== v) return false;
    this.recovered(sameThread ? ownerSlot : -1, sameThread ? dead.pid : 0, id);
    return true;
  }

  /** Runs after the lock was taken over from a dead owner. */
  private recovered(deadSlot: number, deadPid: number, deadId = 0): void {
    const i32 = this.ctrl.i32;
    // a hand-off requested by the dead owner is void
    if (deadId !== 0) Atomics.compareExchange(i32, I_HANDOFF, deadId, 0);
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

// The engine behind one attached handle (and its nested views): its lifetime, the write path,
// transactions, generation switches and change events, over the thread's local copy (local-copy.ts).
// See docs/ARCHITECTURE.md.

import { isThenable } from '../args.js';
import { changeOf, isChange, OP_BATCH, OP_EVICTED, OP_EXPIRED, OP_SET, type Key, type Op, type Path } from '../codec/ops.js';
import type { Serializer } from '../codec/serializer.js';
import { undoAll, type Undo } from '../codec/tree.js';
import { appendKeyOps, Encoder, encodeOps, encodeWrite, reopenFrame } from '../codec/wire.js';
import * as diag from '../diagnostics.js';
import { AlreadyClosedError, InvalidStateError } from '../errors.js';
import { EVICT_LRU, I_COUNTER, OFF_COUNTER, self, type Control } from '../shm/control.js';
import { removeIncarnation } from '../shm/discovery.js';
import { retiredControlSegment } from '../shm/names.js';
import { native } from '../shm/native.js';
import { Bounds, policyName } from './bounds.js';
import { ChangeFeed } from './changes.js';
import { collectStats, type EngineStats } from './stats.js';
import { tellOwnFrame, type FrameCallback, type FrameHook, type FrameSource } from './frames.js';
import { EXPIRED_PER_WRITE } from './expiry.js';
import { Generations, type InitialDump } from './generation.js';
import { LocalCopy } from './local-copy.js';
import { Loads } from './loads.js';
import { forgetEngine, registerEngine } from './threads.js';
import { dropThreadEntry, SharedLock, whenIdle, type ThreadEntry } from './lock.js';

interface Tx {
  enc: Encoder;
  countAt: number;
  ops: Op[];
  undo: Undo[];
}

const WAKE_ALL = 0x7fffffff;
/** Wakes that found no waiting watcher before dead listeners are looked for (see nobodyWoken). */
const IDLE_WAKES = 64;

export interface CoreConfig {
  name: string;
  ctrl: Control;
  entry: ThreadEntry;
  serializer: Serializer;
  lockTimeout: number;
  recurse: boolean;
  /** the dict's default time to live in ms (0: none) */
  ttl: number;
}

export class Core implements FrameSource {
  readonly name: string;
  readonly key: string;
  readonly ser: Serializer;
  readonly recurse: boolean;
  /** the dict's default time to live in ms of a write (0: none) */
  readonly ttl: number;
  /** whether reads record recency (an 'lru' dict): then a read of a root key calls touch() */
  readonly recordsReads: boolean;
  private readonly ctrl: Control;
  private readonly ci32: Int32Array;
  private readonly entry: ThreadEntry;
  private readonly lock: SharedLock;
  private readonly generations: Generations;
  private readonly feed: ChangeFeed;
  /** this thread's copy of the dict and its place in the stream (plain field on the read path) */
  private readonly copy: LocalCopy;
  private expEnc: Encoder | null = null;
  /** the bounds and eviction bookkeeping of a bounded dict (null: unbounded; the copy keeps it up to date) */
  private readonly bounds: Bounds | null = null;
  #closed = false;
  #tx: Tx | null = null;
  #loads: Loads | null = null;
  /** Handles open on this engine; it closes when the last one closes (see release()). */
  private refs = 1;
  private autoUnlinkOpen = 0;
  private readonly slotGuard: number;
  private idleWakes = 0;
  private lastSweep = 0;
  /** > 0 while frames are being replayed: a close requested meanwhile waits until the replay is done. */
  private syncing = 0;
  private readonly enc = new Encoder();
  private txEnc: Encoder | null = null;

  constructor(cfg: CoreConfig) {
    this.name = cfg.name;
    this.ctrl = cfg.ctrl;
    this.ci32 = cfg.ctrl.i32;
    this.ser = cfg.serializer;
    this.entry = cfg.entry;
    this.key = cfg.entry.key;
    this.recurse = cfg.recurse;
    this.ttl = cfg.ttl;
    const policy = policyName(cfg.ctrl.evict);
    if (policy !== null) {
      const ctrl = cfg.ctrl;
      this.bounds = new Bounds(ctrl.maxKeys, ctrl.maxBytes, policy, ctrl.evict === EVICT_LRU ? ctrl.recencyTable() : null);
    }
    this.recordsReads = this.bounds !== null && policy === 'lru';
    this.generations = new Generations(cfg.name, cfg.ctrl, cfg.serializer);
    this.feed = new ChangeFeed(cfg.ctrl, cfg.entry.slot, () => this.ctrlSegName(), () => this.sync(false));
    this.copy = new LocalCopy(cfg.name, cfg.ctrl, this.generations, cfg.serializer, this.feed, this.bounds, cfg.ttl > 0);
    this.lock = this.lockFor(cfg.lockTimeout, () => this.check());
    this.slotGuard = this.guardSlot();
    registerEngine(this.key, this);
  }

  get map(): ReadonlyMap<Key, unknown> {
    return this.copy.map;
  }
  get gen(): number {
    return this.copy.gen;
  }
  get pos(): number {
    return this.copy.pos;
  }
  get closed(): boolean {
    return this.#closed;
  }
  get tag(): string {
    return this.ctrl.tag;
  }

  /**
   * A terminated worker never closes: the addon frees its slot when the worker's env is torn down. 0 if
   * the control segment cannot be mapped again (renamed or removed meanwhile): then reaping frees it.
   */
  private guardSlot(): number {
    const me = self();
    const slot = this.entry.slot;
    for (const name of new Set([this.ctrlSegName(), this.ctrl.seg.name])) {
      try {
        return native.slotGuard(name, this.ctrl.guardOffsets(slot), me.pid, me.tid, this.ctrl.slotEpoch(slot));
      } catch {
        // try the other name
      }
    }
    return 0;
  }

  /** A lock object on this engine's lock with its own default timeout and closed check (one per handle). */
  lockFor(timeout: number, checkOpen: () => void): SharedLock {
    return new SharedLock(this.ctrl, this.entry, timeout, () => this.recover(), checkOpen);
  }

  check(): void {
    if (this.#closed) throw new AlreadyClosedError(`UltraDict ${JSON.stringify(this.name)} is closed`);
  }

  // ---- lifetime -------------------------------------------------------------------------------

  /** One more handle on this engine. */
  retain(): void {
    this.refs++;
  }

  /** A handle with autoUnlink opened (+1) or closed (-1): the dict is due for unlinking when one closes, or at exit. */
  autoUnlinkHandle(delta: 1 | -1): void {
    this.autoUnlinkOpen += delta;
    if (delta < 0 && !this.#closed && !this.ctrl.unlinked) this.ctrl.setUnlinkPending();
  }

  /**
   * One handle fewer. The engine closes with its last handle, but never in the middle of a lock scope
   * of this thread (a transaction still to publish, a withLock, an acquired LockHandle) nor of a replay:
   * then it closes when the outermost scope ends, and the scope completes normally.
   */
  release(): void {
    if (--this.refs > 0 || this.#closed) return;
    if (this.entry.depth > 0) {
      whenIdle(this.entry, () => {
        if (this.refs === 0) this.close();
      });
      return;
    }
    if (this.syncing > 0) return; // sync() closes when it finishes
    this.close();
  }

  /**
   * Detaches now: stops listening, releases the lock if this thread holds it, frees the attach slot and
   * unmaps. The dict is unlinked here if it is due (a handle with autoUnlink closed) and no other live
   * thread is attached; otherwise the last of them to close does it. (Unlinking under attached processes
   * would let the next attach-or-create silently start a new, empty dict while they keep the old one: a
   * restarting creator, as in `pm2 reload`, would split the processes in two.)
   */
  close(): void {
    if (this.#closed) return;
    const ctrl = this.ctrl;
    const slot = this.entry.slot;
    if (this.autoUnlinkOpen > 0 && !ctrl.unlinked) ctrl.setUnlinkPending(); // closed at exit with such handles open
    this.feed.stop();
    this.#closed = true;
    this.refs = 0;
    forgetEngine(this.key, this);
    whenIdle(this.entry, null);
    this.lock.forceExit();
    dropThreadEntry(this.entry);
    native.slotGuardStop(this.slotGuard);
    ctrl.releaseSlot(slot);
    try {
      if (ctrl.unlinkPending && !ctrl.unlinked && !ctrl.othersAttached(slot)) {
        ctrl.markUnlinked();
        removeIncarnation(this.name, ctrl.tag, { controlOnly: false });
      } else if (ctrl.unlinked && ctrl.attached().length === 0) {
        // last one out of an unlinked dict frees its segments (slots of SIGKILLed processes do not count)
        removeIncarnation(this.name, ctrl.tag, { controlOnly: false });
      }
    } finally {
      this.copy.release();
      this.generations.unmap();
      ctrl.seg.unmap();
    }
  }

  /** Undoes a failed open (before any handle saw this engine): frees the slot and unmaps what was mapped. */
  abandon(): void {
    this.#closed = true;
    forgetEngine(this.key, this);
    native.slotGuardStop(this.slotGuard);
    if (dropThreadEntry(this.entry)) this.ctrl.releaseSlot(this.entry.slot);
    this.generations.unmap();
    this.copy.release();
  }

  /** The table of loads in progress of fetch() (used under the lock). */
  loads(): Loads {
    return (this.#loads ??= new Loads(this.ctrl, this.entry.id));
  }

  /** Takes the dict's name away (no new attachers); the attached keep working (UltraDict#unlink). */
  unlink(): void {
    if (this.ctrl.unlinked) return;
    this.ctrl.markUnlinked();
    removeIncarnation(this.name, this.ctrl.tag, { controlOnly: true });
  }

  // ---- creation -------------------------------------------------------------------------------

  /** Creator: writes generation 0 (the initial items as its dump) and marks the dict ready. */
  initialize(initial: InitialDump | null): void {
    this.generations.createFirst(initial);
  }

  // ---- reading --------------------------------------------------------------------------------

  /** Brings the local copy up to date if anything was published since the last look. */
  read(): void {
    if (this.#closed) this.check();
    this.current();
  }

  /** The local copy, brought up to date first if anything was published since the last look: the read path. */
  current(): ReadonlyMap<Key, unknown> {
    const copy = this.copy;
    if (Atomics.load(this.ci32, I_COUNTER) !== copy.seenCount) this.sync(false);
    if (copy.expires && this.#tx === null) copy.dropExpired();
    return copy.map;
  }

  /**
   * Records a read of root key `key` in the recency table, sampled (only when recordsReads; after current()): twice
   * the change counter this handle synced to. (A write made at counter c marks its keys 2c + 1: a read
   * before it is older, a read after it newer.)
   */
  touch(key: Key): void {
    this.copy.touch(key);
  }

  // ---- expiry ---------------------------------------------------------------------------------

  /** The deadline of a root key (ms since the epoch), or undefined if it has none. */
  deadline(key: Key): number | undefined {
    return this.copy.deadline(key);
  }

  /**
   * Removes the root keys whose deadline passed from the local copy, without the lock: a read never
   * shows an expired key (see Expiry.dropDue). Not inside a transaction of this thread (its undo log
   * covers the local copy).
   */
  dropExpired(): void {
    if (this.#tx === null) this.copy.dropExpired();
  }

  /**
   * Under the lock, before a write: publishes the deletes of expired keys that nobody published yet, at
   * most EXPIRED_PER_WRITE per write (the rest go with the next writes), as a frame of their own.
   */
  private publishExpired(): void {
    const keys = this.copy.expiredToPublish(EXPIRED_PER_WRITE);
    if (keys.length === 0) return;
    const enc = (this.expEnc ??= new Encoder());
    enc.beginFrame();
    const ops = encodeWrite(
      enc,
      keys.map((key) => ({ op: OP_EXPIRED, key, value: undefined, path: null })),
      this.ser,
      false,
    );
    this.publishFrame(enc, enc.finishFrame());
    this.copy.expiredPublished(keys);
    this.ctrl.recordExpired(keys.length);
    const hook = this.copy.onFrame;
    if (hook !== null) tellOwnFrame(hook, enc, ops);
  }

  /** Applies everything published since the last sync. Returns the number of operations applied. */
  sync(force: boolean): number {
    const c = Atomics.load(this.ci32, I_COUNTER);
    if (!force && c === this.copy.seenCount) return 0;
    this.syncing++;
    try {
      return this.copy.syncTo(c);
    } finally {
      if (--this.syncing === 0 && this.refs === 0 && this.entry.depth === 0) this.close();
    }
  }

  /** Decodes (without applying) the frames of the current stream in [from, to), for the bridge's restart. */
  framesBetween(from: number, to: number, cb: FrameCallback): void {
    this.copy.framesBetween(from, to, cb);
  }

  /** The local map at `path` (null: the root), or undefined if it does not exist (or is not a dict). */
  target(path: Path | null): ReadonlyMap<Key, unknown> | undefined {
    return this.copy.target(path);
  }

  // ---- writing --------------------------------------------------------------------------------

  /** The fast path: one SET of a root key, outside a transaction. */
  setRoot(key: Key, value: unknown, timeout?: number): void {
    if (this.#tx !== null || this.bounds !== null) return this.write([{ op: OP_SET, path: null, key, value }], timeout);
    const enc = this.enc;
    enc.beginFrame();
    enc.u8(OP_SET);
    enc.key(key);
    const local = enc.value(value, this.ser, true, this.recurse);
    const len = enc.finishFrame();
    const lock = this.lock;
    lock.enter(timeout);
    try {
      this.syncForWrite();
      const copy = this.copy;
      if (copy.fits(len)) {
        this.publishFrame(enc, len); // appends: the local copy changes only once that worked
        copy.setRoot(key, local);
      } else {
        // a new generation dumps the dict with this write in it: apply it first, undo if that fails
        const undo: Undo[] = [];
        copy.applyWithUndo({ op: OP_SET, key, value: local, path: null }, undo, 0);
        try {
          this.publishFrame(enc, len);
        } catch (e) {
          undoAll(undo);
          throw e;
        }
      }
      if (this.feed.listening) this.feed.queue({ type: 'set', key, value: local });
      const hook = copy.onFrame;
      if (hook !== null) tellOwnFrame(hook, enc, [{ op: OP_SET, key, value: local, path: null }]);
    } finally {
      lock.exit();
    }
  }

  /** Any writes (a batch, nested paths, deletes, clears): published as one frame, or added to the transaction. */
  write(raw: readonly Op[], timeout?: number): void {
    if (raw.length === 0) return;
    const tx = this.#tx;
    if (tx !== null) {
      const enc = tx.enc;
      const mark = enc.pos;
      const undoMark = tx.undo.length;
      let ops: Op[];
      try {
        const sizes = this.entrySizes();
        ops = encodeOps(enc, raw, this.ser, this.recurse, sizes);
        if (sizes !== undefined) this.bounds!.checkEntries(sizes, this.name);
        for (let i = 0; i < ops.length; i++) this.copy.applyWithUndo(ops[i]!, tx.undo, sizes === undefined ? 0 : sizes[i]!);
      } catch (e) {
        enc.rewind(mark);
        undoAll(tx.undo, undoMark);
        throw e;
      }
      for (const o of ops) tx.ops.push(o);
      return;
    }
    const enc = this.enc;
    enc.beginFrame();
    const sizes = this.entrySizes();
    const ops = encodeWrite(enc, raw, this.ser, this.recurse, sizes);
    if (sizes !== undefined) this.bounds!.checkEntries(sizes, this.name);
    let len = enc.finishFrame();
    const lock = this.lock;
    lock.enter(timeout);
    try {
      this.syncForWrite();
      const undo: Undo[] = [];
      let evicted = 0;
      try {
        for (let i = 0; i < ops.length; i++) this.copy.applyWithUndo(ops[i]!, undo, sizes === undefined ? 0 : sizes[i]!);
        if (this.bounds !== null) {
          const victims = this.copy.evict(ops, undo);
          if (victims.length > 0) {
            reopenFrame(enc);
            appendKeyOps(enc, OP_EVICTED, victims);
            len = enc.finishFrame();
            evicted = victims.length;
          }
        }
        this.publishFrame(enc, len);
      } catch (e) {
        undoAll(undo);
        throw e;
      }
      if (evicted > 0) this.ctrl.recordEvicted(evicted);
      if (this.feed.listening) for (const o of ops) if (isChange(o.op)) this.feed.queue(changeOf(o));
      const hook = this.copy.onFrame;
      if (hook !== null) tellOwnFrame(hook, enc, ops);
    } finally {
      lock.exit();
    }
  }

  /** Runs fn under the lock; its writes are published as one batch, or rolled back if it throws. */
  transaction<R>(fn: () => R, timeout?: number): R {
    const outer = this.#tx;
    if (outer !== null) {
      // a nested transaction joins the outer one; its failure rolls back to where it started
      const mark = outer.enc.pos;
      const undoMark = outer.undo.length;
      const opsMark = outer.ops.length;
      try {
        return checkSync(fn(), 'transaction');
      } catch (e) {
        outer.enc.rewind(mark);
        undoAll(outer.undo, undoMark);
        outer.ops.length = opsMark;
        throw e;
      }
    }
    const lock = this.lock;
    lock.enter(timeout);
    try {
      this.syncForWrite();
      const enc = (this.txEnc ??= new Encoder());
      enc.beginFrame();
      enc.u8(OP_BATCH);
      const tx: Tx = { enc, countAt: enc.pos, ops: [], undo: [] };
      enc.u32(0);
      this.#tx = tx;
      let result: R;
      try {
        result = checkSync(fn(), 'transaction');
      } catch (e) {
        undoAll(tx.undo);
        throw e;
      } finally {
        this.#tx = null;
      }
      if (tx.ops.length > 0) {
        let evicted = 0;
        try {
          if (this.bounds !== null) {
            const victims = this.copy.evict(tx.ops, tx.undo);
            appendKeyOps(enc, OP_EVICTED, victims); // the batch's count includes them (patched again below)
            evicted = victims.length;
          }
          enc.patchU32(tx.countAt, tx.ops.length);
          const len = enc.finishFrame();
          this.copy.checkUnmoved();
          this.publishFrame(enc, len);
        } catch (e) {
          undoAll(tx.undo);
          throw e;
        }
        if (evicted > 0) this.ctrl.recordEvicted(evicted);
        if (this.feed.listening) for (const o of tx.ops) if (isChange(o.op)) this.feed.queue(changeOf(o));
        const hook = this.copy.onFrame;
        if (hook !== null) tellOwnFrame(hook, enc, tx.ops);
      }
      if (enc.buf.length > 1 << 24) this.txEnc = null;
      return result;
    } finally {
      lock.exit();
    }
  }

  /**
   * Under the lock, before a write: brings the local copy up to the published end (see
   * LocalCopy.catchUpToEnd) and publishes the deletes of keys that expired.
   */
  private syncForWrite(): void {
    this.sync(false);
    this.copy.catchUpToEnd();
    if (this.copy.expires) this.publishExpired();
  }

  /** A fresh list for the entry sizes of a write of a bounded dict (they count toward maxBytes and stats().bytes), else undefined. */
  private entrySizes(): number[] | undefined {
    return this.bounds !== null ? [] : undefined;
  }

  /**
   * Publishes a finished frame: appended at the end, or as the start of a new generation if it does
   * not fit (then the write must already be applied locally: the dump includes it). Caller holds the
   * lock and has called syncForWrite().
   */
  private publishFrame(enc: Encoder, len: number): void {
    if (this.copy.append(enc, len)) this.published();
    else this.switchGeneration(enc, len);
  }

  /** After a publish: bump the change counter and wake listeners of any process (only if there are any). */
  private published(): void {
    this.copy.caughtUp(this.ctrl.bump());
    if (this.ctrl.listeners !== 0 && native.futexWake(this.ctrl.seg.buffer, OFF_COUNTER, WAKE_ALL) === 0) this.nobodyWoken();
  }

  /**
   * Listeners are counted but no watcher was waiting: they may be busy, or dead (SIGKILLed processes
   * keep their count until their slot is reaped). Every IDLE_WAKES such wakes, at most once a second,
   * take the dead ones out of the count, so writers stop waking listeners that are gone.
   */
  private nobodyWoken(): void {
    if (++this.idleWakes < IDLE_WAKES) return;
    this.idleWakes = 0;
    const now = Date.now();
    if (now - this.lastSweep < 1000) return;
    this.lastSweep = now;
    this.ctrl.dropDeadListeners();
  }

  /** Forces a full dump now (a new generation). Refused inside a transaction: it would publish uncommitted writes. */
  dump(timeout?: number): void {
    if (this.#tx !== null) {
      throw new InvalidStateError(`dump() inside a transaction of ${JSON.stringify(this.name)} would publish its uncommitted writes; call it after the transaction`);
    }
    const lock = this.lock;
    lock.enter(timeout);
    try {
      this.syncForWrite();
      this.switchGeneration(null, 0);
    } finally {
      lock.exit();
    }
  }

  /**
   * Starts generation gen+1: a dump of the dict (the pending write already applied locally) and a new
   * stream whose first frame (if len > 0) is that write, sized so that dumps stay amortised. Nothing is
   * visible to others until the generation number is published; a failure leaves the dict as it was.
   */
  private switchGeneration(frame: Encoder | null, len: number): void {
    const copy = this.copy;
    const g = copy.gen;
    const { stream, dumpLen } = this.generations.write(g, copy.map, copy.deadlines, frame, len);
    this.ctrl.publishGen(g + 1);
    this.ctrl.recordDump(dumpLen);
    diag.dumped(this.name, g + 1, dumpLen, copy.map.size);
    this.published();
    this.generations.retire(g);
    copy.switched(stream, len);
  }

  /** Runs under the lock after it was taken over from a dead owner. */
  private recover(): void {
    this.generations.removeLeftovers();
    // it may have published an end without bumping the counter
    this.ctrl.bump();
  }

  /** The engine's part of UltraDict#stats(). */
  stats(): EngineStats {
    this.read();
    return collectStats({
      ctrl: this.ctrl,
      lock: this.lock,
      generations: this.generations,
      stream: this.copy.stream,
      keys: this.copy.map.size,
      generation: this.copy.gen,
      serializer: this.ser.name,
      recurse: this.recurse,
      ttl: this.ttl,
      expiring: this.copy.deadlines?.size ?? 0,
      bytes: this.bounds?.bytes ?? 0,
    });
  }

  tapFrames(hook: FrameHook | null): void {
    this.copy.tapFrames(hook);
  }

  // ---- change events --------------------------------------------------------------------------

  /** Starts delivering changes of other processes (see changes for the rest of the feed). */
  startListening(): void {
    this.feed.start(this.copy.seenCount, this.#closed);
  }

  /** The change feed: where changes go, stopping, and what keeps the event loop alive. */
  get changes(): ChangeFeed {
    return this.feed;
  }

  /** The name the control segment currently has (it is renamed when the dict is unlinked). */
  private ctrlSegName(): string {
    if (!this.ctrl.unlinked) return this.ctrl.seg.name;
    return retiredControlSegment(this.name, this.ctrl.tag);
  }
}

function checkSync<R>(result: R, what: string): R {
  if (isThenable(result)) {
    throw new TypeError(`${what}(fn): fn returned a Promise; the lock is synchronous and cannot cover awaited work`);
  }
  return result;
}

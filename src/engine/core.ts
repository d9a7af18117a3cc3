// The engine behind one attached handle (and its nested views): the local copy (a tree of Maps), read
// sync, the write path, transactions, generation switches and change events. See docs/ARCHITECTURE.md.

import { isThenable } from '../args.js';
import { changeOf, isChange, OP_BATCH, OP_EVICTED, OP_EXPIRE, OP_EXPIRED, OP_SET, type Key, type Op, type Path } from '../codec/ops.js';
import type { Serializer } from '../codec/serializer.js';
import { applyOp, applyWithUndo, Node, targetOf, undoAll, type Undo } from '../codec/tree.js';
import { appendKeyOps, Encoder, encodeOps, encodeWrite, reopenFrame } from '../codec/wire.js';
import * as diag from '../diagnostics.js';
import { AlreadyClosedError, CorruptSegmentError, InvalidStateError, NotFoundError } from '../errors.js';
import { EVICT_LRU, I_COUNTER, OFF_COUNTER, self, type Control } from '../shm/control.js';
import { removeIncarnation } from '../shm/discovery.js';
import { retiredControlSegment } from '../shm/names.js';
import { native } from '../shm/native.js';
import type { Stream } from '../shm/stream.js';
import { Bounds, policyName } from './bounds.js';
import { ChangeFeed } from './changes.js';
import { collectStats, type EngineStats } from './stats.js';
import { decodeFrames, tellOwnFrame, type FrameCallback, type FrameHook, type FrameSource } from './frames.js';
import { EXPIRED_PER_WRITE, Expiry } from './expiry.js';
import { Generations, type InitialDump } from './generation.js';
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
  /** the change counter as of the last sync (plain fields on the read path: no private-name checks) */
  private seenCount = 0;
  private local: Map<Key, unknown> = new Map();
  /** deadlines of root keys; null while the dict has none (reads then pay nothing for expiry) */
  private exp: Expiry | null = null;
  private expEnc: Encoder | null = null;
  /** the bounds and eviction bookkeeping of a bounded dict (null: unbounded) */
  private readonly bounds: Bounds | null = null;
  private readonly sizes: number[] = [];
  #stream!: Stream;
  #gen = -1;
  #pos = 0;
  /** Stream bytes known to have pages (a cache of the stream header's reserved size; reloaded when passed). */
  #reserved = 0;
  #closed = false;
  #tx: Tx | null = null;
  #onFrame: FrameHook | null = null;
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
  private readonly ops: Op[] = [];

  constructor(cfg: CoreConfig) {
    this.name = cfg.name;
    this.ctrl = cfg.ctrl;
    this.ci32 = cfg.ctrl.i32;
    this.ser = cfg.serializer;
    this.entry = cfg.entry;
    this.key = cfg.entry.key;
    this.recurse = cfg.recurse;
    this.ttl = cfg.ttl;
    if (cfg.ttl > 0) this.exp = new Expiry();
    const policy = policyName(cfg.ctrl.evict);
    if (policy !== null) {
      const ctrl = cfg.ctrl;
      this.bounds = new Bounds(ctrl.maxKeys, ctrl.maxBytes, policy, ctrl.evict === EVICT_LRU ? ctrl.recencyTable() : null);
    }
    this.recordsReads = this.bounds !== null && policy === 'lru';
    this.generations = new Generations(cfg.name, cfg.ctrl, cfg.serializer);
    this.feed = new ChangeFeed(cfg.ctrl, cfg.entry.slot, () => this.ctrlSegName(), () => this.sync(false));
    this.lock = this.lockFor(cfg.lockTimeout, () => this.check());
    this.slotGuard = this.guardSlot();
    registerEngine(this.key, this);
  }

  get map(): ReadonlyMap<Key, unknown> {
    return this.local;
  }
  get gen(): number {
    return this.#gen;
  }
  get pos(): number {
    return this.#pos;
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
      this.#stream.unmap();
      this.generations.unmap();
      ctrl.seg.unmap();
      this.local = new Map();
    }
  }

  /** Undoes a failed open (before any handle saw this engine): frees the slot and unmaps what was mapped. */
  abandon(): void {
    this.#closed = true;
    forgetEngine(this.key, this);
    native.slotGuardStop(this.slotGuard);
    if (dropThreadEntry(this.entry)) this.ctrl.releaseSlot(this.entry.slot);
    this.generations.unmap();
    if (this.#gen >= 0) this.#stream.unmap();
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
    if (Atomics.load(this.ci32, I_COUNTER) !== this.seenCount) this.sync(false);
    if (this.exp !== null) this.dropExpired();
    return this.local;
  }

  /**
   * Records a read of root key `key` in the recency table, sampled (only when recordsReads; after current()): twice
   * the change counter this handle synced to. (A write made at counter c marks its keys 2c + 1: a read
   * before it is older, a read after it newer.)
   */
  touch(key: Key): void {
    this.bounds!.read(key, this.seenCount << 1);
  }

  // ---- expiry ---------------------------------------------------------------------------------

  /** The deadline of a root key (ms since the epoch), or undefined if it has none. */
  deadline(key: Key): number | undefined {
    return this.exp?.get(key);
  }

  /**
   * Removes the root keys whose deadline passed from the local copy, without the lock: a read never
   * shows an expired key (see Expiry.dropDue). Not inside a transaction of this thread (its undo log
   * covers the local copy).
   */
  dropExpired(): void {
    const e = this.exp;
    if (e === null || this.#tx !== null) return;
    e.dropDue(this.local, Date.now(), this.feed.listening ? (key) => this.feed.queue({ type: 'expire', key }) : null);
  }

  /**
   * Under the lock, before a write: publishes the deletes of expired keys that nobody published yet, at
   * most EXPIRED_PER_WRITE per write (the rest go with the next writes), as a frame of their own.
   */
  private publishExpired(): void {
    const e = this.exp;
    if (e === null) return;
    this.dropExpired();
    if (e.unpublished.size === 0) return;
    const keys = e.toPublish(EXPIRED_PER_WRITE);
    const enc = (this.expEnc ??= new Encoder());
    enc.beginFrame();
    const ops = encodeWrite(
      enc,
      keys.map((key) => ({ op: OP_EXPIRED, key, value: undefined, path: null })),
      this.ser,
      false,
    );
    this.publishFrame(enc, enc.finishFrame());
    for (const k of keys) {
      e.unpublished.delete(k);
      this.bounds?.forget(k);
    }
    this.ctrl.recordExpired(keys.length);
    if (this.#onFrame !== null) tellOwnFrame(this.#onFrame, enc, ops);
  }

  /**
   * The deadline and bounds side of an op applied to the tree (see Expiry.track, Bounds.track; `size`:
   * the op's entry size); the deadline table is made by the first EXPIRE.
   */
  private track(o: Op, undo: Undo[] | null, size: number): void {
    if (o.path !== null) return;
    if (this.bounds !== null) this.bounds.track(o, size, undo, this.local);
    if (this.exp === null) {
      if (o.op !== OP_EXPIRE) return;
      this.exp = new Expiry();
    }
    this.exp.track(this.local, o, undo);
  }

  /** Applies everything published since the last sync. Returns the number of operations applied. */
  sync(force: boolean): number {
    const c = Atomics.load(this.ci32, I_COUNTER);
    if (!force && c === this.seenCount) return 0;
    this.syncing++;
    try {
      return this.syncTo(c);
    } finally {
      if (--this.syncing === 0 && this.refs === 0 && this.entry.depth === 0) this.close();
    }
  }

  private syncTo(c: number): number {
    const ctrl = this.ctrl;
    let n = 0;
    for (let attempt = 0; ; attempt++) {
      const g = ctrl.gen();
      if (g < 0) throw new CorruptSegmentError(`${ctrl.name}: invalid published generation ${g}`);
      if (g === this.#gen) {
        n += this.replay(this.#stream.end());
        break;
      }
      if (g < this.#gen) throw new CorruptSegmentError(`${ctrl.name}: published generation went back from ${this.#gen} to ${g}`);
      if (g === this.#gen + 1 && this.#gen >= 0) {
        // the common case: finish the sealed stream, then continue at the start of the next one
        const next = this.generations.openStream(g);
        if (next !== null) {
          n += this.replay(this.#stream.end());
          this.#stream.unmap();
          this.#stream = next;
          this.#reserved = 0;
          this.#gen = g;
          this.#pos = 0;
          diag.generationSwitched(this.name, g, false);
          continue;
        }
      }
      if (this.load(g)) {
        n++;
        continue;
      }
      // g's segments exist from before g is published until after g+1 is: missing while g is still the
      // published generation, they were removed (by hand, a crash), not superseded
      if (attempt > 10_000 || ctrl.gen() === g) throw new CorruptSegmentError(`${ctrl.name}: cannot open generation ${g} (segments missing)`);
    }
    this.seenCount = c;
    return n;
  }

  /** Loads generation g from its dump; false if its segments are gone (a newer generation exists). */
  private load(g: number): boolean {
    const sizes = this.bounds !== null ? new Map<Key, number>() : undefined;
    const loaded = this.generations.load(g, sizes);
    if (loaded === null) return false;
    const first = this.#gen < 0;
    this.local = loaded.map;
    if (sizes !== undefined) this.bounds!.load(sizes);
    if (this.exp !== null || loaded.deadlines.size > 0) (this.exp ??= new Expiry()).load(loaded.deadlines);
    if (!first) this.#stream.unmap();
    this.#stream = loaded.stream;
    this.#reserved = 0;
    this.#gen = g;
    this.#pos = loaded.stream.dump.streamStart;
    if (!first) {
      if (this.feed.listening) this.feed.queue({ type: 'reload' });
      this.#onFrame?.(null, [], null);
      diag.generationSwitched(this.name, g, true);
    }
    return true;
  }

  /** Replays frames of the current stream from pos to `end`. */
  private replay(end: number): number {
    let pos = this.#pos;
    if (pos === end) return 0;
    if (pos > end) throw new CorruptSegmentError(`${this.#stream.seg.name}: published end ${end} is before ${pos}`);
    const s = this.#stream;
    const d = s.decoder;
    const ops = this.ops;
    let n = 0;
    const hook = this.#onFrame;
    while (pos < end) {
      const next = s.frameBody(pos, end);
      const bodyAt = d.pos;
      if (d.u8[d.pos] === OP_SET) {
        // the common frame, a SET of a root key: applied without allocating an operation
        d.skip();
        const key = d.key();
        const value = d.value(this.ser);
        if (d.pos !== d.limit) d.fail(`${d.limit - d.pos} trailing bytes after an operation`);
        this.local.set(key, value);
        if (this.exp !== null) this.exp.forget(key);
        if (this.bounds !== null) this.bounds.set(key, d.pos - bodyAt - 1);
        pos = next;
        this.#pos = pos;
        n++;
        if (this.feed.listening) this.feed.queue({ type: 'set', key, value });
        if (hook !== null) hook(Buffer.from(d.u8.subarray(bodyAt, d.limit)), [{ op: OP_SET, key, value, path: null }], null);
        continue;
      }
      ops.length = 0;
      const sizes = this.bounds !== null ? this.sizes : null;
      if (sizes !== null) sizes.length = 0;
      d.sizes = sizes;
      d.body(this.ser, ops);
      pos = next;
      // verify every path before applying any of the frame (a path may name a nested dict that an
      // earlier operation of the same frame creates)
      let creates = false;
      for (const o of ops) {
        if (o.path && !creates && this.target(o.path) === undefined) this.missing(o.path, true);
        if (o.op === OP_SET && o.value instanceof Node) creates = true;
      }
      // an EXPIRED of a key already dropped here (dropExpired) was reported then
      const changes = this.feed.listening ? ops.filter((o) => isChange(o.op) && (o.op !== OP_EXPIRED || this.local.has(o.key!))).map(changeOf) : null;
      for (let i = 0; i < ops.length; i++) this.apply(ops[i]!, sizes === null ? 0 : sizes[i]!);
      this.#pos = pos;
      n += ops.length;
      if (changes !== null) for (const c of changes) this.feed.queue(c);
      if (hook !== null) hook(Buffer.from(d.u8.subarray(bodyAt, d.limit)), ops.slice(), d.note);
    }
    return n;
  }

  /** Decodes (without applying) the frames of the current stream in [from, to), for the bridge's restart. */
  framesBetween(from: number, to: number, cb: FrameCallback): void {
    decodeFrames(this.#stream, this.ser, from, to, cb);
  }

  private missing(path: Path, corrupt: boolean): never {
    const where = path.map((k) => JSON.stringify(k)).join(' > ');
    if (corrupt) throw new CorruptSegmentError(`${this.ctrl.name}: a frame writes into the missing nested dict ${where}`);
    throw new NotFoundError(`the nested dict ${where} of ${JSON.stringify(this.name)} no longer exists (deleted or replaced)`);
  }

  /** The local map at `path` (null: the root), or undefined if it does not exist (or is not a dict). */
  target(path: Path | null): ReadonlyMap<Key, unknown> | undefined {
    return targetOf(this.local, path);
  }

  private apply(o: Op, size: number): void {
    if (!applyOp(this.local, o)) this.missing(o.path!, true);
    this.track(o, null, size);
  }

  private applyWithUndo(o: Op, undo: Undo[], size: number): void {
    if (!applyWithUndo(this.local, o, undo)) this.missing(o.path!, false);
    this.track(o, undo, size);
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
      if (this.#pos + len <= this.#stream.capacity) {
        this.publishFrame(enc, len); // appends: the local copy changes only once that worked
        this.local.set(key, local);
        if (this.exp !== null) this.exp.forget(key);
      } else {
        // a new generation dumps the dict with this write in it: apply it first, undo if that fails
        const undo: Undo[] = [];
        this.applyWithUndo({ op: OP_SET, key, value: local, path: null }, undo, 0);
        try {
          this.publishFrame(enc, len);
        } catch (e) {
          undoAll(undo);
          throw e;
        }
      }
      if (this.feed.listening) this.feed.queue({ type: 'set', key, value: local });
      if (this.#onFrame !== null) tellOwnFrame(this.#onFrame, enc, [{ op: OP_SET, key, value: local, path: null }]);
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
        for (let i = 0; i < ops.length; i++) this.applyWithUndo(ops[i]!, tx.undo, sizes === undefined ? 0 : sizes[i]!);
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
        for (let i = 0; i < ops.length; i++) this.applyWithUndo(ops[i]!, undo, sizes === undefined ? 0 : sizes[i]!);
        if (this.bounds !== null) {
          const victims = this.evict(ops, undo);
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
      if (this.#onFrame !== null) tellOwnFrame(this.#onFrame, enc, ops);
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
            const victims = this.evict(tx.ops, tx.undo);
            appendKeyOps(enc, OP_EVICTED, victims); // the batch's count includes them (patched again below)
            evicted = victims.length;
          }
          enc.patchU32(tx.countAt, tx.ops.length);
          const len = enc.finishFrame();
          this.checkUnmoved();
          this.publishFrame(enc, len);
        } catch (e) {
          undoAll(tx.undo);
          throw e;
        }
        if (evicted > 0) this.ctrl.recordEvicted(evicted);
        if (this.feed.listening) for (const o of tx.ops) if (isChange(o.op)) this.feed.queue(changeOf(o));
        if (this.#onFrame !== null) tellOwnFrame(this.#onFrame, enc, tx.ops);
      }
      if (enc.buf.length > 1 << 24) this.txEnc = null;
      return result;
    } finally {
      lock.exit();
    }
  }

  /**
   * Under the lock, before a write: brings the local copy up to the published end. The end can be
   * ahead of what the counter announced only if a writer died between publishing and bumping it.
   */
  private syncForWrite(): void {
    this.sync(false);
    const end = this.#stream.end();
    if (end !== this.#pos) this.replay(end);
    if (this.exp !== null) this.publishExpired();
  }

  /** A fresh list for the entry sizes of a write of a bounded dict (they count toward maxBytes and stats().bytes), else undefined. */
  private entrySizes(): number[] | undefined {
    return this.bounds !== null ? [] : undefined;
  }

  /**
   * Under the lock, once a write's ops are applied locally: while the dict is over its bounds, the
   * policy's next victim is evicted (applied with undo, appended to `ops`). Returns the evicted keys,
   * which the caller adds to the write's frame: every process applies the same evictions with it.
   */
  private evict(ops: Op[], undo: Undo[]): Key[] {
    const b = this.bounds!;
    const tick = (this.seenCount << 1) + 1; // between the reads before this write and those after (see touch)
    b.touchWritten(ops, tick);
    const victims: Key[] = [];
    while (b.over(this.local.size)) {
      const k = b.victim(tick);
      if (k === undefined) break;
      const o: Op = { op: OP_EVICTED, key: k, value: undefined, path: null };
      this.applyWithUndo(o, undo, 0);
      ops.push(o);
      victims.push(k);
    }
    return victims;
  }

  /**
   * Publishes a finished frame: appended at the end, or as the start of a new generation if it does
   * not fit (then the write must already be applied locally: the dump includes it). Caller holds the
   * lock and has called syncForWrite().
   */
  private publishFrame(enc: Encoder, len: number): void {
    const s = this.#stream;
    const at = this.#pos;
    if (at + len <= s.capacity) {
      if (at + len > this.#reserved) this.#reserved = this.reserveFor(s, at + len);
      s.append(enc, len, at);
      this.#pos = at + len;
      this.published();
      return;
    }
    this.switchGeneration(enc, len);
  }

  /**
   * Before publishing what was prepared under the lock while other code ran (a transaction's fn): the
   * lock holder is the only writer and had synced, so the stream must not have moved; if it did, the
   * publish would overwrite published frames. (Single writes sync right before they publish.)
   */
  private checkUnmoved(): void {
    const s = this.#stream;
    if (s.end() !== this.#pos || this.ctrl.genLow() !== this.#gen) {
      throw new CorruptSegmentError(
        `${this.ctrl.name}: the stream moved while this thread held the lock (at ${this.#pos} of generation ${this.#gen}, ` +
          `published ${s.end()} of generation ${this.ctrl.gen()}); nothing was written`,
      );
    }
  }

  /** Allocates stream pages up to `end` (any writer may have done it already); returns the reserved size. */
  private reserveFor(s: Stream, end: number): number {
    s.ensureReserved(end);
    return s.reserved;
  }

  /** After a publish: bump the change counter and wake listeners of any process (only if there are any). */
  private published(): void {
    this.seenCount = this.ctrl.bump();
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
    const g = this.#gen;
    const { stream, dumpLen } = this.generations.write(g, this.local, this.exp?.deadlines, frame, len);
    this.ctrl.publishGen(g + 1);
    this.ctrl.recordDump(dumpLen);
    diag.dumped(this.name, g + 1, dumpLen, this.local.size);
    this.published();
    this.generations.retire(g);
    this.#stream.unmap();
    this.#stream = stream;
    this.#reserved = stream.reserved;
    this.#gen = g + 1;
    this.#pos = len;
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
      stream: this.#stream,
      keys: this.local.size,
      generation: this.#gen,
      serializer: this.ser.name,
      recurse: this.recurse,
      ttl: this.ttl,
      expiring: this.exp?.deadlines.size ?? 0,
      bytes: this.bounds?.bytes ?? 0,
    });
  }

  tapFrames(hook: FrameHook | null): void {
    this.#onFrame = hook;
  }

  // ---- change events --------------------------------------------------------------------------

  /** Starts delivering changes of other processes (see changes for the rest of the feed). */
  startListening(): void {
    this.feed.start(this.seenCount, this.#closed);
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

// One thread's copy of a dict (a tree of Maps) and its place in the update stream: catching up with what
// was published (replaying frames, loading dumps), applying the thread's own writes, and the expiry and
// bounds bookkeeping of everything applied. The write path (Core) decides what to publish; this owns
// what the thread has seen.

import { changeOf, isChange, OP_EVICTED, OP_EXPIRE, OP_EXPIRED, OP_SET, type Key, type Op, type Path } from '../codec/ops.js';
import type { Serializer } from '../codec/serializer.js';
import { applyOp, applyWithUndo, Node, targetOf, type Undo } from '../codec/tree.js';
import type { Encoder } from '../codec/wire.js';
import * as diag from '../diagnostics.js';
import { CorruptSegmentError, NotFoundError } from '../errors.js';
import type { Control } from '../shm/control.js';
import type { Stream } from '../shm/stream.js';
import type { Bounds } from './bounds.js';
import type { ChangeFeed } from './changes.js';
import { Expiry } from './expiry.js';
import { decodeFrames, type FrameCallback, type FrameHook } from './frames.js';
import type { Generations } from './generation.js';

export class LocalCopy {
  /** the change counter as of the last sync (plain fields on the read path: no private-name checks) */
  private seen = 0;
  private local: Map<Key, unknown> = new Map();
  /** deadlines of root keys; null while the dict has none (reads then pay nothing for expiry) */
  private exp: Expiry | null;
  private readonly sizes: number[] = [];
  private readonly ops: Op[] = [];
  #stream!: Stream;
  #gen = -1;
  #pos = 0;
  /** Stream bytes known to have pages (a cache of the stream header's reserved size; reloaded when passed). */
  #reserved = 0;
  /** called for every frame replayed or published by this thread (the Redis bridge's tap) */
  #onFrame: FrameHook | null = null;

  constructor(
    private readonly name: string,
    private readonly ctrl: Control,
    private readonly generations: Generations,
    private readonly ser: Serializer,
    private readonly feed: ChangeFeed,
    /** the bounds and eviction bookkeeping of a bounded dict (null: unbounded) */
    readonly bounds: Bounds | null,
    expiring: boolean,
  ) {
    this.exp = expiring ? new Expiry() : null;
  }

  get map(): ReadonlyMap<Key, unknown> {
    return this.local;
  }
  get seenCount(): number {
    return this.seen;
  }
  get gen(): number {
    return this.#gen;
  }
  get pos(): number {
    return this.#pos;
  }
  get stream(): Stream {
    return this.#stream;
  }
  /** whether any root key has (or had) a deadline here */
  get expires(): boolean {
    return this.exp !== null;
  }
  /** the deadlines of root keys (ms since the epoch) */
  get deadlines(): ReadonlyMap<Key, number> | undefined {
    return this.exp?.deadlines;
  }
  get onFrame(): FrameHook | null {
    return this.#onFrame;
  }
  tapFrames(hook: FrameHook | null): void {
    this.#onFrame = hook;
  }

  /** After a publish of this thread: the counter it bumped to (everything before is applied here). */
  caughtUp(count: number): void {
    this.seen = count;
  }

  /** Unmaps the stream and drops the copy (the engine closed). */
  release(): void {
    if (this.#gen >= 0) this.#stream.unmap();
    this.local = new Map();
  }

  // ---- reads ----------------------------------------------------------------------------------

  /** Records a read of root key `key` in the recency table: twice the counter synced to (see Core.touch). */
  touch(key: Key): void {
    this.bounds!.read(key, this.seen << 1);
  }

  /** The deadline of a root key (ms since the epoch), or undefined if it has none. */
  deadline(key: Key): number | undefined {
    return this.exp?.get(key);
  }

  /** The local map at `path` (null: the root), or undefined if it does not exist (or is not a dict). */
  target(path: Path | null): ReadonlyMap<Key, unknown> | undefined {
    return targetOf(this.local, path);
  }

  /**
   * Removes the root keys whose deadline passed, without the lock: a read never shows an expired key (see
   * Expiry.dropDue).
   */
  dropExpired(): void {
    const e = this.exp;
    if (e === null) return;
    e.dropDue(this.local, Date.now(), this.feed.listening ? (key) => this.feed.queue({ type: 'expire', key }) : null);
  }

  /** Under the lock: drops what expired and returns up to `max` expired keys whose delete nobody published yet. */
  expiredToPublish(max: number): Key[] {
    const e = this.exp;
    if (e === null) return [];
    this.dropExpired();
    return e.unpublished.size === 0 ? [] : e.toPublish(max);
  }

  /** The deletes of `keys` (from expiredToPublish) were published. */
  expiredPublished(keys: readonly Key[]): void {
    for (const k of keys) {
      this.exp!.unpublished.delete(k);
      this.bounds?.forget(k);
    }
  }

  // ---- catching up ----------------------------------------------------------------------------

  /** Applies everything published up to change counter `c`. Returns the number of operations applied. */
  syncTo(c: number): number {
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
    this.seen = c;
    return n;
  }

  /**
   * Under the lock: replays what is published beyond this copy's position. The end can be ahead of what
   * the counter announced only if a writer died between publishing and bumping it.
   */
  catchUpToEnd(): void {
    const end = this.#stream.end();
    if (end !== this.#pos) this.replay(end);
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

  // ---- applying -------------------------------------------------------------------------------

  private missing(path: Path, corrupt: boolean): never {
    const where = path.map((k) => JSON.stringify(k)).join(' > ');
    if (corrupt) throw new CorruptSegmentError(`${this.ctrl.name}: a frame writes into the missing nested dict ${where}`);
    throw new NotFoundError(`the nested dict ${where} of ${JSON.stringify(this.name)} no longer exists (deleted or replaced)`);
  }

  private apply(o: Op, size: number): void {
    if (!applyOp(this.local, o)) this.missing(o.path!, true);
    this.track(o, null, size);
  }

  /** Applies one of this thread's ops (`size`: its entry size, 0 if unbounded), recording how to undo it. */
  applyWithUndo(o: Op, undo: Undo[], size: number): void {
    if (!applyWithUndo(this.local, o, undo)) this.missing(o.path!, false);
    this.track(o, undo, size);
  }

  /** This thread's SET of root key `key` (the fast path of an unbounded dict, after it was published). */
  setRoot(key: Key, value: unknown): void {
    this.local.set(key, value);
    if (this.exp !== null) this.exp.forget(key);
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

  /**
   * Under the lock, once a write's ops are applied here: while the dict is over its bounds, the policy's
   * next victim is evicted (applied with undo, appended to `ops`). Returns the evicted keys, which the
   * caller adds to the write's frame: every process applies the same evictions with it.
   */
  evict(ops: Op[], undo: Undo[]): Key[] {
    const b = this.bounds!;
    const tick = (this.seen << 1) + 1; // between the reads before this write and those after (see touch)
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

  // ---- this thread's frames -------------------------------------------------------------------

  /** Whether a frame of `len` bytes fits at the end of the current stream. */
  fits(len: number): boolean {
    return this.#pos + len <= this.#stream.capacity;
  }

  /**
   * Appends a finished frame at this copy's position (under the lock, caught up: the end of the stream);
   * false, with nothing written, if it does not fit (a new generation must start with it).
   */
  append(enc: Encoder, len: number): boolean {
    const s = this.#stream;
    const at = this.#pos;
    if (at + len > s.capacity) return false;
    if (at + len > this.#reserved) {
      s.ensureReserved(at + len); // any writer may have done it already
      this.#reserved = s.reserved;
    }
    s.append(enc, len, at);
    this.#pos = at + len;
    return true;
  }

  /** This thread published generation gen+1 (its dump written from this copy); `stream` holds `len` bytes of it. */
  switched(stream: Stream, len: number): void {
    this.#stream.unmap();
    this.#stream = stream;
    this.#reserved = stream.reserved;
    this.#gen++;
    this.#pos = len;
  }

  /**
   * Before publishing what was prepared under the lock while other code ran (a transaction's fn): the
   * lock holder is the only writer and had synced, so the stream must not have moved; if it did, the
   * publish would overwrite published frames. (Single writes sync right before they publish.)
   */
  checkUnmoved(): void {
    const s = this.#stream;
    if (s.end() !== this.#pos || this.ctrl.genLow() !== this.#gen) {
      throw new CorruptSegmentError(
        `${this.ctrl.name}: the stream moved while this thread held the lock (at ${this.#pos} of generation ${this.#gen}, ` +
          `published ${s.end()} of generation ${this.ctrl.gen()}); nothing was written`,
      );
    }
  }
}

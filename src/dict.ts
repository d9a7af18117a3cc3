// UltraDict: the public Map facade. Owns the local copy, the read fast path, the write path (lock, frame,
// publish) and generation switches (dump + new stream); see docs/ARCHITECTURE.md for the data flow.

import { inspect } from 'node:util';
import { isMainThread } from 'node:worker_threads';
import { checkKey, checksum, Encoder, OP_BATCH, OP_CLEAR, OP_DELETE, OP_SET, type DecodedOp, type Key } from './codec.js';
import { Control, CONTROL_SIZE, I_COUNTER, I_LOCK, self, STATE_ABANDONED, STATE_INITIALIZING } from './control.js';
import {
  AlreadyClosedError,
  AlreadyExistsError,
  CorruptSegmentError,
  FullDumpMemoryFullError,
  LockTimeoutError,
  NotFoundError,
  ParameterMismatchError,
  SharedMemoryError,
  TooManyAttachedError,
  UltraDictError,
} from './errors.js';
import { dropThreadEntry, SharedLock, threadEntry, type LockHandle, type LockOwner, type ThreadEntry } from './lock.js';
import { native } from './native.js';
import { controlSegment, dumpSegment, fixedDumpSegment, randomName, streamSegment, validateName } from './names.js';
import { Segment } from './segment.js';
import { removeIncarnation, removeDict } from './registry.js';
import { builtinSerializers, resolveSerializer, type Serializer, type SerializerOption } from './serializer.js';
import { encodeDump, fixedHalfSize, loadDumpSegment, loadFixedDump, writeDumpSegment, writeFixedDump } from './snapshot.js';
import { DUMP_FIXED, DUMP_NONE, DUMP_SEGMENT, MAX_CAPACITY, Stream } from './stream.js';

export type { Key } from './codec.js';

export interface UltraDictOptions {
  /** Name other processes attach by. Random (`ud_…`) if not given. 1-100 of A-Z a-z 0-9 _ - */
  name?: string;
  /** true: must create; false: must attach; undefined (default): attach or create. */
  create?: boolean;
  /** Minimum size in bytes of the update stream (default 1 MiB). */
  bufferSize?: number;
  /** 'msgpack' (default), 'json', 'v8' or a custom { name, serialize, deserialize }. */
  serializer?: SerializerOption;
  /** Size of a fixed full-dump area in bytes instead of a fresh segment per dump (default: none). */
  fullDumpSize?: number;
  /** Unlink the segments when the creating instance closes or its process exits (default true for the creator). */
  autoUnlink?: boolean;
  /** Maximum wait in ms for the lock and for a creator to finish initialising (default 10000). */
  lockTimeout?: number;
  /** Permissions of the segments (default 0o600: only the same user). */
  mode?: number;
}

export interface UltraDictStats {
  name: string;
  keys: number;
  generation: number;
  streamBytesUsed: number;
  streamBytesSize: number;
  dumps: number;
  lastDumpBytes: number;
  bufferSize: number;
  fullDumpSize: number;
  serializer: string;
  lockHolder: LockOwner | null;
  lockRecoveries: number;
  attached: number;
  creatorPid: number;
  createdAt: number;
  unlinked: boolean;
  sharedMemoryBytes: number;
}

const KNOWN_OPTIONS = new Set(['name', 'create', 'bufferSize', 'serializer', 'fullDumpSize', 'autoUnlink', 'lockTimeout', 'mode']);
export const DEFAULT_BUFFER_SIZE = 1 << 20;
export const DEFAULT_LOCK_TIMEOUT = 10_000;
/** A new stream is at least GROWTH times the dump just written: dumps cost at most 1/GROWTH per streamed byte. */
const GROWTH = 2;
const MIN_BUFFER_SIZE = 1024;

type Initial<V> = Iterable<readonly [Key, V]> | Record<string, V> | ReadonlyMap<Key, V>;

function isPlainObject(x: unknown): x is Record<string, unknown> {
  if (x === null || typeof x !== 'object') return false;
  const p = Object.getPrototypeOf(x);
  return p === Object.prototype || p === null;
}

function entriesOf<V>(items: Initial<V>, what: string): Iterable<readonly [unknown, V]> {
  if (items instanceof Map) return items as ReadonlyMap<Key, V>;
  if (isPlainObject(items)) return Object.entries(items) as [string, V][];
  if (items !== null && typeof items === 'object' && typeof (items as Iterable<unknown>)[Symbol.iterator] === 'function') {
    return items as Iterable<readonly [Key, V]>;
  }
  throw new TypeError(`${what} must be a plain object, a Map or an iterable of [key, value]`);
}

function validateOptions(o: unknown): UltraDictOptions {
  if (o === undefined) return {};
  if (!isPlainObject(o)) throw new TypeError('options must be a plain object');
  for (const k of Object.keys(o)) {
    if (!KNOWN_OPTIONS.has(k)) {
      throw new TypeError(`unknown option ${JSON.stringify(k)} (known: ${[...KNOWN_OPTIONS].join(', ')}); initial items go in the first argument`);
    }
  }
  const opts = o as UltraDictOptions;
  const int = (k: keyof UltraDictOptions, min: number, max: number): void => {
    const v = opts[k];
    if (v !== undefined && (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max)) {
      throw new TypeError(`option ${k} must be an integer from ${min} to ${max}`);
    }
  };
  int('bufferSize', MIN_BUFFER_SIZE, MAX_CAPACITY);
  int('fullDumpSize', 64, MAX_CAPACITY);
  int('mode', 0, 0o777);
  if (opts.lockTimeout !== undefined && (typeof opts.lockTimeout !== 'number' || !(opts.lockTimeout >= 0))) {
    throw new TypeError('option lockTimeout must be a number of ms >= 0');
  }
  if (opts.create !== undefined && typeof opts.create !== 'boolean') throw new TypeError('option create must be a boolean');
  if (opts.autoUnlink !== undefined && typeof opts.autoUnlink !== 'boolean') throw new TypeError('option autoUnlink must be a boolean');
  return opts;
}

const openDicts = new Set<UltraDict<unknown>>();
let exitHooked = false;

function closeAll(): void {
  for (const x of [...openDicts]) {
    try {
      x.close();
    } catch {
      // exiting: nothing more can be done
    }
  }
}

/**
 * Closes every open dict when the process exits, also on SIGINT/SIGTERM/SIGHUP when the application
 * has no handler of its own for the signal (then the signal is re-raised, so the process still dies of
 * it). An application that handles the signal itself keeps full control: its exit closes the dicts.
 */
function trackOpen(d: UltraDict<unknown>): void {
  openDicts.add(d);
  if (exitHooked) return;
  exitHooked = true;
  process.on('exit', closeAll);
  if (!isMainThread) return;
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      if (process.listenerCount(sig) > 0) return;
      closeAll();
      process.kill(process.pid, sig);
    });
  }
}

/**
 * A Map shared by every process and thread that opens the same name. Reads come from a local copy
 * (checked against one shared counter), writes are published through shared memory under a lock.
 */
export class UltraDict<V = unknown> implements Map<Key, V> {
  readonly name: string;
  /** The cross-process, cross-thread lock; re-entrant for the thread holding it. */
  readonly lock: SharedLock;

  #ctrl: Control;
  #ci32: Int32Array;
  #seen = 0;
  #map = new Map<Key, V>();
  #stream!: Stream;
  #gen = -1;
  #pos = 0;
  #ser: Serializer;
  #enc = new Encoder();
  #dumpEnc: Encoder | null = null;
  #ops: DecodedOp[] = [];
  #closed = false;
  #creator: boolean;
  #autoUnlink: boolean;
  #entry: ThreadEntry;
  #bufferSize: number;
  #fullDumpSize: number;
  #mode: number;
  #fixed: Segment | null = null;
  #lockTimeout: number;
  // the write being published (read by the dump writer if it has to switch generations)
  #pOp = 0;
  #pKey: Key = '';
  #pVal: unknown = undefined;
  #pBatch: DecodedOp[] | null = null;

  constructor(options?: UltraDictOptions);
  constructor(initial: Initial<V> | null | undefined, options?: UltraDictOptions);
  constructor(a?: unknown, b?: unknown) {
    let initial: Initial<V> | undefined;
    let optionsArg: unknown;
    if (b !== undefined || arguments.length >= 2) {
      initial = (a ?? undefined) as Initial<V> | undefined;
      optionsArg = b;
    } else if (a instanceof Map || (a !== null && typeof a === 'object' && !isPlainObject(a))) {
      initial = a as Initial<V>;
    } else {
      optionsArg = a;
    }
    const opts = validateOptions(optionsArg);
    const name = opts.name === undefined ? randomName() : validateName(opts.name);
    this.name = name;
    this.#lockTimeout = opts.lockTimeout ?? DEFAULT_LOCK_TIMEOUT;
    const explicitSer = opts.serializer !== undefined;
    let ser = resolveSerializer(opts.serializer ?? 'msgpack');

    // encode the initial items first: a bad item fails before anything exists in shared memory
    let initialDump: { enc: Encoder; len: number; count: number } | null = null;
    if (initial !== undefined) {
      const enc = new Encoder();
      const pending: DecodedOp[] = [];
      const scratch = new Encoder(64);
      for (const [k, v] of entriesOf(initial, 'initial items')) {
        checkKey(k);
        scratch.beginBody();
        pending.push({ op: OP_SET, key: k, value: scratch.value(v, ser) });
      }
      const [len, count] = encodeDump(enc, new Map(), pending, ser);
      initialDump = { enc, len, count };
    }

    const ctrlName = controlSegment(name);
    const deadline = performance.now() + this.#lockTimeout;
    let ctrl: Control | null = null;
    let creator = false;
    for (;;) {
      if (opts.create !== false) {
        try {
          ctrl = Control.create(ctrlName, {
            bufferSize: opts.bufferSize ?? DEFAULT_BUFFER_SIZE,
            fullDumpSize: opts.fullDumpSize ?? 0,
            serializer: ser.name,
            mode: opts.mode ?? 0o600,
          });
          creator = true;
          break;
        } catch (e) {
          if (!(e instanceof SharedMemoryError && e.osCode === 'EEXIST')) throw e;
          if (opts.create === true) throw new AlreadyExistsError(`an UltraDict named ${JSON.stringify(name)} already exists`);
        }
      }
      try {
        ctrl = Control.open(ctrlName);
      } catch (e) {
        // EEMPTY: a creator between shm_open and ftruncate (microseconds), or a foreign empty file
        if (!(e instanceof SharedMemoryError && e.osCode === 'EEMPTY')) throw e;
        if (performance.now() > deadline) throw new CorruptSegmentError(`${ctrlName} exists but is empty: not an ultradict dict`);
        sleepMs(1);
        continue;
      }
      if (ctrl === null) {
        if (opts.create === false) throw new NotFoundError(`no UltraDict named ${JSON.stringify(name)} exists`);
        continue; // it vanished between our create and open: try to create again
      }
      if (waitReady(ctrl, ctrlName, deadline)) break;
      ctrl.seg.unmap();
      ctrl = null;
      if (performance.now() > deadline) throw new LockTimeoutError(`timed out attaching to ${JSON.stringify(name)}`, null);
    }
    this.#ctrl = ctrl;
    this.#ci32 = ctrl.i32;
    this.#creator = creator;
    this.#autoUnlink = opts.autoUnlink ?? creator;
    try {
      if (!creator) {
        ctrl.checkHeader();
        const recorded = ctrl.serializerName;
        if (explicitSer) {
          if (ser.name !== recorded) {
            throw new ParameterMismatchError(`${JSON.stringify(name)} uses serializer '${recorded}', not '${ser.name}'`);
          }
        } else if (Object.hasOwn(builtinSerializers, recorded)) {
          ser = builtinSerializers[recorded as keyof typeof builtinSerializers];
        } else {
          throw new ParameterMismatchError(`${JSON.stringify(name)} uses the custom serializer '${recorded}': pass it as the serializer option`);
        }
        const mismatch = (what: string, given: number | undefined, actual: number): void => {
          if (given !== undefined && given !== actual) {
            throw new ParameterMismatchError(`${JSON.stringify(name)} was created with ${what} ${actual}, not ${given}`);
          }
        };
        mismatch('bufferSize', opts.bufferSize, ctrl.bufferSize);
        mismatch('fullDumpSize', opts.fullDumpSize, ctrl.fullDumpSize);
        mismatch('mode', opts.mode, ctrl.mode);
      }
      this.#ser = ser;
      this.#bufferSize = ctrl.bufferSize;
      this.#fullDumpSize = ctrl.fullDumpSize;
      this.#mode = ctrl.mode;
      const c = ctrl;
      this.#entry = threadEntry(`${ctrlName}:${ctrl.tag}`, () => {
        const slot = c.claimSlot(() => (Atomics.load(c.i32, I_LOCK) & 0x3fffffff) - 1);
        if (slot < 0) throw new TooManyAttachedError(`every attach slot of ${JSON.stringify(name)} is held by a live thread`);
        return slot;
      });
    } catch (e) {
      if (creator) abandon(ctrl, ctrlName);
      ctrl.seg.unmap();
      throw e;
    }
    this.lock = new SharedLock(ctrl, this.#entry, this.#lockTimeout, () => this.#recover(), () => this.#check());
    try {
      if (creator) this.#initialize(initialDump);
      this.#sync(true);
    } catch (e) {
      if (dropThreadEntry(this.#entry)) ctrl.releaseSlot(this.#entry.slot);
      if (creator) abandon(ctrl, ctrlName);
      this.#stream?.unmap();
      ctrl.seg.unmap();
      throw e;
    }
    trackOpen(this as UltraDict<unknown>);
  }

  /** Creator: writes generation 0 (the initial items as its dump) and marks the dict ready. */
  #initialize(initial: { enc: Encoder; len: number; count: number } | null): void {
    const ctrl = this.#ctrl;
    let dumpSeg: Segment | null = null;
    let kind = DUMP_NONE;
    let len = 0;
    let sum = 0;
    if (this.#fullDumpSize > 0) {
      this.#fixed = Segment.create(fixedDumpSegment(this.name, ctrl.tag), 2 * fixedHalfSize(this.#fullDumpSize), this.#mode);
    }
    if (initial !== null && initial.count > 0) {
      len = initial.len;
      sum = checksum(initial.enc.i32, initial.enc.buf, 0, len);
      if (this.#fixed !== null) {
        if (len > this.#fullDumpSize) {
          throw new FullDumpMemoryFullError(`the initial items need ${len} bytes; fullDumpSize is ${this.#fullDumpSize}`);
        }
        writeFixedDump(this.#fixed, this.#fullDumpSize, ctrl.idLo, ctrl.idHi, 0, initial.enc, len, sum);
        kind = DUMP_FIXED;
      } else {
        dumpSeg = writeDumpSegment(dumpSegment(this.name, ctrl.tag, 0), this.#mode, ctrl.idLo, ctrl.idHi, 0, initial.enc, len, sum);
        kind = DUMP_SEGMENT;
      }
    }
    const capacity = capacityFor(this.#bufferSize, len, 0);
    const s = Stream.create(streamSegment(this.name, ctrl.tag, 0), this.#mode, ctrl.idLo, ctrl.idHi, 0, capacity, {
      kind,
      len,
      checksum: sum,
      streamStart: 0,
    });
    s.unmap(); // #sync opens it like any attacher would
    dumpSeg?.unmap();
    if (kind !== DUMP_NONE) ctrl.recordDump(len);
    ctrl.publishGen(0);
    ctrl.bump();
    ctrl.setReady();
  }

  // ---- reading ---------------------------------------------------------------------------------

  #check(): void {
    if (this.#closed) throw new AlreadyClosedError(`UltraDict ${JSON.stringify(this.name)} is closed`);
  }

  /** Brings the local copy up to date if anything was published since the last look. */
  #read(): void {
    if (this.#closed) this.#check();
    if (Atomics.load(this.#ci32, I_COUNTER) !== this.#seen) this.#sync(false);
  }

  /** Applies everything published since the last sync. Returns the number of operations applied. */
  #sync(force: boolean): number {
    const ctrl = this.#ctrl;
    const c = Atomics.load(this.#ci32, I_COUNTER);
    if (!force && c === this.#seen) return 0;
    let n = 0;
    for (let attempt = 0; ; attempt++) {
      const g = ctrl.gen();
      if (g === this.#gen) {
        n += this.#replay(this.#stream.end());
        break;
      }
      if (g < this.#gen) throw new CorruptSegmentError(`${ctrl.name}: published generation went back from ${this.#gen} to ${g}`);
      if (g === this.#gen + 1 && this.#gen >= 0) {
        // the common case: finish the sealed stream, then continue at the start of the next one
        const next = Stream.open(streamSegment(this.name, ctrl.tag, g), ctrl.idLo, ctrl.idHi, g);
        if (next !== null) {
          n += this.#replay(this.#stream.end());
          this.#stream.unmap();
          this.#stream = next;
          this.#gen = g;
          this.#pos = 0;
          continue;
        }
      }
      if (this.#load(g)) {
        n++;
        continue;
      }
      if (attempt > 10_000) throw new CorruptSegmentError(`${ctrl.name}: cannot open generation ${g} (segments missing)`);
    }
    this.#seen = c;
    return n;
  }

  /** Loads generation g from its dump; false if its segments are gone (a newer generation exists). */
  #load(g: number): boolean {
    const ctrl = this.#ctrl;
    const s = Stream.open(streamSegment(this.name, ctrl.tag, g), ctrl.idLo, ctrl.idHi, g);
    if (s === null) return false;
    try {
      const d = s.dump;
      const expect = { idLo: ctrl.idLo, idHi: ctrl.idHi, gen: g, len: d.len, checksum: d.checksum };
      let map: Map<Key, unknown>;
      if (d.kind === DUMP_NONE) {
        map = new Map();
      } else if (d.kind === DUMP_SEGMENT) {
        const seg = Segment.tryOpen(dumpSegment(this.name, ctrl.tag, g));
        if (seg === null) {
          s.unmap();
          return false;
        }
        try {
          map = loadDumpSegment(seg, expect, this.#ser);
        } finally {
          seg.unmap();
        }
      } else {
        this.#fixed ??= Segment.open(fixedDumpSegment(this.name, ctrl.tag));
        const m = loadFixedDump(this.#fixed, this.#fullDumpSize, expect, this.#ser);
        if (m === null) {
          s.unmap();
          return false;
        }
        map = m;
      }
      this.#map = map as Map<Key, V>;
      this.#stream?.unmap();
      this.#stream = s;
      this.#gen = g;
      this.#pos = d.streamStart;
      return true;
    } catch (e) {
      if (this.#stream !== s) s.unmap();
      throw e;
    }
  }

  /** Replays frames of the current stream from #pos to `end`. */
  #replay(end: number): number {
    let pos = this.#pos;
    if (pos === end) return 0;
    if (pos > end) throw new CorruptSegmentError(`${this.#stream.seg.name}: published end ${end} is before ${pos}`);
    const s = this.#stream;
    const ops = this.#ops;
    const map = this.#map;
    let n = 0;
    while (pos < end) {
      ops.length = 0;
      pos = s.readFrame(pos, end, this.#ser, ops);
      this.#pos = pos;
      for (const o of ops) {
        if (o.op === OP_SET) map.set(o.key!, o.value as V);
        else if (o.op === OP_DELETE) map.delete(o.key!);
        else map.clear();
      }
      n += ops.length;
    }
    return n;
  }

  get(key: Key): V | undefined {
    this.#read();
    return this.#map.get(key);
  }

  has(key: Key): boolean {
    this.#read();
    return this.#map.has(key);
  }

  get size(): number {
    this.#read();
    return this.#map.size;
  }

  /** The local copy, not refreshed: the fastest read when staleness is acceptable. */
  get data(): ReadonlyMap<Key, V> {
    this.#check();
    return this.#map;
  }

  /** Applies pending updates now; returns how many operations were applied (a reload counts as one). */
  refresh(): number {
    this.#check();
    return this.#sync(true);
  }

  entries(): MapIterator<[Key, V]> {
    this.#read();
    return Array.from(this.#map)[Symbol.iterator]() as unknown as MapIterator<[Key, V]>;
  }

  keys(): MapIterator<Key> {
    this.#read();
    return Array.from(this.#map.keys())[Symbol.iterator]() as unknown as MapIterator<Key>;
  }

  values(): MapIterator<V> {
    this.#read();
    return Array.from(this.#map.values())[Symbol.iterator]() as unknown as MapIterator<V>;
  }

  [Symbol.iterator](): MapIterator<[Key, V]> {
    return this.entries();
  }

  forEach(callbackfn: (value: V, key: Key, map: Map<Key, V>) => void, thisArg?: unknown): void {
    for (const [k, v] of this.entries()) callbackfn.call(thisArg, v, k, this);
  }

  get [Symbol.toStringTag](): string {
    return 'UltraDict';
  }

  toJSON(): Record<string, V> {
    const o: Record<string, V> = {};
    for (const [k, v] of this.entries()) o[String(k)] = v;
    return o;
  }

  [inspect.custom](depth: number, options: object): string {
    if (this.#closed) return `UltraDict(${this.name}) <closed>`;
    return `UltraDict(${this.name}) ${inspect(new Map(this.entries()), { ...options, depth } as object)}`;
  }

  // ---- writing ---------------------------------------------------------------------------------

  set(key: Key, value: V): this {
    this.#check();
    checkKey(key);
    const enc = this.#enc;
    enc.beginFrame();
    enc.u8(OP_SET);
    enc.key(key);
    const local = enc.value(value, this.#ser) as V;
    const len = enc.finishFrame();
    const lock = this.lock;
    lock.enter();
    try {
      this.#sync(false);
      this.#pOp = OP_SET;
      this.#pKey = key;
      this.#pVal = local;
      this.#publish(len);
      this.#map.set(key, local);
    } finally {
      this.#pVal = undefined;
      lock.exit();
    }
    return this;
  }

  delete(key: Key): boolean {
    this.#check();
    checkKey(key);
    const lock = this.lock;
    lock.enter();
    try {
      this.#sync(false);
      if (!this.#map.has(key)) return false;
      const enc = this.#enc;
      enc.beginFrame();
      enc.u8(OP_DELETE);
      enc.key(key);
      const len = enc.finishFrame();
      this.#pOp = OP_DELETE;
      this.#pKey = key;
      this.#publish(len);
      this.#map.delete(key);
      return true;
    } finally {
      lock.exit();
    }
  }

  clear(): void {
    this.#check();
    const lock = this.lock;
    lock.enter();
    try {
      this.#sync(false);
      if (this.#map.size === 0) return;
      const enc = this.#enc;
      enc.beginFrame();
      enc.u8(OP_CLEAR);
      const len = enc.finishFrame();
      this.#pOp = OP_CLEAR;
      this.#publish(len);
      this.#map.clear();
    } finally {
      lock.exit();
    }
  }

  /** Several writes published as one atomic batch: other processes see all of them or none. */
  update(items: Initial<V>): this {
    this.#check();
    const enc = this.#enc;
    const batch: DecodedOp[] = [];
    enc.beginFrame();
    enc.u8(OP_BATCH);
    const countAt = enc.pos;
    enc.u32(0);
    for (const [k, v] of entriesOf(items, 'update items')) {
      checkKey(k);
      enc.u8(OP_SET);
      enc.key(k);
      batch.push({ op: OP_SET, key: k, value: enc.value(v, this.#ser) });
    }
    if (batch.length === 0) return this;
    enc.patchU32(countAt, batch.length);
    const len = enc.finishFrame();
    const lock = this.lock;
    lock.enter();
    try {
      this.#sync(false);
      this.#pOp = OP_BATCH;
      this.#pBatch = batch;
      this.#publish(len);
      for (const o of batch) this.#map.set(o.key!, o.value as V);
    } finally {
      this.#pBatch = null;
      lock.exit();
    }
    return this;
  }

  /** Forces a full dump now (a new generation). */
  dump(): void {
    this.#check();
    const lock = this.lock;
    lock.enter();
    try {
      this.#sync(false);
      this.#switchGeneration(0, []);
    } finally {
      lock.exit();
    }
  }

  /** Runs fn under the lock and returns its result: `dict.withLock(() => dict.set('n', dict.get('n') + 1))`. */
  withLock<R>(fn: () => R): R {
    this.#check();
    if (typeof fn !== 'function') throw new TypeError('withLock needs a function');
    const lock = this.lock;
    lock.enter();
    let result: R;
    try {
      result = fn();
    } finally {
      lock.exit();
    }
    if (result !== null && typeof result === 'object' && typeof (result as { then?: unknown }).then === 'function') {
      throw new TypeError(
        'withLock(fn): fn returned a Promise; the lock is synchronous and was released when fn returned. ' +
          'Do the awaited work before or after withLock.',
      );
    }
    return result;
  }

  /** Appends the encoded frame (this.#enc) to the stream, or starts a new generation if it does not fit. */
  #publish(len: number): void {
    const s = this.#stream;
    let at = s.end();
    if (at !== this.#pos) {
      // only a writer that died between publishing its end and bumping the counter leaves this
      this.#replay(at);
      at = this.#pos;
    }
    if (at + len <= s.capacity) {
      s.append(this.#enc, len, at);
      this.#pos = at + len;
      this.#seen = this.#ctrl.bump();
      return;
    }
    const pending =
      this.#pOp === OP_BATCH
        ? this.#pBatch!
        : [{ op: this.#pOp, key: this.#pKey, value: this.#pVal } satisfies DecodedOp];
    this.#switchGeneration(len, pending);
  }

  /**
   * Starts generation gen+1: a dump of the dict with `pending` applied, and a new stream whose first
   * frame (if len > 0) is the pending write, sized so that dumps stay amortised. Nothing is visible to
   * others until the generation number is published; a failure leaves the dict as it was.
   */
  #switchGeneration(len: number, pending: readonly DecodedOp[]): void {
    const ctrl = this.#ctrl;
    const tag = ctrl.tag;
    const g = this.#gen;
    const g1 = g + 1;
    const enc = (this.#dumpEnc ??= new Encoder(64 * 1024));
    const [dumpLen, count] = encodeDump(enc, this.#map as Map<Key, unknown>, pending, this.#ser);
    const fixed = this.#fullDumpSize > 0;
    if (fixed && count > 0 && dumpLen > this.#fullDumpSize) {
      throw new FullDumpMemoryFullError(
        `a full dump of ${JSON.stringify(this.name)} needs ${dumpLen} bytes but fullDumpSize is ${this.#fullDumpSize}; the write was not applied`,
      );
    }
    const capacity = capacityFor(this.#bufferSize, dumpLen, len);
    const sName = streamSegment(this.name, tag, g1);
    const dName = dumpSegment(this.name, tag, g1);
    // leftovers of a writer that died before publishing g1
    Segment.unlink(sName);
    if (!fixed) Segment.unlink(dName);
    const sum = count > 0 ? checksum(enc.i32, enc.buf, 0, dumpLen) : 0;
    let kind = DUMP_NONE;
    let stream: Stream | null = null;
    try {
      if (count > 0) {
        if (fixed) {
          this.#fixed ??= Segment.open(fixedDumpSegment(this.name, tag));
          writeFixedDump(this.#fixed, this.#fullDumpSize, ctrl.idLo, ctrl.idHi, g1, enc, dumpLen, sum);
          kind = DUMP_FIXED;
        } else {
          writeDumpSegment(dName, this.#mode, ctrl.idLo, ctrl.idHi, g1, enc, dumpLen, sum).unmap();
          kind = DUMP_SEGMENT;
        }
      }
      stream = Stream.create(sName, this.#mode, ctrl.idLo, ctrl.idHi, g1, capacity, {
        kind,
        len: count > 0 ? dumpLen : 0,
        checksum: sum,
        streamStart: len,
      });
      if (len > 0) stream.append(this.#enc, len, 0);
    } catch (e) {
      stream?.unmap();
      Segment.unlink(sName);
      if (!fixed) Segment.unlink(dName);
      throw e;
    }
    ctrl.publishGen(g1);
    ctrl.recordDump(count > 0 ? dumpLen : 0);
    this.#seen = ctrl.bump();
    // the old generation's names; readers that mapped them keep their mappings
    Segment.unlink(streamSegment(this.name, tag, g));
    if (!fixed) Segment.unlink(dumpSegment(this.name, tag, g));
    if (g > 0) {
      Segment.unlink(streamSegment(this.name, tag, g - 1));
      if (!fixed) Segment.unlink(dumpSegment(this.name, tag, g - 1));
    }
    this.#stream.unmap();
    this.#stream = stream;
    this.#gen = g1;
    this.#pos = len;
    if (enc.buf.length > 16 * 1024 * 1024) this.#dumpEnc = null; // do not keep a huge scratch buffer
  }

  /** Runs under the lock after it was taken over from a dead owner. */
  #recover(): void {
    const ctrl = this.#ctrl;
    const g = ctrl.gen();
    const tag = ctrl.tag;
    // a dead writer's unpublished next generation, and the old one it may not have unlinked
    Segment.unlink(streamSegment(this.name, tag, g + 1));
    if (this.#fullDumpSize === 0) Segment.unlink(dumpSegment(this.name, tag, g + 1));
    if (g > 0) {
      Segment.unlink(streamSegment(this.name, tag, g - 1));
      if (this.#fullDumpSize === 0) Segment.unlink(dumpSegment(this.name, tag, g - 1));
    }
    // it may have published an end without bumping the counter
    ctrl.bump();
  }

  // ---- information and lifetime --------------------------------------------------------------

  stats(): UltraDictStats {
    this.#read();
    const ctrl = this.#ctrl;
    const d = this.#stream.dump;
    return {
      name: this.name,
      keys: this.#map.size,
      generation: this.#gen,
      streamBytesUsed: this.#stream.end(),
      streamBytesSize: this.#stream.capacity,
      dumps: ctrl.dumps,
      lastDumpBytes: ctrl.lastDumpBytes,
      bufferSize: this.#bufferSize,
      fullDumpSize: this.#fullDumpSize,
      serializer: this.#ser.name,
      lockHolder: this.lock.owner(),
      lockRecoveries: ctrl.recoveries,
      attached: ctrl.attached().length,
      creatorPid: ctrl.creatorPid,
      createdAt: ctrl.createdAt,
      unlinked: ctrl.unlinked,
      sharedMemoryBytes:
        CONTROL_SIZE +
        this.#stream.seg.size +
        (this.#fullDumpSize > 0 ? 2 * fixedHalfSize(this.#fullDumpSize) : d.kind === DUMP_SEGMENT ? d.len + 64 : 0),
    };
  }

  /** Whether this instance is closed. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Removes the dict's name from the system: no new process can attach, and a new dict may be created
   * under the name. Processes already attached keep working; the memory is freed when the last closes.
   */
  unlink(): void {
    this.#check();
    const ctrl = this.#ctrl;
    if (ctrl.unlinked) return;
    ctrl.markUnlinked();
    removeIncarnation(this.name, ctrl.tag, { controlOnly: true });
    // once nobody is attached any more (checked on close), the data segments go too
  }

  /** Detaches; idempotent. The creator (autoUnlink) also unlinks the dict. */
  close(): void {
    if (this.#closed) return;
    const ctrl = this.#ctrl;
    try {
      if (this.#autoUnlink && !ctrl.unlinked) this.unlink();
    } finally {
      this.#closed = true;
      openDicts.delete(this as UltraDict<unknown>);
      if (dropThreadEntry(this.#entry)) {
        this.lock.forceExit();
        ctrl.releaseSlot(this.#entry.slot);
      }
      // last one out of an unlinked dict frees its segments
      if (ctrl.unlinked && ctrl.occupiedSlots() === 0) removeIncarnation(this.name, ctrl.tag, { controlOnly: false });
      this.#stream.unmap();
      this.#fixed?.unmap();
      ctrl.seg.unmap();
      this.#map = new Map();
    }
  }

  [Symbol.dispose](): void {
    this.close();
  }

  /** Removes every segment of the dict `name` (all incarnations), also after crashes. True if any existed. */
  static unlink(name: string): boolean {
    return removeDict(validateName(name));
  }

  /** Whether a dict named `name` exists (can be attached to). */
  static exists(name: string): boolean {
    const ctrl = Control.open(controlSegment(validateName(name)));
    if (ctrl === null) return false;
    ctrl.seg.unmap();
    return true;
  }
}

export type { LockHandle, LockOwner };

function capacityFor(bufferSize: number, dumpLen: number, frameLen: number): number {
  const want = Math.max(bufferSize, GROWTH * dumpLen, frameLen + bufferSize);
  const cap = (want + 7) & ~7;
  if (!Number.isSafeInteger(want) || want > MAX_CAPACITY) {
    throw new UltraDictError(`the dict (or one write) is too large for a stream: ${want} bytes, limit ${MAX_CAPACITY}`);
  }
  return cap > 0 ? cap : ((want + 7) / 8) * 8;
}

/** Waits until a control segment is ready. False if it was abandoned and removed (the caller retries). */
function waitReady(ctrl: Control, ctrlName: string, deadline: number): boolean {
  const start = performance.now();
  for (;;) {
    const state = ctrl.state;
    if (state !== STATE_INITIALIZING) return state !== STATE_ABANDONED;
    const pid = ctrl.creatorPid;
    let creatorGone: boolean;
    if (pid === 0) {
      creatorGone = performance.now() - start > 1000; // died before writing its header
    } else if (ctrl.creatorPidNamespace !== 0 && ctrl.creatorPidNamespace !== self().pidNamespace) {
      creatorGone = false; // another pid namespace: we cannot tell, so we wait
    } else {
      const st = native.threadStartTime(pid, ctrl.creatorTid);
      creatorGone = st === -1 || (st >= 0 && st !== ctrl.creatorStart);
    }
    if (creatorGone) {
      if (ctrl.claimAbandoned()) removeIncarnation(nameOf(ctrlName), null, { controlOnly: true });
      return false;
    }
    if (performance.now() > deadline) {
      throw new LockTimeoutError(`the creator of ${ctrlName} (pid ${pid}) did not finish initialising it in time`, pid || null);
    }
    ctrl.waitState(20);
  }
}

const sleeper = new Int32Array(new SharedArrayBuffer(4));
function sleepMs(ms: number): void {
  Atomics.wait(sleeper, 0, 0, ms);
}

function nameOf(ctrlName: string): string {
  return ctrlName.slice('/ud.'.length);
}

/** A creator that failed during initialisation removes what it made so others can retry. */
function abandon(ctrl: Control, ctrlName: string): void {
  ctrl.markAbandoned();
  removeIncarnation(nameOf(ctrlName), ctrl.tag, { controlOnly: false });
}

export { self };

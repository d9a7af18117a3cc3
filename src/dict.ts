// UltraDict: the public facade. Parses options, creates or attaches (src/core.ts does the work), and
// presents the Map API, nested dict views, atomic read-modify-write, change events and lifetime.

import { EventEmitter } from 'node:events';
import { inspect } from 'node:util';
import { isMainThread } from 'node:worker_threads';
import { checkKey, OP_CLEAR, OP_DELETE, OP_SET, type Key, type Path, type Change, type Op } from './codec/ops.js';
import { Encoder } from './codec/wire.js';
import { Node, plain, setOwn } from './codec/tree.js';
import { Core, openEngines, retainEngine } from './engine/core.js';
import { Control, I_COUNTER, STATE_ABANDONED, STATE_INITIALIZING, STATE_READY, STATE_REMOVING } from './shm/control.js';
import { abortError, checkMs, checkOptions, checkSignal, describe, isThenable } from './args.js';
import {
  AlreadyClosedError,
  AlreadyExistsError,
  CorruptSegmentError,
  LockTimeoutError,
  NotFoundError,
  ParameterMismatchError,
  SharedMemoryError,
  TooManyAttachedError,
} from './errors.js';
import {
  dropThreadEntry,
  forgetSlot,
  lockOwnerSlot,
  threadEntry,
  type LockHandle,
  type LockOwner,
  type SharedLock,
  type ThreadEntry,
} from './engine/lock.js';
import { controlSegment, randomName, validateName } from './shm/names.js';
import { removeDict, removeIncarnation } from './shm/discovery.js';
import { builtinSerializers, resolveSerializer, type SerializerOption } from './codec/serializer.js';
import type { SegmentGuard } from './shm/segment.js';
import { encodeDump } from './shm/dump.js';
import { asObject } from './proxy.js';
import { euid, Trust, validateOwner, type OwnerOption } from './shm/trust.js';
import * as diag from './diagnostics.js';

export type { Key } from './codec/ops.js';
export type { Change } from './codec/ops.js';
export type { LockHandle, LockOwner };

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
  /** Unlink the segments when the creating handle closes or its process exits (default true for the creator). */
  autoUnlink?: boolean;
  /** Maximum wait in ms for the lock and for a creator to finish initialising (default 10000). */
  lockTimeout?: number;
  /** Permissions of the segments (default 0o600: only the same user). */
  mode?: number;
  /** Plain objects assigned as values become nested shared dicts (default false; fixed at creation). */
  recurse?: boolean;
  /**
   * The user trusted to own the dict's segments: a uid, or 'any' (default: this process's effective
   * uid). Attaching to a dict owned by anyone else is a ForeignSegmentError.
   */
  owner?: OwnerOption;
}

/**
 * The events of an UltraDict and their arguments: `on('change', (c) => …)` gets a typed `Change`, and
 * a misspelled event name is a compile error.
 */
export interface UltraDictEvents {
  /** a change made by any process (see Change) */
  change: [change: Change];
  /** this handle closed */
  close: [];
  /** an error while applying changes in the background (emitted only when there is a listener) */
  error: [error: Error];
  /** EventEmitter's own: a listener is being added */
  newListener: [eventName: string | symbol, listener: (...args: any[]) => void];
  /** EventEmitter's own: a listener was removed */
  removeListener: [eventName: string | symbol, listener: (...args: any[]) => void];
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
  recurse: boolean;
  lockHolder: LockOwner | null;
  lockRecoveries: number;
  /** times the lock was offered directly to a waiter that had waited over 200 ms */
  lockHandoffs: number;
  /** offers withdrawn because the waiter did not take the lock within 250 ms (stopped, dead or gone) */
  lockHandoffsLapsed: number;
  attached: number;
  listeners: number;
  creatorPid: number;
  createdAt: number;
  unlinked: boolean;
  sharedMemoryBytes: number;
}

const KNOWN_OPTIONS = new Set(['name', 'create', 'bufferSize', 'serializer', 'fullDumpSize', 'autoUnlink', 'lockTimeout', 'mode', 'recurse', 'owner']);
export const DEFAULT_BUFFER_SIZE = 1 << 20;
export const DEFAULT_LOCK_TIMEOUT = 10_000;
const MIN_BUFFER_SIZE = 1024;
const MAX_SIZE = 0x7fffffff * 8;
/** Longest delay setTimeout accepts (longer ones fire at once, with a TimeoutOverflowWarning). */
const MAX_TIMER = 0x7fffffff;
const FLAG_RECURSE = 2;

type Initial<V> = Iterable<readonly [Key, V]> | Record<string, V> | ReadonlyMap<Key, V>;

/** Passed as first constructor argument to make a nested view (module-private). */
const VIEW = Symbol('view');

/**
 * One constructor call's handle on a thread's engine: its own lock timeout, autoUnlink and open state.
 * Nested views share their root's handle; handles of one dict in one thread share the engine.
 */
class Handle {
  closed = false;
  readonly lock: SharedLock;
  constructor(
    readonly core: Core,
    readonly lockTimeout: number,
    readonly autoUnlink: boolean,
  ) {
    this.lock = core.lockFor(lockTimeout, () => this.check());
    if (autoUnlink) core.autoUnlinkHandle(1);
  }
  check(): void {
    if (this.closed) throw new AlreadyClosedError(`UltraDict ${JSON.stringify(this.core.name)} is closed`);
  }
}

/** @internal The engine behind a dict handle (used by the Redis bridge; not part of the API). */
export let coreOf: (d: UltraDict<unknown>) => Core;

function isPlainObject(x: unknown): x is Record<string, unknown> {
  if (x === null || typeof x !== 'object') return false;
  const p = Object.getPrototypeOf(x);
  return p === Object.prototype || p === null;
}

function entriesOf<V>(items: Initial<V>, what: string): Iterable<readonly [unknown, V]> {
  if (items instanceof Map) return items as ReadonlyMap<Key, V>;
  if (isPlainObject(items)) return Object.entries(items) as [string, V][];
  if (items !== null && typeof items === 'object' && typeof (items as Iterable<unknown>)[Symbol.iterator] === 'function') {
    return pairsOf(items as Iterable<unknown>, what) as Iterable<readonly [Key, V]>;
  }
  throw new TypeError(`${what} must be a plain object, a Map or an iterable of [key, value] pairs, got ${describe(items)}`);
}

/** The items of an iterable, each checked to be a [key, value] pair (else a TypeError naming the item). */
function* pairsOf(items: Iterable<unknown>, what: string): Generator<unknown> {
  let i = 0;
  for (const p of items) {
    if (p === null || typeof p !== 'object' || typeof (p as Iterable<unknown>)[Symbol.iterator] !== 'function') {
      throw new TypeError(`${what}: item [${i}] must be a [key, value] pair, got ${describe(p)}`);
    }
    i++;
    yield p;
  }
}

function validateOptions(o: unknown): UltraDictOptions {
  if (o === undefined) return {};
  if (!isPlainObject(o)) throw new TypeError('options must be a plain object');
  for (const k of Object.keys(o)) {
    if (k === 'recurseRegister') {
      throw new TypeError('option recurseRegister is not needed: nested dicts live in the segments of their root dict');
    }
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
  int('bufferSize', MIN_BUFFER_SIZE, MAX_SIZE);
  int('fullDumpSize', 64, MAX_SIZE);
  int('mode', 0, 0o777);
  validateOwner(opts.owner);
  if (opts.lockTimeout !== undefined && (typeof opts.lockTimeout !== 'number' || !(opts.lockTimeout >= 0))) {
    throw new TypeError('option lockTimeout must be a number of ms >= 0');
  }
  for (const k of ['create', 'autoUnlink', 'recurse'] as const) {
    if (opts[k] !== undefined && typeof opts[k] !== 'boolean') throw new TypeError(`option ${k} must be a boolean`);
  }
  return opts;
}

// ---- process-wide bookkeeping ----------------------------------------------------------------------

let exitHooked = false;

function closeAll(): void {
  for (const c of openEngines()) {
    try {
      c.close();
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
function hookExit(): void {
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

// ---- opening ---------------------------------------------------------------------------------------

/**
 * Opens the engine of dict `name` for a new handle: creates the dict, or attaches to it (this thread's
 * engine of it if one is open). Returns the engine and whether this call created the dict.
 */
function openCore(
  name: string,
  opts: UltraDictOptions,
  initial: Initial<unknown> | undefined,
  deadlineArg?: number,
): { core: Core; creator: boolean } {
  const lockTimeout = opts.lockTimeout ?? DEFAULT_LOCK_TIMEOUT;
  const explicitSer = opts.serializer !== undefined;
  let ser = resolveSerializer(opts.serializer ?? 'msgpack');
  const recurseOpt = opts.recurse ?? false;

  // encode the initial items first: a bad item fails before anything exists in shared memory
  let initialDump: { enc: Encoder; len: number; count: number } | null = null;
  if (initial !== undefined) {
    const local = new Map<Key, unknown>();
    const scratch = new Encoder(64);
    for (const [k, v] of entriesOf(initial, 'initial items')) {
      checkKey(k);
      scratch.beginBody();
      local.set(k, scratch.value(v, ser, true, recurseOpt));
    }
    const enc = new Encoder();
    const [len, count] = encodeDump(enc, local, ser);
    initialDump = { enc, len, count };
  }

  const ctrlName = controlSegment(name);
  const deadline = deadlineArg ?? performance.now() + lockTimeout;
  // the owner of the control segment is checked before anything in it is read (its mode once it is known)
  const trust = new Trust(opts.owner, opts.mode ?? 0o600, euid());
  const ownerGuard: SegmentGuard = { check: (seg) => trust.checkOwner(seg), gone: () => false };
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
          flags: recurseOpt ? FLAG_RECURSE : 0,
        });
        creator = true;
        break;
      } catch (e) {
        if (!(e instanceof SharedMemoryError && e.osCode === 'EEXIST')) throw e;
        if (opts.create === true) throw new AlreadyExistsError(`an UltraDict named ${JSON.stringify(name)} already exists`);
      }
    }
    try {
      ctrl = Control.open(ctrlName, ownerGuard);
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
    let ready: boolean;
    try {
      ready = waitReady(ctrl, ctrlName, deadline);
    } catch (e) {
      ctrl.seg.unmap(); // a creator that never finishes: do not keep its mapping until GC
      throw e;
    }
    if (ready) break;
    ctrl.seg.unmap();
    ctrl = null;
    if (performance.now() > deadline) throw new LockTimeoutError(`timed out attaching to ${JSON.stringify(name)}`, null);
    sleepMs(1); // abandoned (it is being removed), or gc() is removing it
  }

  let core: Core | null = null;
  let entry: ThreadEntry | null = null;
  try {
    let recurse = recurseOpt;
    if (!creator) {
      ctrl.checkHeader();
      trust.mode = ctrl.mode;
      trust.checkMode(ctrl.seg);
      const recorded = ctrl.serializerName;
      if (explicitSer) {
        if (ser.name !== recorded) throw new ParameterMismatchError(`${JSON.stringify(name)} uses serializer '${recorded}', not '${ser.name}'`);
      } else if (Object.hasOwn(builtinSerializers, recorded)) {
        ser = builtinSerializers[recorded as keyof typeof builtinSerializers];
      } else {
        throw new ParameterMismatchError(`${JSON.stringify(name)} uses the custom serializer '${recorded}': pass it as the serializer option`);
      }
      const mismatch = (what: string, given: number | boolean | undefined, actual: number | boolean): void => {
        if (given !== undefined && given !== actual) {
          throw new ParameterMismatchError(`${JSON.stringify(name)} was created with ${what} ${actual}, not ${given}`);
        }
      };
      mismatch('bufferSize', opts.bufferSize, ctrl.bufferSize);
      mismatch('fullDumpSize', opts.fullDumpSize, ctrl.fullDumpSize);
      mismatch('mode', opts.mode, ctrl.mode);
      recurse = (ctrl.flags & FLAG_RECURSE) !== 0;
      mismatch('recurse', opts.recurse, recurse);
    }
    trust.dictOwner = ctrl.ownerUid;
    ctrl.trust = trust;
    const c = ctrl;
    const key = `${ctrlName}:${ctrl.tag}`;
    if (!creator) {
      // another handle of this thread has it open: share its engine (one local copy, one stream position)
      const open = retainEngine(key);
      if (open !== null) {
        ctrl.seg.unmap();
        return { core: open, creator: false };
      }
    }
    entry = threadEntry(key, () => {
      const claimed = c.claimSlot(
        () => lockOwnerSlot(c),
        (slot) => forgetSlot(c, slot),
      );
      if (claimed === null) throw new TooManyAttachedError(`every attach slot of ${JSON.stringify(name)} is held by a live thread`);
      return claimed;
    });
    // with our slot claimed, gc() can no longer remove the dict; if it began before, start again (the
    // dict may then be created anew)
    if (!creator && !ctrl.attachSettled()) {
      if (dropThreadEntry(entry)) ctrl.releaseSlot(entry.slot);
      entry = null; // released: the catch below must not release it again (the control is unmapped next)
      ctrl.seg.unmap();
      if (performance.now() > deadline) throw new LockTimeoutError(`timed out attaching to ${JSON.stringify(name)}: gc() kept removing it`, null);
      sleepMs(1);
      return openCore(name, opts, initial, deadline);
    }
    core = new Core({ name, ctrl, entry, serializer: ser, lockTimeout, recurse });
    if (creator) core.initialize(initialDump);
    core.sync(true);
  } catch (e) {
    if (core !== null) core.abandon();
    else if (entry !== null && dropThreadEntry(entry)) ctrl.releaseSlot(entry.slot);
    if (creator) {
      ctrl.markAbandoned();
      removeIncarnation(name, ctrl.tag, { controlOnly: false });
    }
    ctrl.seg.unmap();
    throw e;
  }
  hookExit();
  diag.attached(name, creator, core.map.size, core.gen);
  return { core, creator };
}

/** Waits until a control segment is ready. False if it was abandoned and removed (the caller retries). */
function waitReady(ctrl: Control, ctrlName: string, deadline: number): boolean {
  const start = performance.now();
  for (;;) {
    const state = ctrl.state;
    // REMOVING: gc() is removing it; the caller starts again (a dead remover's state is reverted there)
    if (state === STATE_REMOVING) return ctrl.attachSettled();
    if (state === STATE_READY) return true;
    if (state === STATE_ABANDONED) return false;
    if (state !== STATE_INITIALIZING) throw new CorruptSegmentError(`${ctrlName} has an unknown state ${state}: not an ultradict dict, or damaged`);
    const pid = ctrl.creatorPid;
    // pid 0: the creator died before writing its header (or has not yet: give it a second)
    const creatorGone = pid === 0 ? performance.now() - start > 1000 : !ctrl.creatorAlive();
    if (creatorGone) {
      if (ctrl.claimAbandoned()) removeIncarnation(ctrlName.slice('/ud.'.length), null, { controlOnly: true });
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

function pathEq(a: Path, b: Path, n: number): boolean {
  for (let i = 0; i < n; i++) if (!Object.is(a[i], b[i])) return false;
  return true;
}

// ---- the class -------------------------------------------------------------------------------------

/**
 * A Map shared by every process and thread that opens the same name. Reads come from a local copy
 * (checked against one shared counter), writes are published through shared memory under a lock.
 * With `recurse`, nested dicts are UltraDict views onto a path of their root.
 */
export class UltraDict<V = unknown> extends EventEmitter<UltraDictEvents> implements Map<Key, V> {
  readonly #core: Core;
  readonly #h: Handle;
  readonly #path: Path | null;
  readonly #root: UltraDict<unknown> | null;

  static {
    coreOf = (d) => d.#core;
  }

  /** Creates or attaches to the dict `options.name`. */
  constructor(options?: UltraDictOptions);
  /** With initial items (a Map or an iterable of [key, value]), written only if this call creates the dict. */
  constructor(initial: Iterable<readonly [Key, V]> | ReadonlyMap<Key, V>, options?: UltraDictOptions);
  /** With initial items given as a plain object: then options are required (a lone plain object is options). */
  constructor(initial: Initial<V> | null | undefined, options: UltraDictOptions);
  constructor(a?: unknown, b?: unknown) {
    super();
    if (a === VIEW) {
      const v = b as { h: Handle; path: Path; root: UltraDict<unknown> };
      this.#h = v.h;
      this.#core = v.h.core;
      this.#path = v.path;
      this.#root = v.root;
    } else {
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
      const { core, creator } = openCore(name, opts, initial as Initial<unknown> | undefined);
      this.#h = new Handle(core, opts.lockTimeout ?? DEFAULT_LOCK_TIMEOUT, opts.autoUnlink ?? creator);
      this.#core = core;
      this.#path = null;
      this.#root = null;
      if (core.onChanges === null) {
        core.onChanges = (changes) => dispatch(core, changes);
        core.onError = (e) => {
          for (const d of subscribers(core)) if (d.listenerCount('error') > 0) d.emit('error', e as Error);
        };
      }
    }
    // 'newListener' comes before the listener is added: subscribe now, so that a write right after
    // on('change') is not missed
    this.on('newListener', (event: string | symbol) => {
      if (event === 'change') this.#updateSubscription(true);
    });
    this.on('removeListener', (event: string | symbol) => {
      if (event === 'change') this.#updateSubscription(this.listenerCount('change') > 0);
    });
  }

  #updateSubscription(wants: boolean): void {
    const core = this.#core;
    if (this.#h.closed) return;
    const subs = subscribers(core);
    if (wants) subs.add(this as UltraDict<unknown>);
    else subs.delete(this as UltraDict<unknown>);
    if (subs.size > 0) core.startListening();
    else core.stopListening();
  }

  /** The dict's name (of the root for nested views). */
  get name(): string {
    return this.#core.name;
  }

  /** Keys from the root to this nested dict ([] for the root). */
  get path(): Key[] {
    return this.#path === null ? [] : [...this.#path];
  }

  /** The cross-process, cross-thread lock; re-entrant for the thread holding it. */
  get lock(): SharedLock {
    return this.#h.lock;
  }

  // ---- reading --------------------------------------------------------------------------------

  /** The local map of this dict (after a sync); undefined if this nested dict no longer exists. */
  #map(): Map<Key, unknown> | undefined {
    const core = this.#core;
    if (this.#h.closed) this.#h.check();
    core.read();
    return this.#path === null ? core.map : core.target(this.#path);
  }

  #out(key: Key, v: unknown): V {
    return (v instanceof Node ? this.#child(key) : v) as V;
  }

  #child(key: Key): UltraDict<unknown> {
    const path = this.#path === null ? [key] : [...this.#path, key];
    return new UltraDict<unknown>(VIEW as never, { h: this.#h, path, root: this.#root ?? this } as never);
  }

  get(key: Key): V | undefined {
    const core = this.#core;
    if (this.#h.closed) this.#h.check();
    if (Atomics.load(core.ci32, I_COUNTER) !== core.seen) core.sync(false);
    if (this.#path === null) {
      const v = core.map.get(key);
      return (core.recurse && v instanceof Node ? this.#child(key) : v) as V | undefined;
    }
    const v = core.target(this.#path)?.get(key);
    return v instanceof Node ? (this.#child(key) as V) : (v as V | undefined);
  }

  has(key: Key): boolean {
    const core = this.#core;
    if (this.#h.closed) this.#h.check();
    if (Atomics.load(core.ci32, I_COUNTER) !== core.seen) core.sync(false);
    return (this.#path === null ? core.map : core.target(this.#path))?.has(key) ?? false;
  }

  get size(): number {
    return this.#map()?.size ?? 0;
  }

  /** The local copy, not refreshed: the fastest read when staleness is acceptable. Nested dicts appear as read-only Maps. */
  get data(): ReadonlyMap<Key, V> {
    const core = this.#core;
    this.#h.check();
    return ((this.#path === null ? core.map : core.target(this.#path)) ?? new Map()) as ReadonlyMap<Key, V>;
  }

  /** Applies pending updates now; returns how many operations were applied (a reload counts as one). */
  refresh(): number {
    this.#h.check();
    return this.#core.sync(true);
  }

  entries(): MapIterator<[Key, V]> {
    const m = this.#map();
    const out: [Key, V][] = [];
    if (m !== undefined) for (const [k, v] of m) out.push([k, this.#out(k, v)]);
    return out[Symbol.iterator]() as unknown as MapIterator<[Key, V]>;
  }

  keys(): MapIterator<Key> {
    const m = this.#map();
    return (m === undefined ? [] : Array.from(m.keys()))[Symbol.iterator]() as unknown as MapIterator<Key>;
  }

  values(): MapIterator<V> {
    const m = this.#map();
    const out: V[] = [];
    if (m !== undefined) for (const [k, v] of m) out.push(this.#out(k, v));
    return out[Symbol.iterator]() as unknown as MapIterator<V>;
  }

  [Symbol.iterator](): MapIterator<[Key, V]> {
    return this.entries();
  }

  forEach(callbackfn: (value: V, key: Key, map: Map<Key, V>) => void, thisArg?: unknown): void {
    if (typeof callbackfn !== 'function') throw new TypeError(`forEach(fn): fn must be a function, got ${describe(callbackfn)}`);
    for (const [k, v] of this.entries()) callbackfn.call(thisArg, v, k, this);
  }

  get [Symbol.toStringTag](): string {
    return 'UltraDict';
  }

  /** The contents as a plain object (nested dicts as plain objects): `JSON.stringify(dict)` works. */
  toJSON(): Record<string, unknown> {
    const m = this.#map();
    const o: Record<string, unknown> = {};
    if (m !== undefined) for (const [k, v] of m) setOwn(o, String(k), plain(v));
    return o;
  }

  [inspect.custom](depth: number, options: object): string {
    if (this.#h.closed) return `UltraDict(${this.name}) <closed>`;
    const label = this.#path === null ? this.name : `${this.name} > ${this.#path.map(String).join(' > ')}`;
    const m = new Map<Key, unknown>();
    for (const [k, v] of this.#map() ?? []) m.set(k, plain(v));
    return `UltraDict(${label}) ${inspect(m, { ...options, depth } as object)}`;
  }

  // ---- writing --------------------------------------------------------------------------------

  #raw(op: number, key: Key | undefined, value?: unknown): Op {
    return { op, path: this.#path, key, value: value instanceof UltraDict ? snapshotNode(value) : value };
  }

  set(key: Key, value: V): this {
    const core = this.#core;
    this.#h.check();
    checkKey(key);
    if (this.#path === null && !(value instanceof UltraDict)) core.setRoot(key, value, this.#h.lockTimeout);
    else core.write([this.#raw(OP_SET, key, value)], this.#h.lockTimeout);
    return this;
  }

  delete(key: Key): boolean {
    const core = this.#core;
    this.#h.check();
    checkKey(key);
    const lock = this.#h.lock;
    lock.enter();
    try {
      core.sync(false);
      const m = this.#path === null ? core.map : core.target(this.#path);
      if (m === undefined || !m.has(key)) return false;
      core.write([this.#raw(OP_DELETE, key)]);
      return true;
    } finally {
      lock.exit();
    }
  }

  clear(): void {
    const core = this.#core;
    this.#h.check();
    const lock = this.#h.lock;
    lock.enter();
    try {
      core.sync(false);
      const m = this.#path === null ? core.map : core.target(this.#path);
      if (m === undefined) throw new NotFoundError(`the nested dict ${this.path.map(String).join(' > ')} no longer exists`);
      if (m.size === 0) return;
      core.write([this.#raw(OP_CLEAR, undefined)]);
    } finally {
      lock.exit();
    }
  }

  /** Several writes published as one atomic batch: other processes see all of them or none. */
  update(items: Initial<V>): this {
    const core = this.#core;
    this.#h.check();
    const raw: Op[] = [];
    for (const [k, v] of entriesOf(items, 'update items')) {
      checkKey(k);
      raw.push(this.#raw(OP_SET, k, v));
    }
    core.write(raw, this.#h.lockTimeout);
    return this;
  }

  /**
   * The nested dict at `key`, created empty (atomically) if missing: safe when several processes
   * create the same nested dict at once. Needs `recurse`.
   */
  nested(key: Key): UltraDict<unknown> {
    const core = this.#core;
    this.#h.check();
    checkKey(key);
    if (!core.recurse) throw new TypeError('nested() needs a dict created with { recurse: true }');
    return core.transaction(() => {
      const m = this.#path === null ? core.map : core.target(this.#path);
      if (m === undefined) throw new NotFoundError(`the nested dict ${this.path.map(String).join(' > ')} no longer exists`);
      if (!(m.get(key) instanceof Node)) core.write([{ op: OP_SET, path: this.#path, key, value: new Node() }]);
      return this.#child(key);
    }, this.#h.lockTimeout);
  }

  /** Forces a full dump now (a new generation). */
  dump(): void {
    this.#h.check();
    this.#core.dump(this.#h.lockTimeout);
  }

  // ---- atomic read-modify-write ---------------------------------------------------------------

  /** Runs fn under the lock and returns its result: `dict.withLock(() => dict.set('n', dict.get('n') + 1))`. */
  withLock<R>(fn: () => R): R {
    const core = this.#core;
    this.#h.check();
    if (typeof fn !== 'function') throw new TypeError('withLock needs a function');
    const lock = this.#h.lock;
    lock.enter();
    let result: R;
    try {
      result = fn();
    } finally {
      lock.exit();
    }
    if (isThenable(result)) {
      throw new TypeError(
        'withLock(fn): fn returned a Promise; the lock is synchronous and was released when fn returned. ' +
          'Do the awaited work before or after withLock.',
      );
    }
    return result;
  }

  /**
   * Runs fn under the lock; all its writes are published as one batch (other processes see all or
   * none). If fn throws, every write of the transaction is rolled back, locally too. Nested
   * transactions join the outer one.
   */
  transaction<R>(fn: () => R): R {
    const core = this.#core;
    this.#h.check();
    if (typeof fn !== 'function') throw new TypeError('transaction needs a function');
    return core.transaction(fn, this.#h.lockTimeout);
  }

  /** Atomically replaces the value of key with fn(old); undefined from fn deletes the key. Returns the new value. */
  compute(key: Key, fn: (old: V | undefined) => V | undefined): V | undefined {
    checkKey(key);
    if (typeof fn !== 'function') throw new TypeError(`compute(key, fn): fn must be a function, got ${describe(fn)}`);
    return this.transaction(() => {
      const next = fn(this.get(key));
      if (isThenable(next)) {
        throw new TypeError(
          'compute(key, fn): fn returned a Promise; the lock is synchronous and cannot cover awaited work. ' +
            'Await the new value first, then set it (or compute it from values you already have).',
        );
      }
      if (next === undefined) this.delete(key);
      else this.set(key, next);
      return next;
    });
  }

  /** Atomically adds `by` (default 1) to the number at key (missing counts as 0); returns the new value. */
  increment(key: Key, by: number = 1): number {
    const core = this.#core;
    this.#h.check();
    checkKey(key);
    if (typeof by !== 'number' || !Number.isFinite(by)) throw new TypeError('increment: by must be a finite number');
    const lock = this.#h.lock;
    lock.enter();
    try {
      core.sync(false);
      const old = this.get(key) ?? 0;
      if (typeof old !== 'number') throw new TypeError(`increment: the value at ${JSON.stringify(key)} is not a number`);
      const next = old + by;
      this.set(key, next as V);
      return next;
    } finally {
      lock.exit();
    }
  }

  // ---- change events --------------------------------------------------------------------------

  // One 'change' and one 'close' listener serve every pending waitForChange() and watch() of a handle:
  // many concurrent waits add no listener each (no MaxListenersExceededWarning). null: closed.
  readonly #waiters = new Set<(c: Change | null) => void>();
  readonly #onWaitChange = (c: Change): void => {
    for (const w of [...this.#waiters]) w(c);
  };
  readonly #onWaitClose = (): void => {
    for (const w of [...this.#waiters]) w(null);
  };

  #addWaiter(w: (c: Change | null) => void): void {
    if (this.#waiters.size === 0) {
      this.on('change', this.#onWaitChange);
      this.on('close', this.#onWaitClose);
    }
    this.#waiters.add(w);
  }

  #removeWaiter(w: (c: Change | null) => void): void {
    if (this.#waiters.delete(w) && this.#waiters.size === 0) {
      this.off('change', this.#onWaitChange);
      this.off('close', this.#onWaitClose);
    }
  }

  // Likewise one 'abort' listener per signal serves every wait of this handle on that signal.
  readonly #aborts = new Map<AbortSignal, { fns: Set<() => void>; listener: () => void }>();

  #addAbort(signal: AbortSignal, fn: () => void): void {
    let a = this.#aborts.get(signal);
    if (a === undefined) {
      const fns = new Set<() => void>();
      const listener = (): void => {
        this.#aborts.delete(signal);
        for (const f of [...fns]) f();
      };
      a = { fns, listener };
      this.#aborts.set(signal, a);
      signal.addEventListener('abort', listener, { once: true });
    }
    a.fns.add(fn);
  }

  #removeAbort(signal: AbortSignal, fn: () => void): void {
    const a = this.#aborts.get(signal);
    if (a !== undefined && a.fns.delete(fn) && a.fns.size === 0) {
      this.#aborts.delete(signal);
      signal.removeEventListener('abort', a.listener);
    }
  }

  /**
   * Iterates over changes made by any process, until the dict closes (then it ends) or `signal` aborts
   * (then it throws an AbortError whose `cause` is `signal.reason`). Keeps the event loop alive while
   * iterating. Arguments are checked at once (a TypeError), before anything is registered.
   */
  watch(options: { signal?: AbortSignal } = {}): AsyncGenerator<Change, void, undefined> {
    const core = this.#core;
    this.#h.check();
    const { signal } = checkOptions(options, ['signal'], 'watch');
    checkSignal(signal, 'watch');
    return this.#watch(core, signal);
  }

  async *#watch(core: Core, signal: AbortSignal | undefined): AsyncGenerator<Change, void, undefined> {
    if (signal?.aborted) throw abortError(signal);
    const queue: Change[] = [];
    let closed = false;
    let wake: (() => void) | null = null;
    const waiter = (c: Change | null): void => {
      if (c === null) closed = true;
      else queue.push(c);
      wake?.();
    };
    const onAbort = (): void => wake?.();
    this.#addWaiter(waiter);
    if (signal !== undefined) this.#addAbort(signal, onAbort);
    core.hold(1);
    try {
      for (;;) {
        if (signal?.aborted) throw abortError(signal);
        if (queue.length > 0) {
          yield queue.shift()!;
          continue;
        }
        if (closed || this.#h.closed) return;
        await new Promise<void>((resolve) => (wake = resolve));
        wake = null;
      }
    } finally {
      this.#removeWaiter(waiter);
      if (signal !== undefined) this.#removeAbort(signal, onAbort);
      if (!core.closed) core.hold(-1);
    }
  }

  /**
   * Resolves with the next change made by any process, or null after `timeout` ms or when the dict
   * closes. Aborting `signal` rejects with an AbortError whose `cause` is `signal.reason`.
   */
  waitForChange(options: { timeout?: number; signal?: AbortSignal } = {}): Promise<Change | null> {
    const core = this.#core;
    this.#h.check();
    const { timeout, signal } = checkOptions(options, ['timeout', 'signal'], 'waitForChange');
    checkMs(timeout, 'timeout', 'waitForChange', true);
    if (timeout !== undefined && Number.isFinite(timeout) && timeout > MAX_TIMER) {
      throw new TypeError(`waitForChange: option timeout must be at most ${MAX_TIMER} ms, or Infinity`);
    }
    checkSignal(signal, 'waitForChange');
    if (signal?.aborted) return Promise.reject(abortError(signal));
    return new Promise<Change | null>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const finish = (): void => {
        if (timer !== undefined) clearTimeout(timer);
        this.#removeWaiter(waiter);
        if (signal !== undefined) this.#removeAbort(signal, onAbort);
        if (!core.closed) core.hold(-1);
      };
      const waiter = (c: Change | null): void => {
        finish();
        resolve(c);
      };
      const onAbort = (): void => {
        finish();
        reject(abortError(signal!));
      };
      this.#addWaiter(waiter);
      if (signal !== undefined) this.#addAbort(signal, onAbort);
      core.hold(1);
      if (timeout !== undefined && timeout !== Infinity) timer = setTimeout(() => waiter(null), timeout);
    });
  }

  /** Makes 'change' listeners keep the event loop alive (default: they do not). */
  ref(): this {
    this.#h.check();
    this.#core.setRef(true);
    return this;
  }

  /** Lets the process exit even while 'change' listeners are registered (the default). */
  unref(): this {
    this.#h.check();
    this.#core.setRef(false);
    return this;
  }

  // ---- views ----------------------------------------------------------------------------------

  /**
   * A Proxy on which properties are keys: `o.x = 1`, `o.x`, `delete o.x`, `'x' in o`, `Object.keys(o)`,
   * `{...o}`, `JSON.stringify(o)`. Nested dicts appear as proxies too. String keys only.
   */
  asObject(): Record<string, any> {
    this.#h.check();
    return asObject(this as UltraDict<unknown>);
  }

  // ---- information and lifetime --------------------------------------------------------------

  stats(): UltraDictStats {
    const core = this.#core;
    this.#h.check();
    core.read();
    const ctrl = core.ctrl;
    return {
      name: this.name,
      keys: core.map.size,
      generation: core.gen,
      streamBytesUsed: core.stream.end(),
      streamBytesSize: core.stream.capacity,
      dumps: ctrl.dumps,
      lastDumpBytes: ctrl.lastDumpBytes,
      bufferSize: core.bufferSize,
      fullDumpSize: core.fullDumpSize,
      serializer: core.ser.name,
      recurse: core.recurse,
      lockHolder: core.lock.owner(),
      lockRecoveries: ctrl.recoveries,
      lockHandoffs: ctrl.handoffs,
      lockHandoffsLapsed: ctrl.lapsedHandoffs,
      attached: ctrl.attached().length,
      listeners: ctrl.listeners,
      creatorPid: ctrl.creatorPid,
      createdAt: ctrl.createdAt,
      unlinked: ctrl.unlinked,
      sharedMemoryBytes: core.sharedMemoryBytes(),
    };
  }

  /** Whether this handle is closed. */
  get closed(): boolean {
    return this.#h.closed;
  }

  /**
   * Removes the dict's name from the system: no new process can attach, and a new dict may be created
   * under the name. Processes already attached keep working; the memory is freed when the last closes.
   */
  unlink(): void {
    const core = this.#core;
    this.#h.check();
    if (core.ctrl.unlinked) return;
    core.ctrl.markUnlinked();
    removeIncarnation(core.name, core.ctrl.tag, { controlOnly: true });
  }

  /** Detaches this handle (and its nested views); idempotent. The creator (autoUnlink) also unlinks the dict. */
  close(): void {
    const h = this.#h;
    if (h.closed) return;
    const core = this.#core;
    h.closed = true;
    const subs = subscribers(core);
    const mine = [...subs].filter((d) => d.#h === h);
    try {
      if (h.autoUnlink) core.autoUnlinkHandle(-1);
    } finally {
      for (const d of mine) subs.delete(d);
      if (subs.size === 0) core.stopListening();
      core.release(); // closes the engine with its last handle (at the end of a lock scope in progress)
    }
    for (const d of mine) d.emit('close');
    if (!mine.includes(this as UltraDict<unknown>)) this.emit('close');
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

// ---- event dispatch --------------------------------------------------------------------------------

const subscriberSets = new WeakMap<Core, Set<UltraDict<unknown>>>();
function subscribers(core: Core): Set<UltraDict<unknown>> {
  let s = subscriberSets.get(core);
  if (s === undefined) {
    s = new Set();
    subscriberSets.set(core, s);
  }
  return s;
}

/** Delivers changes to every handle/view listening: a view gets the changes inside its path (relative). */
function dispatch(core: Core, changes: Change[]): void {
  const subs = subscribers(core);
  for (const c of changes) {
    if (c.type === 'set') c.value = plain(c.value);
    for (const d of subs) {
      const p = d.path;
      if (p.length === 0) {
        d.emit('change', c);
        continue;
      }
      if (c.type === 'reload') {
        d.emit('change', c);
        continue;
      }
      const cp = c.path ?? [];
      if (cp.length < p.length || !pathEq(cp, p, p.length)) continue;
      const rel: Change = { ...c };
      if (cp.length === p.length) delete rel.path;
      else rel.path = cp.slice(p.length);
      d.emit('change', rel);
    }
  }
}

/** Copies a dict or nested view into a Node (assigning one dict into another copies it). */
function snapshotNode(d: UltraDict<unknown>): Node {
  const n = new Node();
  for (const [k, v] of d) Map.prototype.set.call(n, k, v instanceof UltraDict ? snapshotNode(v) : v);
  return n;
}


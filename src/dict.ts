// UltraDict: the public facade. Presents the Map API over an engine (opened by engine/open.ts), nested
// dict views, atomic read-modify-write, change events and the handle's lifetime.

import { EventEmitter } from 'node:events';
import { inspect } from 'node:util';
import { abortError, checkMs, checkOptions, checkSignal, checkTtl, describe, isPlainObject, isThenable } from './args.js';
import { checkKey, OP_CLEAR, OP_DELETE, OP_EXPIRE, OP_SET, type Change, type Key, type Op, type Path } from './codec/ops.js';
import { Node, plain } from './codec/tree.js';
import type { Core } from './engine/core.js';
import type { EngineStats } from './engine/stats.js';
import { deadlineAfter } from './engine/expiry.js';
import type { FrameSource } from './engine/frames.js';
import type { LockHandle, LockOwner, SharedLock } from './engine/lock.js';
import { DEFAULT_LOCK_TIMEOUT, openEngine, validateOptions, type UltraDictOptions } from './engine/open.js';
import { AlreadyClosedError, NotFoundError } from './errors.js';
import { checkCallback, checkIncrement, computeStep, entriesOf, entryList, forEachEntry, getOrInsertStep, incrementStep, keyList, toPlainObject, valueList, type Initial, type MapLike } from './map-api.js';
import { fetchOnce } from './fetch.js';
import { ChangeWaits, type WaitHolder } from './waits.js';
import { asObject } from './proxy.js';
import { Control } from './shm/control.js';
import { removeDict } from './shm/discovery.js';
import { controlSegment, randomName, validateName } from './shm/names.js';

export type { Change, Key } from './codec/ops.js';
export type { LockHandle, LockOwner };
export { DEFAULT_BUFFER_SIZE, DEFAULT_LOCK_TIMEOUT, type UltraDictOptions } from './engine/open.js';
export type { EvictPolicy } from './engine/bounds.js';

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

/** What stats() reports: the dict's name and its engine's figures (EngineStats, documented there). */
export interface UltraDictStats extends EngineStats {
  name: string;
}

/** The options of a write that may set an expiry: `set(key, value, { ttl })`, `update(items, { ttl })`, … */
export interface WriteOptions {
  /** time to live in ms of the written root keys (0: none); default: the dict's `ttl` option */
  ttl?: number;
}

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

let sourceOf: (d: UltraDict<unknown>) => FrameSource;

/**
 * @internal The engine behind a dict handle as the Redis bridge sees it: FrameSource, the bridge's one
 * door into a local dict (docs/ARCHITECTURE.md). Not part of the API.
 */
export function frameSourceOf(d: UltraDict<unknown>): FrameSource {
  return sourceOf(d);
}


/** Longest delay setTimeout accepts (longer ones fire at once, with a TimeoutOverflowWarning). */
const MAX_TIMER = 0x7fffffff;

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
    sourceOf = (d) => d.#core;
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
      const { core, creator } = openEngine(name, opts, initial as Initial<unknown> | undefined);
      this.#h = new Handle(core, opts.lockTimeout ?? DEFAULT_LOCK_TIMEOUT, opts.autoUnlink ?? creator);
      this.#core = core;
      this.#path = null;
      this.#root = null;
      core.changes.deliverTo({
        changes: (changes) => dispatch(core, changes),
        error: (e) => {
          for (const d of subscribers(core)) if (d.listenerCount('error') > 0) d.emit('error', e as Error);
        },
      });
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
    else core.changes.stop();
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
  #map(): ReadonlyMap<Key, unknown> | undefined {
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
    const m = core.current();
    if (this.#path === null) {
      const v = m.get(key);
      if (core.recordsReads) core.touch(key);
      return (core.recurse && v instanceof Node ? this.#child(key) : v) as V | undefined;
    }
    if (core.recordsReads) core.touch(this.#path[0]!); // a read inside a nested dict uses its root key
    const v = core.target(this.#path)?.get(key);
    return v instanceof Node ? (this.#child(key) as V) : (v as V | undefined);
  }

  has(key: Key): boolean {
    const core = this.#core;
    if (this.#h.closed) this.#h.check();
    const m = core.current();
    return (this.#path === null ? m : core.target(this.#path))?.has(key) ?? false;
  }

  get size(): number {
    return this.#map()?.size ?? 0;
  }

  /** The local copy, not refreshed: the fastest read when staleness is acceptable. Nested dicts appear as read-only Maps. */
  get data(): ReadonlyMap<Key, V> {
    const core = this.#core;
    this.#h.check();
    core.dropExpired();
    return ((this.#path === null ? core.map : core.target(this.#path)) ?? new Map()) as ReadonlyMap<Key, V>;
  }

  /** Applies pending updates now; returns how many operations were applied (a reload counts as one). */
  refresh(): number {
    this.#h.check();
    return this.#core.sync(true);
  }

  entries(): MapIterator<[Key, V]> {
    return entryList(this.#map(), (k, v) => this.#out(k, v));
  }

  keys(): MapIterator<Key> {
    return keyList(this.#map());
  }

  values(): MapIterator<V> {
    return valueList(this.#map(), (k, v) => this.#out(k, v));
  }

  [Symbol.iterator](): MapIterator<[Key, V]> {
    return this.entries();
  }

  forEach(callbackfn: (value: V, key: Key, map: Map<Key, V>) => void, thisArg?: unknown): void {
    forEachEntry(this, callbackfn, thisArg);
  }

  get [Symbol.toStringTag](): string {
    return 'UltraDict';
  }

  /** The contents as a plain object (nested dicts as plain objects): `JSON.stringify(dict)` works. */
  toJSON(): Record<string, unknown> {
    return toPlainObject(this.#map());
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

  /** Map's set; with `{ ttl }` (ms, 0: none) the key expires then, else after the dict's `ttl` option (if any). */
  set(key: Key, value: V, options?: WriteOptions): this {
    const core = this.#core;
    this.#h.check();
    checkKey(key);
    if (options !== undefined || core.ttl !== 0) return this.#setExpiring(key, value, options);
    // Map's two-argument form on a dict without a default ttl: the fast path
    if (this.#path === null && !(value instanceof UltraDict)) core.setRoot(key, value, this.#h.lockTimeout);
    else core.write([this.#raw(OP_SET, key, value)], this.#h.lockTimeout);
    return this;
  }

  /** set() with a ttl (its own, or the dict's). */
  #setExpiring(key: Key, value: V, options: WriteOptions | undefined): this {
    const ttl = this.#ttlOption(options, 'set(key, value, options)') ?? this.#defaultTtl();
    this.#core.write(this.#timedSet(key, value, ttl > 0 ? deadlineAfter(ttl) : 0), this.#h.lockTimeout);
    return this;
  }

  /** The `ttl` of a write's options, checked; refused in nested views (expiry is per root key). */
  #ttlOption(options: WriteOptions | undefined, where: string): number | undefined {
    const { ttl } = checkOptions(options, ['ttl'], where);
    checkTtl(ttl, `${where}: option ttl`);
    if (ttl !== undefined && this.#path !== null) {
      throw new TypeError(`${where}: option ttl applies to root keys only; a nested dict's keys expire with the root key that holds it`);
    }
    return ttl;
  }

  /** The time to live of a write without its own: the dict's `ttl` for root keys, none inside nested dicts. */
  #defaultTtl(): number {
    return this.#path === null ? this.#core.ttl : 0;
  }

  /** A SET, with an EXPIRE when `deadline` > 0 (both in one frame: nobody sees the key without its expiry). */
  #timedSet(key: Key, value: unknown, deadline: number): Op[] {
    const set = this.#raw(OP_SET, key, value);
    return deadline > 0 ? [set, { op: OP_EXPIRE, path: null, key, value: deadline }] : [set];
  }

  /**
   * Writes key keeping its expiry (increment, compute): a given `ttl` replaces it; a new key gets the
   * dict's default. Called under the lock.
   */
  #setKeeping(key: Key, value: unknown, ttl: number | undefined): void {
    const core = this.#core;
    if (this.#path !== null) {
      this.set(key, value as V);
      return;
    }
    let deadline = 0;
    if (ttl !== undefined) deadline = ttl > 0 ? deadlineAfter(ttl) : 0;
    else if (core.current().has(key)) deadline = core.deadline(key) ?? 0;
    else if (core.ttl > 0) deadline = deadlineAfter(core.ttl);
    if (deadline === 0 && !(value instanceof UltraDict)) core.setRoot(key, value, this.#h.lockTimeout);
    else core.write(this.#timedSet(key, value, deadline), this.#h.lockTimeout);
  }

  /** This dict as increment/compute write it: keys keep their expiry unless `ttl` is given. */
  #keeping(ttl: number | undefined): MapLike<V> {
    return {
      get: (k) => this.get(k),
      has: (k) => this.has(k),
      delete: (k) => this.delete(k),
      set: (k, v) => this.#setKeeping(k, v, ttl),
    };
  }

  /** Sets the key's expiry to `ms` from now (0: at once). True if the key exists; false (nothing written) if not. */
  expire(key: Key, ms: number): boolean {
    this.#h.check();
    checkKey(key);
    if (typeof ms !== 'number' || !(ms >= 0) || !Number.isFinite(ms)) {
      throw new TypeError(`expire(key, ms): ms must be a finite number >= 0, got ${describe(ms)}`);
    }
    this.#rootOnly('expire(key, ms)');
    return this.#ifPresent(key, () => [{ op: OP_EXPIRE, path: null, key, value: deadlineAfter(ms) }]);
  }

  /** Removes the key's expiry. True if the key had one; false if it is absent or does not expire. */
  persist(key: Key): boolean {
    this.#h.check();
    checkKey(key);
    this.#rootOnly('persist(key)');
    return this.#ifPresent(key, () => (this.#core.deadline(key) === undefined ? null : [{ op: OP_EXPIRE, path: null, key, value: 0 }]));
  }

  /** Ms left before the key expires; Infinity if it does not expire; undefined if it is absent. */
  ttl(key: Key): number | undefined {
    this.#h.check();
    checkKey(key);
    if (!this.has(key)) return undefined;
    const d = this.#path === null ? this.#core.deadline(key) : undefined;
    return d === undefined ? Infinity : Math.max(0, d - Date.now());
  }

  #rootOnly(where: string): void {
    if (this.#path !== null) throw new TypeError(`${where} applies to root keys only; a nested dict's keys expire with the root key that holds it`);
  }

  /** Under the lock: writes ops(key) if the key is present (ops may decline with null); whether they were written. */
  #ifPresent(key: Key, ops: () => Op[] | null): boolean {
    const core = this.#core;
    const lock = this.#h.lock;
    lock.enter();
    try {
      if (!core.current().has(key)) return false;
      const o = ops();
      if (o === null) return false;
      core.write(o, this.#h.lockTimeout);
      return true;
    } finally {
      lock.exit();
    }
  }

  delete(key: Key): boolean {
    const core = this.#core;
    this.#h.check();
    checkKey(key);
    const lock = this.#h.lock;
    lock.enter();
    try {
      core.read();
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
      core.read();
      const m = this.#path === null ? core.map : core.target(this.#path);
      if (m === undefined) throw new NotFoundError(`the nested dict ${this.path.map(String).join(' > ')} no longer exists`);
      if (m.size === 0) return;
      core.write([this.#raw(OP_CLEAR, undefined)]);
    } finally {
      lock.exit();
    }
  }

  /** Several writes published as one atomic batch: other processes see all of them or none. `{ ttl }` as in set. */
  update(items: Initial<V>, options?: WriteOptions): this {
    const core = this.#core;
    this.#h.check();
    const ttl = this.#ttlOption(options, 'update(items, options)') ?? this.#defaultTtl();
    const deadline = ttl > 0 ? deadlineAfter(ttl) : 0;
    const raw: Op[] = [];
    for (const [k, v] of entriesOf(items, 'update items')) {
      checkKey(k);
      for (const o of this.#timedSet(k, v, deadline)) raw.push(o);
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

  /**
   * Atomically replaces the value of key with fn(old); undefined from fn deletes the key. Returns the new
   * value. The key keeps its expiry unless `{ ttl }` is given.
   */
  compute(key: Key, fn: (old: V | undefined) => V | undefined, options?: WriteOptions): V | undefined {
    checkKey(key);
    if (typeof fn !== 'function') throw new TypeError(`compute(key, fn): fn must be a function, got ${describe(fn)}`);
    const ttl = this.#ttlOption(options, 'compute(key, fn, options)');
    return this.transaction(() => computeStep(this.#keeping(ttl), key, fn));
  }

  /**
   * Atomically adds `by` (default 1) to the number at key (missing counts as 0); returns the new value.
   * The key keeps its expiry unless `{ ttl }` is given (a new key gets the dict's `ttl`).
   */
  increment(key: Key, by: number = 1, options?: WriteOptions): number {
    checkKey(key);
    checkIncrement(by);
    const ttl = this.#ttlOption(options, 'increment(key, by, options)');
    return this.withLock(() => incrementStep(this.#keeping(ttl), key, by));
  }

  /** Map.prototype.getOrInsert (ES2026): the value at key; writes `value` first if the key is absent. Atomic. */
  getOrInsert(key: Key, value: V): V {
    checkKey(key);
    return this.withLock(() => getOrInsertStep(this, key, () => value));
  }

  /**
   * Map.prototype.getOrInsertComputed (ES2026): the value at key; writes `fn(key)` first if the key is
   * absent. Atomic: fn runs under the lock, once, in the one process that inserts.
   */
  getOrInsertComputed(key: Key, fn: (key: Key) => V): V {
    checkKey(key);
    checkCallback(fn, 'getOrInsertComputed(key, fn)');
    return this.transaction(() => getOrInsertStep(this, key, fn));
  }

  /**
   * The value at key; if it is absent, `loader(key)` computes it once on the machine: the first caller
   * runs the loader and writes its value, the callers of every other thread and process wait for that
   * value. A loader that throws rejects its own caller with its error and every waiting caller elsewhere
   * with a LoadFailedError, and nothing is written; a loader whose process dies is taken over by a waiting
   * caller. `ttl`: the time to live of the loaded value (default: the dict's). `signal` aborts this call's
   * wait (an AbortError); a load already running goes on for the others.
   */
  fetch(key: Key, loader: (key: Key) => V | Promise<V>, options: { ttl?: number; signal?: AbortSignal } = {}): Promise<V> {
    this.#h.check();
    checkKey(key);
    checkCallback(loader, 'fetch(key, loader)');
    const { ttl, signal } = checkOptions(options, ['ttl', 'signal'], 'fetch');
    checkTtl(ttl, 'fetch: option ttl');
    checkSignal(signal, 'fetch');
    if (this.#path !== null) throw new TypeError('fetch() works on the root dict: fetch the key path from there');
    if (signal?.aborted) return Promise.reject(abortError(signal));
    if (this.has(key)) return Promise.resolve(this.get(key) as V);
    const write = (v: V): void => void this.set(key, v, ttl === undefined ? undefined : { ttl });
    return fetchOnce<V>({ d: this, loads: this.#core.loads(), key, loader, write }, signal);
  }

  // ---- change events --------------------------------------------------------------------------

  readonly #waits = new ChangeWaits({
    listen: (onChange, onClose) => this.on('change', onChange).on('close', onClose),
    unlisten: (onChange, onClose) => this.off('change', onChange).off('close', onClose),
  });

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
    return this.#waits.watch(this.#holder(core), signal);
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
    return this.#waits.next(this.#holder(core), timeout, signal);
  }

  /** What a wait holds while it lasts: the event loop alive (through the engine), and this handle open. */
  #holder(core: Core): WaitHolder {
    return {
      hold: (delta) => {
        if (!core.closed) core.changes.hold(delta);
      },
      closed: () => this.#h.closed,
    };
  }

  /** Makes 'change' listeners keep the event loop alive (default: they do not). */
  ref(): this {
    this.#h.check();
    this.#core.changes.setRef(true);
    return this;
  }

  /** Lets the process exit even while 'change' listeners are registered (the default). */
  unref(): this {
    this.#h.check();
    this.#core.changes.setRef(false);
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
    this.#h.check();
    return { name: this.name, ...this.#core.stats() };
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
    this.#h.check();
    this.#core.unlink();
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
      if (subs.size === 0) core.changes.stop();
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


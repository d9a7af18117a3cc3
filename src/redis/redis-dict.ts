// RedisDict: the same dict across hosts. Reads are synchronous from a local copy; writes apply locally
// at once and are appended to a Redis stream; compute/increment/transaction are atomic across hosts.

import { EventEmitter } from 'node:events';
import { randomBytes } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import { checkOptions, checkTtl, isThenable } from '../args.js';
import { applyOp, applyWithUndo, Node, plain, undoAll, type Undo } from '../codec/tree.js';
import { checkKey, OP_BATCH, OP_CLEAR, OP_DELETE, OP_SET, changeOf, isChange, type Change, type Key, type Op } from '../codec/ops.js';
import { Encoder, encodeOps, encodeWrite } from '../codec/wire.js';
import { AlreadyClosedError, NotSupportedError, TransactionConflictError } from '../errors.js';
import { validateName } from '../shm/names.js';
import { resolveSerializer, type SerializerOption } from '../codec/serializer.js';
import { checkCallback, checkIncrement, computeStep, entriesOf, entryList, forEachEntry, getOrInsertStep, incrementStep, keyList, toPlainObject, valueList, type Initial } from '../map-api.js';
import { DEFAULT_PREFIX, type RedisTarget } from './protocol.js';
import { Replica, type ReplicaStats, type ReplicaTarget } from './replica.js';

export interface RedisDictOptions {
  /** Name of the replicated dict (1-100 of A-Z a-z 0-9 _ -); every host opens the same name. */
  name: string;
  /** A redis:// URL or ioredis options. */
  redis: RedisTarget;
  /** Prefix of the Redis keys (default 'ultradict:'). */
  prefix?: string;
  /** 'msgpack' (default), 'json', 'v8' or a custom serializer: the same on every host. */
  serializer?: SerializerOption;
  /** Write a snapshot (and trim the stream) once it holds three times max(snapshotEvery, keys) entries (default 10000). */
  snapshotEvery?: number;
  /** ms to wait for the first connection (default 5000). */
  connectTimeout?: number;
  /** ms that compute/increment/transaction keep retrying on conflicts before TransactionConflictError (default 10000). */
  conflictTimeout?: number;
  /** ms that close() waits for unacknowledged writes (default 5000). */
  closeTimeout?: number;
}

export interface RedisDictStats extends ReplicaStats {
  name: string;
  keys: number;
  conflicts: number;
}

/**
 * A transaction being run: its writes are applied locally with undo records and encoded as one batch;
 * the root keys it reads and writes make its condition and its version bumps in Redis.
 */
interface Tx {
  undo: Undo[];
  enc: Encoder;
  countAt: number;
  count: number;
  /** root keys read (null: it read the whole dict: size, iteration, data) */
  reads: Set<Key> | null;
  /** root keys written (null: it cleared the dict) */
  writes: Set<Key> | null;
}

/**
 * A dict replicated through a Redis stream. Every process (on any host) that opens the same name
 * converges to the stream's order. Open it with `await RedisDict.open({ name, redis })`.
 */
export class RedisDict<V = unknown> extends EventEmitter implements Map<Key, V> {
  readonly #state: { m: Map<Key, unknown> };
  readonly #replica: Replica;
  readonly #enc = new Encoder();
  readonly #ser;
  readonly #conflictTimeout: number;
  readonly #closeTimeout: number;
  readonly #txEnc = new Encoder();
  #tx: Tx | null = null;
  #closed = false;
  #conflicts = 0;
  /** transactions of this handle run one at a time (they would only conflict with each other) */
  #txQueue: Promise<unknown> = Promise.resolve();
  readonly name: string;

  private constructor(name: string, replica: Replica, opts: RedisDictOptions, state: { m: Map<Key, unknown> }) {
    super();
    this.name = name;
    this.#replica = replica;
    this.#ser = replica.cfg.serializer;
    this.#conflictTimeout = opts.conflictTimeout ?? 10_000;
    this.#closeTimeout = opts.closeTimeout ?? 5000;
    this.#state = state;
  }

  /** The local copy (replaced as a whole when a snapshot is loaded). */
  get #map(): Map<Key, unknown> {
    return this.#state.m;
  }

  /** Connects, loads the snapshot and the stream after it, and starts tailing. */
  static async open<V = unknown>(options: RedisDictOptions): Promise<RedisDict<V>> {
    if (options === null || typeof options !== 'object') throw new TypeError('RedisDict.open(options): options must be an object');
    for (const k of ['maxKeys', 'maxBytes', 'evict', 'ttl']) {
      if (Object.hasOwn(options, k)) {
        throw new NotSupportedError(`RedisDict.open: option ${k}: bounds and expiry are not replicated through Redis; see docs/replication.md`);
      }
    }
    checkOptions(options, ['name', 'redis', 'prefix', 'serializer', 'snapshotEvery', 'connectTimeout', 'conflictTimeout', 'closeTimeout'], 'RedisDict.open');
    const name = validateName(options.name);
    if (options.redis === undefined) throw new TypeError('RedisDict.open: options.redis (a redis:// URL or ioredis options) is required');
    const ser = resolveSerializer(options.serializer ?? 'msgpack');
    const snapshotEvery = options.snapshotEvery ?? 10_000;
    if (!Number.isSafeInteger(snapshotEvery) || snapshotEvery < 1) throw new RangeError('snapshotEvery must be a positive integer');
    // the local copy lives in `state` from the first load on; the dict (for events) is wired in after
    const state: { d: RedisDict<V> | null; m: Map<Key, unknown> } = { d: null, m: new Map() };
    const target: ReplicaTarget = {
      applyRemote: (ops, reapply) => {
        const d = state.d;
        const events = d !== null && d.listenerCount('change') > 0;
        for (const o of ops) if (applyOp(state.m, o) && events && isChange(o.op)) d.emit('change', outChange(changeOf(o)));
        for (const o of reapply()) applyOp(state.m, o);
      },
      reset: (map, reapply) => {
        for (const o of reapply()) applyOp(map, o);
        state.m = map;
        if (state.d !== null && state.d.listenerCount('change') > 0) state.d.emit('change', { type: 'reload' } satisfies Change);
      },
      snapshotSource: () => (state.d === null || state.d.#tx !== null ? null : state.m),
    };
    const replica = await Replica.open(
      {
        redis: options.redis,
        name,
        prefix: options.prefix ?? DEFAULT_PREFIX,
        serializer: ser,
        origin: randomBytes(8).toString('hex'),
        snapshotEvery,
        connectTimeout: options.connectTimeout ?? 5000,
        originTtl: 86_400,
      },
      target,
    );
    try {
      await replica.resync();
    } catch (e) {
      await replica.close(0).catch(() => {});
      throw e;
    }
    const d = new RedisDict<V>(name, replica, options, state);
    state.d = d;
    replica.report({
      error: (e) => {
        if (d.listenerCount('error') > 0) d.emit('error', e);
      },
      state: (online) => d.emit(online ? 'online' : 'offline'),
    });
    replica.startTail();
    return d;
  }

  // ---- reading (local copy) -------------------------------------------------------------------

  #check(): void {
    if (this.#closed) throw new AlreadyClosedError(`RedisDict ${JSON.stringify(this.name)} is closed`);
  }

  /** Inside a transaction: records that it read `key` (undefined: the whole dict). */
  #read(key?: Key): void {
    const tx = this.#tx;
    if (tx === null || tx.reads === null) return;
    if (key === undefined) tx.reads = null;
    else tx.reads.add(key);
  }

  get(key: Key): V | undefined {
    this.#check();
    if (this.#tx !== null) this.#read(key);
    return plain(this.#map.get(key)) as V | undefined;
  }
  has(key: Key): boolean {
    this.#check();
    if (this.#tx !== null) this.#read(key);
    return this.#map.has(key);
  }
  get size(): number {
    this.#check();
    this.#read();
    return this.#map.size;
  }
  /** A read-only view of the local copy. */
  get data(): ReadonlyMap<Key, V> {
    this.#check();
    this.#read();
    return this.#map as ReadonlyMap<Key, V>;
  }
  /** The local copy, for a read of the whole dict (recorded as such inside a transaction). */
  #all(): Map<Key, unknown> {
    this.#check();
    this.#read();
    return this.#map;
  }
  entries(): MapIterator<[Key, V]> {
    return entryList(this.#all(), (_k, v) => plain(v) as V);
  }
  keys(): MapIterator<Key> {
    return keyList(this.#all());
  }
  values(): MapIterator<V> {
    return valueList(this.#all(), (_k, v) => plain(v) as V);
  }
  [Symbol.iterator](): MapIterator<[Key, V]> {
    return this.entries();
  }
  forEach(fn: (value: V, key: Key, map: Map<Key, V>) => void, thisArg?: unknown): void {
    forEachEntry(this, fn, thisArg);
  }
  get [Symbol.toStringTag](): string {
    return 'RedisDict';
  }
  toJSON(): Record<string, unknown> {
    return toPlainObject(this.#all());
  }

  // ---- writing --------------------------------------------------------------------------------

  /** Applies the ops locally and appends them to the stream as one entry (or adds them to the transaction). */
  #write(raw: Op[]): void {
    this.#check();
    const tx = this.#tx;
    if (tx !== null) {
      const mark = tx.enc.pos;
      let ops;
      try {
        ops = encodeOps(tx.enc, raw, this.#ser, false);
      } catch (e) {
        tx.enc.rewind(mark); // SerializationError: nothing of this write stays in the transaction
        throw e;
      }
      for (const o of ops) {
        applyWithUndo(this.#map, o, tx.undo);
        if (o.op === OP_CLEAR) tx.writes = null;
        else tx.writes?.add(o.key!);
      }
      tx.count += ops.length;
      return;
    }
    const enc = this.#enc;
    enc.beginBody();
    const ops = encodeWrite(enc, raw, this.#ser, false); // throws SerializationError before anything changed
    for (const o of ops) applyOp(this.#map, o);
    this.#replica.push(this.#replica.newSeq(), Buffer.from(enc.buf.subarray(0, enc.pos)), ops);
  }

  /** Map's set. Expiry (`{ ttl }`) is not replicated through Redis: a ttl other than 0 is a NotSupportedError. */
  set(key: Key, value: V, options?: { ttl?: number }): this {
    checkKey(key);
    refuseTtl(options, 'RedisDict#set(key, value, options)');
    this.#write([{ op: OP_SET, path: null, key, value }]);
    return this;
  }

  delete(key: Key): boolean {
    checkKey(key);
    this.#check();
    if (this.#tx !== null) this.#read(key); // its result depends on the key
    if (!this.#map.has(key)) return false;
    this.#write([{ op: OP_DELETE, path: null, key, value: undefined }]);
    return true;
  }

  clear(): void {
    this.#write([{ op: OP_CLEAR, path: null, key: undefined, value: undefined }]);
  }

  /** Sets several items as one entry (all or none). A ttl other than 0 is a NotSupportedError, as in set(). */
  update(items: Initial<V>, options?: { ttl?: number }): this {
    refuseTtl(options, 'RedisDict#update(items, options)');
    const raw: Op[] = [];
    for (const [k, v] of entriesOf(items, 'update items')) {
      checkKey(k);
      raw.push({ op: OP_SET, path: null, key: k, value: v });
    }
    if (raw.length > 0) this.#write(raw);
    return this;
  }

  /** Resolves once every write made before the call is acknowledged by Redis. */
  async flush(options: { timeout?: number } = {}): Promise<void> {
    this.#check();
    await this.#replica.flush(options.timeout);
  }

  /**
   * Runs fn (synchronous) against the local copy at the stream's current end and appends its writes
   * as one entry only if no other entry came first; otherwise catches up and runs it again. Atomic
   * across every host. Resolves with fn's result once the entry is in the local copy.
   */
  transaction<R>(fn: () => R): Promise<R> {
    this.#check();
    if (this.#tx !== null) return Promise.resolve(fn()); // nested: part of the outer transaction
    const run = this.#txQueue.then(() => this.#runTransaction(fn));
    this.#txQueue = run.catch(() => {});
    return run;
  }

  async #runTransaction<R>(fn: () => R): Promise<R> {
    const replica = this.#replica;
    const start = Date.now();
    const deadline = start + this.#conflictTimeout;
    for (let attempt = 0; ; attempt++) {
      if (attempt > 0 && Date.now() > deadline) {
        // no new attempt starts after conflictTimeout; an attempt already running (waiting for Redis) is finished first
        throw new TransactionConflictError(
          `transaction on ${JSON.stringify(this.name)} conflicted ${attempt} time(s); gave up after ${Date.now() - start} ms (conflictTimeout ${this.#conflictTimeout} ms: no new attempt after it)`,
        );
      }
      this.#check();
      await replica.flush();
      // first try at the position the tail has brought us to; after a conflict, read what came first
      if (attempt > 0 && !(await replica.catchUp())) await replica.resync();
      if (replica.pendingCount > 0) continue; // writes made meanwhile from elsewhere in this process
      const expected = replica.lastId;
      const enc = this.#txEnc;
      enc.beginBody();
      enc.u8(OP_BATCH);
      const tx: Tx = { undo: [], enc, countAt: enc.pos, count: 0, reads: new Set(), writes: new Set() };
      enc.u32(0);
      this.#tx = tx;
      let result: R;
      try {
        result = fn();
        if (isThenable(result)) throw new TypeError('transaction(fn): fn must be synchronous (it may run more than once; do awaited work outside)');
      } finally {
        undoAll(tx.undo); // the entry, once appended, is applied in stream order
        this.#tx = null;
      }
      if (tx.count === 0) return result;
      enc.patchU32(tx.countAt, tx.count);
      const seq = replica.newSeq();
      const body = Buffer.from(enc.buf.subarray(0, enc.pos));
      // conditional on the keys fn read: entries after `expected` that wrote other keys do not conflict
      const [status, id, , prev] = await replica.sendConditional(seq, body, expected, tx.reads, tx.writes);
      if (status === 'ok') {
        // the entry follows `prev` in the stream: apply it now if that is where this copy is; else the tail
        // brings the entries in between (it was woken by them) and this one, or, if it is slow, read them
        if (prev === replica.lastId && replica.ingest([{ id, prev, origin: replica.cfg.origin, seq, body }])) return result;
        if (!(await replica.whenApplied(id, 200))) await replica.catchUpTo(id);
        return result;
      }
      if (status === 'dup') {
        // a resend after a reconnect of an entry that had landed
        if (!(await replica.catchUp())) await replica.resync();
        return result;
      }
      this.#conflicts++;
      await delay(Math.random() * Math.min(20, attempt + 1));
    }
  }

  /** Atomically replaces key's value by fn(old) (undefined deletes it); resolves with the new value. */
  async compute(key: Key, fn: (old: V | undefined) => V | undefined): Promise<V | undefined> {
    checkKey(key);
    checkCallback(fn, 'compute(key, fn)');
    return this.transaction(() => computeStep(this, key, fn));
  }

  /** Atomically adds `by` to a number (a missing key counts as 0); resolves with the new value. */
  async increment(key: Key, by = 1): Promise<number> {
    checkKey(key);
    checkIncrement(by);
    return this.transaction(() => incrementStep(this, key, by));
  }

  /**
   * Map.prototype.getOrInsert (ES2026), on the local copy: the value at key, after setting `value` if the
   * key is absent here. Like set(), not a cross-host transaction: use compute() for that.
   */
  getOrInsert(key: Key, value: V): V {
    checkKey(key);
    this.#check();
    return getOrInsertStep(this, key, () => value);
  }

  /** Map.prototype.getOrInsertComputed (ES2026), on the local copy, as getOrInsert(). */
  getOrInsertComputed(key: Key, fn: (key: Key) => V): V {
    checkKey(key);
    checkCallback(fn, 'getOrInsertComputed(key, fn)');
    this.#check();
    return getOrInsertStep(this, key, fn);
  }

  /** Writes a snapshot now and trims the stream (normally automatic). */
  async snapshot(): Promise<void> {
    this.#check();
    await this.#replica.snapshot();
  }

  stats(): RedisDictStats {
    this.#check();
    return { name: this.name, keys: this.#map.size, conflicts: this.#conflicts, ...this.#replica.stats() };
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Waits (up to closeTimeout) for unacknowledged writes, then disconnects. Rejects if some were not acknowledged. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#replica.close(this.#closeTimeout);
  }

  /** `await using d = await RedisDict.open(…)`: close() at the end of the block. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

function outChange(c: Change): Change {
  if (c.value instanceof Node) c.value = plain(c.value);
  return c;
}

/** Checks a write's options; expiry is not replicated through Redis (docs/replication.md): any ttl but 0 is refused. */
function refuseTtl(options: { ttl?: number } | undefined, where: string): void {
  const { ttl } = checkOptions(options, ['ttl'], where);
  checkTtl(ttl, `${where}: option ttl`);
  if (ttl !== undefined && ttl > 0) {
    throw new NotSupportedError(`${where}: expiry (ttl) is not replicated through Redis; see docs/replication.md`);
  }
}

// The bridge: joins one host's shared-memory dict to a Redis stream. Local writes (frames of other
// processes) are forwarded as entries; remote entries are written into shared memory, followed by
// the local writes not yet in the stream, so every host converges to the stream's order.

import { EventEmitter } from 'node:events';
import { hostname } from 'node:os';
import { isDeepStrictEqual } from 'node:util';
import { checkOptions } from '../args.js';
import { applyOp } from '../codec/tree.js';
import { Encoder, encodeWrite } from '../codec/wire.js';
import { OP_DELETE, OP_EXPIRE, OP_NOTE, OP_SET, type Op, type Key } from '../codec/ops.js';
import type { FrameSource } from '../engine/frames.js';
import { frameSourceOf, UltraDict, type UltraDictOptions } from '../dict.js';
import { NotFoundError, NotSupportedError } from '../errors.js';
import { validateName } from '../shm/names.js';
import type { SerializerOption } from '../codec/serializer.js';
import { encodeDump } from '../shm/dump.js';
import { claimDict, type Claim } from './claim.js';
import { cmpId, DEFAULT_PREFIX, describeTarget, keyField, type RedisTarget } from './protocol.js';
import { Replica, type ReplicaStats, type ReplicaTarget } from './replica.js';

export interface BridgeOptions {
  /** The local shared-memory dict (attached, or created if missing). */
  name: string;
  /** A redis:// URL or ioredis options. */
  redis: RedisTarget;
  /** Name of the replicated dict in Redis (default: the local name). Hosts that share it converge. */
  stream?: string;
  /** This host's bridge id (default: the host name). Keep it stable: a restarted bridge resumes by it. */
  id?: string;
  prefix?: string;
  serializer?: SerializerOption;
  snapshotEvery?: number;
  connectTimeout?: number;
  /** ms that close() waits for unacknowledged writes (default 5000). */
  closeTimeout?: number;
  /** Options for the local dict if the bridge creates it (bufferSize, mode, recurse, ...). */
  dict?: Omit<UltraDictOptions, 'name' | 'serializer' | 'create'>;
}

export interface BridgeStats extends ReplicaStats {
  name: string;
  stream: string;
  origin: string;
  forwarded: number;
  /** keys the first start of this bridge forwarded from what the host already held */
  seeded: number;
  /** times local frames were overwritten before the bridge read them */
  gaps: number;
  /** keys whose local writes were recovered from the local contents after such a gap at a restart, and forwarded */
  recovered: number;
  /** keys whose local writes may be lost after such a gap (the stream's values stood for them); 0 is the goal */
  lost: number;
}

/** Prefix of the NOTE on the frames a bridge writes: such frames are never forwarded. */
const NOTE_PREFIX = 'bridge:';
const POS_BITS = 40n;
/** How often the applied position is recorded in Redis (ms), and how long Redis keeps it (s). */
const APPLIED_EVERY_MS = 500;
const APPLIED_TTL = 30 * 86_400;
const POS_MASK = (1n << POS_BITS) - 1n;

/** A forwarded frame's sequence number: its end position in the local stream of its generation. */
export function seqOf(gen: number, end: number): bigint {
  return (BigInt(gen) << POS_BITS) | BigInt(end);
}

function writeSkippingMissing(core: FrameSource, ops: readonly Op[], note: Op, noted: { v: boolean }): void {
  for (const o of ops) {
    if (o.op === OP_EXPIRE) continue; // expiry is not replicated (docs/replication.md): the origin's EXPIRED delete comes later
    try {
      core.write([o]);
    } catch (e) {
      // the nested dict it writes into was deleted or replaced earlier in stream order: skipped everywhere
      if (e instanceof NotFoundError) continue;
      throw e;
    }
    if (!noted.v) {
      core.write([note]);
      noted.v = true;
    }
  }
}

/** Joins the shared-memory dict `name` of this host to the Redis stream of `stream`. */
export class Bridge extends EventEmitter {
  readonly dict: UltraDict<unknown>;
  readonly stream: string;
  readonly origin: string;
  readonly #core: FrameSource;
  readonly #replica: Replica;
  readonly #closeTimeout: number;
  readonly #claim: Claim;
  /** warnings raised before anyone listened (inside start()): delivered to the first 'warning' listener */
  #queuedWarnings: Error[] = [];
  #forwarded = 0;
  #seeded = 0;
  #gaps = 0;
  #recovered = 0;
  #lostKeys = 0;
  #appliedRecorded = '';
  #recorder: NodeJS.Timeout | null = null;
  #closed = false;

  private constructor(dict: UltraDict<unknown>, stream: string, origin: string, replica: Replica, closeTimeout: number, claim: Claim) {
    super();
    this.dict = dict;
    this.stream = stream;
    this.origin = origin;
    this.#core = frameSourceOf(dict);
    this.#replica = replica;
    this.#closeTimeout = closeTimeout;
    this.#claim = claim;
    this.on('newListener', (event: string) => {
      if (event !== 'warning' || this.#queuedWarnings.length === 0) return;
      process.nextTick(() => {
        for (const w of this.#queuedWarnings.splice(0)) this.emit('warning', w);
      });
    });
  }

  /** Emits 'warning', or keeps it for the first listener (start() warns before the caller can listen). */
  #warn(e: Error): void {
    if (this.listenerCount('warning') > 0) this.emit('warning', e);
    else this.#queuedWarnings.push(e);
  }

  /** Opens the local dict, connects, forwards what the last run of this bridge left, loads the stream and starts tailing. */
  static async start(options: BridgeOptions): Promise<Bridge> {
    if (options === null || typeof options !== 'object') throw new TypeError('Bridge.start(options): options must be an object');
    checkOptions(options, ['name', 'redis', 'stream', 'id', 'prefix', 'serializer', 'snapshotEvery', 'connectTimeout', 'closeTimeout', 'dict'], 'Bridge.start');
    const name = validateName(options.name);
    const stream = validateName(options.stream ?? name);
    if (options.redis === undefined) throw new TypeError('Bridge.start: options.redis (a redis:// URL or ioredis options) is required');
    const id = (options.id ?? hostname()).replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 100) || 'host';
    const dict = new UltraDict<unknown>({ ...options.dict, name, serializer: options.serializer });
    const { ttl, evict } = dict.stats();
    if (ttl > 0 || evict !== null) {
      dict.close();
      const what = ttl > 0 ? 'a ttl option; expiry' : 'bounds (maxKeys/maxBytes); eviction';
      throw new NotSupportedError(`Bridge.start: ${JSON.stringify(name)} was created with ${what} is not replicated through Redis (docs/replication.md)`);
    }
    const core = frameSourceOf(dict);
    const ser = core.ser; // the local dict's own (it may have been created with another than the default)
    const origin = `${id}:${core.tag}`;
    let claim: Claim;
    let self: Bridge | null = null;
    try {
      // one bridge per local dict; its counters answer `ultradict inspect`
      claim = await claimDict(name, core.tag, origin, () => {
        if (self === null) return { starting: true };
        const s = self.stats();
        return { stream: s.stream, forwarded: s.forwarded, applied: s.applied, pending: s.pending, gaps: s.gaps, recovered: s.recovered, lost: s.lost, online: s.online, lastId: s.lastId };
      });
    } catch (e) {
      dict.close();
      throw e;
    }
    const note: Op = { op: OP_NOTE, path: null, key: `${NOTE_PREFIX}${origin}`, value: undefined };
    const target: ReplicaTarget = {
      applyRemote(ops, reapply) {
        // one frame: the remote ops, then the local writes that come after them in stream order
        core.transaction(() => {
          const noted = { v: false };
          writeSkippingMissing(core, ops, note, noted);
          writeSkippingMissing(core, reapply(), note, noted);
        });
      },
      reset(map, reapply) {
        core.transaction(() => {
          for (const o of reapply()) applyOp(map, o);
          const raw: Op[] = [];
          for (const k of core.map.keys()) if (!map.has(k)) raw.push({ op: OP_DELETE, path: null, key: k, value: undefined });
          for (const [k, v] of map) {
            if (!core.map.has(k) || !isDeepStrictEqual(core.map.get(k), v)) raw.push({ op: OP_SET, path: null, key: k, value: v });
          }
          if (raw.length > 0) core.write([...raw, note]);
        });
        self?.emit('reload');
      },
      snapshotSource: () => core.map,
    };
    let replica: Replica;
    try {
      replica = await Replica.open(
        {
          redis: options.redis,
          name: stream,
          prefix: options.prefix ?? DEFAULT_PREFIX,
          serializer: ser,
          origin,
          snapshotEvery: options.snapshotEvery ?? 10_000,
          connectTimeout: options.connectTimeout ?? 5000,
          originTtl: 30 * 86_400,
        },
        target,
      );
    } catch (e) {
      claim.release();
      dict.close();
      throw e;
    }
    const b = new Bridge(dict, stream, origin, replica, options.closeTimeout ?? 5000, claim);
    self = b;
    try {
      await b.#checkPersistence(options.redis);
      await b.#resume();
    } catch (e) {
      await replica.close(0).catch(() => {});
      claim.release();
      dict.close();
      throw e;
    }
    return b;
  }

  /** Warns when Redis keeps nothing on disk (a restart of Redis then empties the dict on every host). */
  async #checkPersistence(target: RedisTarget): Promise<void> {
    let aof: string | undefined, save: string | undefined;
    try {
      aof = ((await this.#replica.cmd.call('CONFIG', 'GET', 'appendonly')) as string[])[1];
      save = ((await this.#replica.cmd.call('CONFIG', 'GET', 'save')) as string[])[1];
    } catch {
      return; // CONFIG disabled or renamed (managed Redis): nothing to tell
    }
    if (aof === 'no' && save === '') {
      this.#warn(
        new Error(
          `${describeTarget(target)} has neither AOF (appendonly) nor RDB snapshots (save) enabled: if Redis restarts, it restarts empty and the dict ${JSON.stringify(this.stream)} is emptied on every host`,
        ),
      );
    }
  }

  /** Queues the local writes the stream does not have yet, then loads the stream and starts both directions. */
  async #resume(): Promise<void> {
    const core = this.#core;
    const replica = this.#replica;
    replica.report({
      error: (e) => {
        if (this.listenerCount('error') > 0) this.emit('error', e);
      },
      state: (online) => this.emit(online ? 'online' : 'offline'),
    });
    const landed = await replica.landedSeq();
    // has this bridge (id and local dict) run before? recorded in Redis on its first start
    const known = (await replica.cmd.hsetnx(replica.keys.bridges, this.origin, new Date().toISOString())) === 0;
    core.read();
    const g = core.gen;
    const q = core.pos;
    const forwardFrames = (from: number, to: number): void => core.framesBetween(from, to, (body, ops, end, n) => this.#forward(seqOf(core.gen, end), body, ops, n));
    if (landed !== null && landed >> POS_BITS === BigInt(g) && Number(landed & POS_MASK) <= q) {
      // the last run forwarded up to `landed`: forward the rest, frame by frame (not its own frames)
      forwardFrames(Number(landed & POS_MASK), q);
    } else if (!known) {
      // first start of this bridge on this dict: seed the stream with what the host already holds
      this.#seed();
    } else if (landed === null ? g > 0 : landed >> POS_BITS < BigInt(g)) {
      // restarted, and the local stream moved to a new generation since the last forward that landed:
      // the frames in between are gone, but their writes are in the local contents. Forward the keys
      // whose local value differs from the stream's and that no entry after this bridge's applied
      // position wrote (so the difference is a local write), then every local frame still readable.
      await this.#recover(g);
      forwardFrames(0, q);
    } else {
      forwardFrames(0, q);
    }
    core.tapFrames((body, ops, n) => {
      if (body === null) {
        // a whole generation was missed: its first frame is still readable, the frames before it are gone
        forwardFrames(0, core.pos);
        this.#lost();
      } else this.#forward(seqOf(core.gen, core.pos), body, ops, n);
    });
    await replica.resync();
    await this.#recordApplied();
    this.#recorder = setInterval(() => void this.#recordApplied(), APPLIED_EVERY_MS);
    this.#recorder.unref();
    // listening makes the native watcher sync this handle on every local write, which forwards it
    this.dict.on('change', () => {});
    this.dict.ref();
    replica.startTail();
  }

  /**
   * After the local stream switched generation while this bridge was down: the local contents hold the
   * writes of the frames it never read. A key whose local value differs from the stream's is a local
   * write not forwarded if the last entry that wrote it (its version) is at or before the applied
   * position recorded by the last run (every entry up to it was in the local dict then). Those keys are
   * forwarded as one entry (their local values, or deletes). For the others a newer entry exists that
   * the local dict may never have seen: the stream's value stands, and they count as lost.
   */
  async #recover(g: number): Promise<void> {
    const core = this.#core;
    const replica = this.#replica;
    const k = replica.keys;
    const applied = await replica.cmd.get(k.applied(this.origin));
    const { map: remote } = await replica.loadState();
    const differing: Key[] = [];
    for (const [key, v] of core.map) if (!remote.has(key) || !isDeepStrictEqual(remote.get(key), v)) differing.push(key);
    for (const key of remote.keys()) if (!core.map.has(key)) differing.push(key);
    const raw: Op[] = [];
    let lost = 0;
    if (differing.length > 0 && applied !== null) {
      const star = (await replica.cmd.hget(k.ver, '*')) ?? '0-0';
      const vers = await replica.cmd.hmget(k.ver, ...differing.map(keyField));
      differing.forEach((key, i) => {
        const field = vers[i] ?? null;
        const ver = field !== null && cmpId(field, star) > 0 ? field : star;
        if (cmpId(ver, applied) > 0) lost++;
        else if (core.map.has(key)) raw.push({ op: OP_SET, path: null, key, value: core.map.get(key) });
        else raw.push({ op: OP_DELETE, path: null, key, value: undefined });
      });
    } else lost = differing.length; // no applied position recorded (expired, or an older version ran): nothing can be told apart
    if (raw.length > 0) {
      const enc = new Encoder();
      enc.beginBody();
      const ops = encodeWrite(enc, raw, core.ser, false);
      this.#recovered += raw.length;
      this.#forward(seqOf(g, 0), Buffer.from(enc.buf.subarray(0, enc.pos)), ops, null);
    }
    this.#gaps++;
    if (lost > 0) {
      this.#lostKeys += lost;
      this.#warn(
        new Error(
          `bridge ${this.origin}: the local stream of ${JSON.stringify(core.name)} moved on while the bridge was down; ` +
            `${raw.length} key(s) with local writes recovered and forwarded, ${lost} key(s) whose local writes may be lost: ` +
            (applied === null
              ? 'no applied position of the last run is recorded in Redis, so local and remote writes cannot be told apart; the stream\'s values stand'
              : `another host wrote them after ${applied}, the last entry this bridge had applied; the stream's values stand`),
        ),
      );
    }
  }

  /** Records in Redis how far the local dict has the stream (every entry up to lastId): #recover's bound. */
  #recordApplied(): Promise<void> {
    const id = this.#replica.lastId;
    if (id === this.#appliedRecorded || this.#replica.closed) return Promise.resolve();
    this.#appliedRecorded = id;
    return this.#replica.cmd
      .set(this.#replica.keys.applied(this.origin), id, 'EX', APPLIED_TTL)
      .then(() => {})
      .catch(() => {
        this.#appliedRecorded = ''; // try again on the next tick of the recorder
      });
  }

  #warnedExpiry = false;

  /** Sends a local frame to the stream, unless a bridge wrote it (its note says so). */
  #forward(seq: bigint, body: Buffer, ops: Op[], note: string | null): void {
    if (note !== null && note.startsWith(NOTE_PREFIX)) return;
    if (!this.#warnedExpiry && ops.some((o) => o.op === OP_EXPIRE)) {
      this.#warnedExpiry = true;
      this.#warn(
        new Error(
          `bridge ${this.origin}: a process set an expiry on a key of ${JSON.stringify(this.#core.name)}; expiry is not replicated through Redis: ` +
            'other hosts keep such keys until the delete of the expired key reaches them (docs/replication.md)',
        ),
      );
    }
    this.#forwarded++;
    this.#replica.push(seq, body, ops);
  }

  /** First start with local data: the whole local state as one entry (local values win for its keys). */
  #seed(): void {
    const core = this.#core;
    if (core.map.size === 0) return;
    const enc = new Encoder();
    encodeDump(enc, core.map, core.ser);
    const ops: Op[] = [];
    for (const [k, v] of core.map) ops.push({ op: OP_SET, key: k as Key, value: v, path: null });
    this.#seeded = ops.length;
    this.#forward(seqOf(core.gen, core.pos), Buffer.from(enc.buf.subarray(0, enc.pos)), ops, null);
  }

  /** Local frames were overwritten before this bridge read them: their writes are not forwarded. */
  #lost(): void {
    this.#gaps++;
    this.#warn(
      new Error(
        `bridge ${this.origin}: the local stream of ${JSON.stringify(this.#core.name)} moved on before the bridge read all of it; ` +
          'local writes in between were not forwarded (the stream\'s values stand for them). Keep the bridge running, or give the dict a larger bufferSize',
      ),
    );
  }

  /** Resolves once every local write made before the call is in Redis. */
  async flush(options: { timeout?: number } = {}): Promise<void> {
    this.#core.read(); // picks up local writes the watcher has not delivered yet
    await this.#replica.flush(options.timeout);
  }

  stats(): BridgeStats {
    return { name: this.#core.name, stream: this.stream, origin: this.origin, forwarded: this.#forwarded, seeded: this.#seeded, gaps: this.#gaps, recovered: this.#recovered, lost: this.#lostKeys, ...this.#replica.stats() };
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Forwards what is left (up to closeTimeout), disconnects and closes the local handle. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#recorder !== null) clearInterval(this.#recorder);
    try {
      this.#core.read();
      await this.#recordApplied().catch(() => {});
      await this.#replica.close(this.#closeTimeout);
    } finally {
      this.#core.tapFrames(null);
      this.#claim.release();
      this.dict.close();
    }
  }

  /** `await using b = await Bridge.start(…)`: close() at the end of the block. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

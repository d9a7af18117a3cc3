// The bridge: joins one host's shared-memory dict to a Redis stream. Local writes (frames of other
// processes) are forwarded as entries; remote entries are written into shared memory, followed by
// the local writes not yet in the stream, so every host converges to the stream's order.

import { EventEmitter } from 'node:events';
import { hostname } from 'node:os';
import { isDeepStrictEqual } from 'node:util';
import { checkOptions } from '../args.js';
import { applyOp, Encoder, OP_DELETE, OP_NOTE, OP_SET, type DecodedOp, type Key } from '../codec.js';
import type { Core, RawOp } from '../core.js';
import { coreOf, UltraDict, type UltraDictOptions } from '../dict.js';
import { NotFoundError } from '../errors.js';
import { validateName } from '../names.js';
import type { SerializerOption } from '../serializer.js';
import { encodeDump } from '../snapshot.js';
import { DEFAULT_PREFIX, type RedisTarget } from './protocol.js';
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
  /** times local frames were overwritten before the bridge read them (their writes were not forwarded) */
  gaps: number;
}

/** Prefix of the NOTE on the frames a bridge writes: such frames are never forwarded. */
const NOTE_PREFIX = 'bridge:';
const POS_BITS = 40n;
const POS_MASK = (1n << POS_BITS) - 1n;

/** A forwarded frame's sequence number: its end position in the local stream of its generation. */
export function seqOf(gen: number, end: number): bigint {
  return (BigInt(gen) << POS_BITS) | BigInt(end);
}

function writeSkippingMissing(core: Core, ops: readonly DecodedOp[], note: RawOp, noted: { v: boolean }): void {
  for (const o of ops) {
    try {
      core.write([o as RawOp]);
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
  readonly #core: Core;
  readonly #replica: Replica;
  readonly #closeTimeout: number;
  #forwarded = 0;
  #seeded = 0;
  #gaps = 0;
  #closed = false;

  private constructor(dict: UltraDict<unknown>, stream: string, origin: string, replica: Replica, closeTimeout: number) {
    super();
    this.dict = dict;
    this.stream = stream;
    this.origin = origin;
    this.#core = coreOf(dict);
    this.#replica = replica;
    this.#closeTimeout = closeTimeout;
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
    const core = coreOf(dict);
    const ser = core.ser; // the local dict's own (it may have been created with another than the default)
    const origin = `${id}:${core.ctrl.tag}`;
    const note: RawOp = { op: OP_NOTE, path: null, key: `${NOTE_PREFIX}${origin}`, value: undefined };
    let self: Bridge | null = null;
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
          const raw: RawOp[] = [];
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
      dict.close();
      throw e;
    }
    const b = new Bridge(dict, stream, origin, replica, options.closeTimeout ?? 5000);
    self = b;
    try {
      await b.#resume();
    } catch (e) {
      await replica.close(0).catch(() => {});
      dict.close();
      throw e;
    }
    return b;
  }

  /** Queues the local writes the stream does not have yet, then loads the stream and starts both directions. */
  async #resume(): Promise<void> {
    const core = this.#core;
    const replica = this.#replica;
    replica.onError = (e) => {
      if (this.listenerCount('error') > 0) this.emit('error', e);
    };
    replica.onState = (online) => this.emit(online ? 'online' : 'offline');
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
    } else {
      // restarted, and the local stream moved to a new generation since the last forward that landed:
      // forward every local frame still readable; those of the generations in between are gone
      forwardFrames(0, q);
      if (landed === null ? g > 0 : landed >> POS_BITS < BigInt(g)) this.#lost();
    }
    core.onFrame = (body, ops, n) => {
      if (body === null) {
        // a whole generation was missed: its first frame is still readable, the frames before it are gone
        forwardFrames(0, core.pos);
        this.#lost();
      } else this.#forward(seqOf(core.gen, core.pos), body, ops, n);
    };
    await replica.resync();
    // listening makes the native watcher sync this handle on every local write, which forwards it
    this.dict.on('change', () => {});
    this.dict.ref();
    replica.startTail();
  }

  /** Sends a local frame to the stream, unless a bridge wrote it (its note says so). */
  #forward(seq: bigint, body: Buffer, ops: DecodedOp[], note: string | null): void {
    if (note !== null && note.startsWith(NOTE_PREFIX)) return;
    this.#forwarded++;
    this.#replica.push(seq, body, ops);
  }

  /** First start with local data: the whole local state as one entry (local values win for its keys). */
  #seed(): void {
    const core = this.#core;
    if (core.map.size === 0) return;
    const enc = new Encoder();
    encodeDump(enc, core.map, core.ser);
    const ops: DecodedOp[] = [];
    for (const [k, v] of core.map) ops.push({ op: OP_SET, key: k as Key, value: v, path: null });
    this.#seeded = ops.length;
    this.#forward(seqOf(core.gen, core.pos), Buffer.from(enc.buf.subarray(0, enc.pos)), ops, null);
  }

  /** Local frames were overwritten before this bridge read them: their writes are not forwarded. */
  #lost(): void {
    this.#gaps++;
    this.emit(
      'warning',
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
    return { name: this.#core.name, stream: this.stream, origin: this.origin, forwarded: this.#forwarded, seeded: this.#seeded, gaps: this.#gaps, ...this.#replica.stats() };
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Forwards what is left (up to closeTimeout), disconnects and closes the local handle. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#core.read();
      await this.#replica.close(this.#closeTimeout);
    } finally {
      this.#core.onFrame = null;
      this.dict.close();
    }
  }

  /** `await using b = await Bridge.start(…)`: close() at the end of the block. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

// The replication engine shared by RedisDict and the bridge: loads a snapshot and the stream after it,
// tails the stream, sends this side's writes (pending until their echo comes back) and keeps the
// local contents equal to "stream order + own pending writes" by re-applying pending writes after
// each remote entry they must follow. See docs/ARCHITECTURE.md ("Replication through Redis").

import { setTimeout as delay } from 'node:timers/promises';
import type { Redis as RedisClient } from 'ioredis';
import { applyOp, nSet, Node } from '../codec/tree.js';
import { Decoder, Encoder } from '../codec/wire.js';
import { OP_CLEAR, OP_SET, type Op, type Key } from '../codec/ops.js';
import { ParameterMismatchError, ReplicationError, UltraDictError } from '../errors.js';
import type { Serializer } from '../codec/serializer.js';
import { decodeDump, encodeDump } from '../shm/dump.js';
import { cmpId, connect, describeTarget, isAuthError, keySpec, keysOf, parseEntries, REDIS_FORMAT, scripts, type Entry, type Keys, type RedisTarget } from './protocol.js';

/** What the replica keeps in sync: a local map (RedisDict) or a shared-memory dict (the bridge). */
export interface ReplicaTarget {
  /**
   * Applies the operations of remote entries, in order, then the pending local operations that
   * reapply() returns (it must be called after the target is up to date with its own local writes).
   * An operation whose nested dict no longer exists is skipped, the same way on every side.
   */
  applyRemote(ops: Op[], reapply: () => Op[]): void;
  /** Replaces the whole contents with a snapshot (a fresh map it may keep), then applies reapply(). */
  reset(map: Map<Key, unknown>, reapply: () => Op[]): void;
  /** The contents at lastId, for a snapshot; only asked while nothing is pending. null: not now. */
  snapshotSource(): ReadonlyMap<Key, unknown> | null;
}

export interface ReplicaConfig {
  redis: RedisTarget;
  name: string;
  prefix: string;
  serializer: Serializer;
  origin: string;
  /** A snapshot is written once the stream holds three times max(snapshotEvery, keys) entries. */
  snapshotEvery: number;
  connectTimeout: number;
  /** Seconds Redis remembers an origin's last sequence number (for resends and restarts). */
  originTtl: number;
}

interface Pending {
  seq: bigint;
  ops: Op[];
  /** root keys written; null: a root clear (touches every key) */
  keys: Key[] | null;
}

export interface ReplicaStats {
  lastId: string;
  pending: number;
  applied: number;
  confirmed: number;
  resyncs: number;
  snapshots: number;
  online: boolean;
}

const PAGE = 1000;
/** most writes sent in one script call, and most bytes */
const OUTBOX_ENTRIES = 1000;
const OUTBOX_BYTES = 4 << 20;

export class Replica {
  readonly keys: Keys;
  /** id of the last entry applied: the next entry's `p` must be this */
  lastId = '0-0';
  /** id of the last entry read (past entries that are not ours, which the chain does not include) */
  private readPos = '0-0';
  closed = false;
  online = true;
  onError: (e: unknown) => void = () => {};
  onState: (online: boolean) => void = () => {};

  private pending: Pending[] = [];
  /** whenApplied() calls waiting for the tail */
  private readonly waiters = new Set<{ id: string; done: (ok: boolean) => void }>();
  private ph = 0;
  private readonly pendingKeys = new Map<Key, number>();
  private lastAck: Promise<unknown> = Promise.resolve();
  /** writes of this tick not sent yet: seq, body, key spec (count, fields), seq, body, ... */
  private outbox: (string | number | Buffer)[] = [];
  private outboxSeqs: bigint[] = [];
  private outboxBytes = 0;
  private outboxScheduled = false;
  private failure: ReplicationError | null = null;
  private resyncing: Promise<void> | null = null;
  private tailDone: Promise<void> | null = null;
  private snapWanted = false;
  /** snapshot(): the next snapshot is written even if not due */
  private snapForced = false;
  private snapping = false;
  private snapDone: Promise<void> = Promise.resolve();
  private sinceCheck = 0;
  private checking = false;
  private nextSeq = 1n;
  private stats_ = { applied: 0, confirmed: 0, resyncs: 0, snapshots: 0 };

  private constructor(
    readonly cfg: ReplicaConfig,
    private readonly target: ReplicaTarget,
    readonly cmd: RedisClient,
    private readonly tail: RedisClient,
  ) {
    this.keys = keysOf(cfg.prefix, cfg.name);
    // connection errors are reported through 'close'/'ready' below (commands wait for the reconnect),
    // except refused credentials on a reconnect (a password changed meanwhile): retrying cannot fix
    // them, so they are reported at once, once per outage
    let authReported = false;
    cmd.on('error', (e: unknown) => {
      if (!isAuthError(e) || authReported || this.closed) return;
      authReported = true;
      this.onError(new ReplicationError(`${describeTarget(cfg.redis)} refused the credentials on reconnect: ${(e as Error).message} (still retrying)`, { cause: e }));
    });
    tail.on('error', () => {});
    cmd.on('close', () => this.setOnline(false));
    cmd.on('ready', () => {
      authReported = false;
      this.setOnline(true);
    });
  }

  /** Connects (two connections: commands and the blocking tail) and checks or records the dict's format. */
  static async open(cfg: ReplicaConfig, target: ReplicaTarget): Promise<Replica> {
    const cmd = await connect(cfg.redis, `${cfg.name}-cmd`, cfg.connectTimeout);
    let tail: RedisClient;
    try {
      tail = await connect(cfg.redis, `${cfg.name}-tail`, cfg.connectTimeout);
    } catch (e) {
      cmd.disconnect();
      throw e;
    }
    const r = new Replica(cfg, target, cmd, tail);
    try {
      await r.checkMeta();
    } catch (e) {
      cmd.disconnect();
      tail.disconnect();
      throw e;
    }
    return r;
  }

  private async checkMeta(): Promise<void> {
    const k = this.keys;
    const ser = this.cfg.serializer.name;
    const res = await scripts(this.cmd).udInit(k.meta, k.stream, k.last, k.snap, k.count, k.bridges, k.ver, REDIS_FORMAT, ser);
    if (res[0] === 'foreign') {
      throw new ReplicationError(`Redis key ${res[1]} is a ${res[2]}, not part of an ultradict dict; refusing to touch it (choose another name or prefix)`);
    }
    if (res[1] !== REDIS_FORMAT) {
      throw new ReplicationError(`${k.meta} has format ${JSON.stringify(res[1])}; this ultradict understands format ${REDIS_FORMAT}`);
    }
    if (res[2] !== ser) {
      throw new ParameterMismatchError(`the replicated dict ${JSON.stringify(this.cfg.name)} uses serializer '${res[2]}', not '${ser}'`);
    }
  }

  private setOnline(online: boolean): void {
    if (this.online === online || this.closed) return;
    this.online = online;
    this.onState(online);
  }

  /** The last sequence number Redis recorded for this origin (null: none, or forgotten after originTtl). */
  async landedSeq(): Promise<bigint | null> {
    const v = await this.cmd.get(this.keys.origin(this.cfg.origin));
    return v === null ? null : BigInt(v);
  }

  // ---- pending writes -------------------------------------------------------------------------

  get pendingCount(): number {
    return this.pending.length - this.ph;
  }

  /** A sequence number for a write of this replica (RedisDict; the bridge brings its own). */
  newSeq(): bigint {
    return this.nextSeq++;
  }

  /** Records a local write (already applied locally); it is sent with the others of this tick. */
  push(seq: bigint, body: Buffer, ops: Op[]): void {
    let keys: Key[] | null = [];
    for (const o of ops) {
      if (o.path != null && o.path.length > 0) keys.push(o.path[0]!);
      else if (o.op === OP_CLEAR) {
        keys = null;
        break;
      } else keys.push(o.key!);
    }
    this.pending.push({ seq, ops: ops.map(detach), keys });
    if (keys !== null) for (const k of keys) this.pendingKeys.set(k, (this.pendingKeys.get(k) ?? 0) + 1);
    this.outbox.push(seq.toString(), body);
    keySpec(keys, this.outbox);
    this.outboxSeqs.push(seq);
    this.outboxBytes += body.length;
    if (this.outboxSeqs.length >= OUTBOX_ENTRIES || this.outboxBytes >= OUTBOX_BYTES) this.sendOutbox();
    else if (!this.outboxScheduled) {
      this.outboxScheduled = true;
      queueMicrotask(() => this.sendOutbox());
    }
  }

  /** Sends the queued writes as one script call (in order, after everything sent before). */
  private sendOutbox(): void {
    this.outboxScheduled = false;
    const batch = this.outbox;
    const seqs = this.outboxSeqs;
    if (seqs.length === 0) return;
    this.outbox = [];
    this.outboxSeqs = [];
    this.outboxBytes = 0;
    const k = this.keys;
    const o = this.cfg.origin;
    const p = scripts(this.cmd)
      .udWriteMany(k.stream, k.last, k.origin(o), k.count, k.ver, o, this.cfg.originTtl, seqs.length, ...batch)
      .then(
        (r) => this.noteLength(r[2]),
        (e) => this.writeFailed(seqs, e),
      );
    this.lastAck = p;
  }

  /**
   * Sends one entry (transactions), appended only if no entry after `expected` wrote a root key in
   * `reads` (null: it read everything, so the stream must not have moved past `expected`). `writes`: the
   * root keys it writes (null: a root clear). Resolves with [status, id or last, length, prev].
   */
  sendConditional(seq: bigint, body: Buffer, expected: string, reads: Iterable<Key> | null, writes: Iterable<Key> | null): Promise<[string, string, number, string]> {
    const k = this.keys;
    const o = this.cfg.origin;
    const specs: (string | number | Buffer)[] = [];
    keySpec(reads, specs);
    keySpec(writes, specs);
    return scripts(this.cmd).udWrite(k.stream, k.last, k.origin(o), k.count, k.ver, o, seq.toString(), expected, body, this.cfg.originTtl, ...(specs as (string | number)[]));
  }

  /** Entries between snapshots (a generation): max(snapshotEvery, keys), so that dumps stay amortised. */
  private generation(): number {
    return Math.max(this.cfg.snapshotEvery, this.target.snapshotSource()?.size ?? 0);
  }

  /** Stream length that calls for a snapshot: the two generations kept plus a new one. */
  private snapshotAt(): number {
    return 3 * this.generation();
  }

  /** After a write reply or a length check: wants a snapshot once the stream is long enough. */
  noteLength(len: number): void {
    if (len >= this.snapshotAt()) this.snapWanted = true;
    if (this.snapWanted) this.maybeSnapshot();
  }

  /** Readers check the stream's length every snapshotAt()/2 operations they apply (writers learn it from replies). */
  private countApplied(n: number): void {
    this.sinceCheck += n;
    if (this.sinceCheck < this.snapshotAt() / 2 || this.checking || this.closed) return;
    this.sinceCheck = 0;
    this.checking = true;
    this.cmd
      .xlen(this.keys.stream)
      .then((len) => this.noteLength(len))
      .catch(() => {})
      .finally(() => {
        this.checking = false;
      });
  }

  private writeFailed(seqs: bigint[], e: unknown): void {
    if (this.closed) return;
    const failed = new Set(seqs);
    const keep: Pending[] = [];
    for (let j = this.ph; j < this.pending.length; j++) {
      const p = this.pending[j]!;
      if (failed.has(p.seq)) this.unregister(p);
      else keep.push(p);
    }
    this.pending = keep;
    this.ph = 0;
    const err = new ReplicationError(`Redis rejected a write of ${JSON.stringify(this.cfg.name)}: ${(e as Error)?.message ?? e}`, { cause: e });
    this.failure ??= err;
    this.onError(err);
    // the write is applied locally: take the contents from Redis again (plus what is still pending)
    void this.resync().catch((x: unknown) => this.onError(x));
  }

  private unregister(p: Pending): void {
    if (p.keys === null) return;
    for (const k of p.keys) {
      const n = this.pendingKeys.get(k)! - 1;
      if (n === 0) this.pendingKeys.delete(k);
      else this.pendingKeys.set(k, n);
    }
  }

  private popHead(): void {
    this.unregister(this.pending[this.ph]!);
    this.pending[this.ph] = undefined as never;
    this.ph++;
    if (this.ph === this.pending.length) {
      this.pending = [];
      this.ph = 0;
    } else if (this.ph > 1024 && this.ph * 2 > this.pending.length) {
      this.pending = this.pending.slice(this.ph);
      this.ph = 0;
    }
  }

  /** Ops of the pending writes that must be applied again after remote ops on `keys` (null: all). */
  private reapplyFor(keys: Set<Key> | null): Op[] {
    const pend = this.pending;
    let from = -1;
    if (keys === null) from = this.ph;
    else {
      for (let i = this.ph; i < pend.length; i++) {
        const pk = pend[i]!.keys;
        if (pk === null || pk.some((k) => keys.has(k))) {
          from = i;
          break;
        }
      }
    }
    const out: Op[] = [];
    if (from < 0) return out;
    // fresh copies of nested dicts: the target may keep (and later writes change) what it is given
    for (let i = from; i < pend.length; i++) for (const o of pend[i]!.ops) out.push(detach(o));
    return out;
  }

  private allPending(): Op[] {
    return this.reapplyFor(null);
  }

  /** Resolves once every write pushed before the call is acknowledged by Redis; rejects if one was refused. */
  async flush(timeoutMs?: number): Promise<void> {
    this.sendOutbox();
    const p = this.lastAck;
    if (timeoutMs === undefined) await p;
    else {
      let timer: NodeJS.Timeout | undefined;
      try {
        await Promise.race([
          p,
          new Promise((_, reject) => {
            timer = setTimeout(
              () =>
                reject(
                  new ReplicationError(
                    `${this.pendingCount} write(s) of ${JSON.stringify(this.cfg.name)} not acknowledged by ${describeTarget(this.cfg.redis)} within ${timeoutMs} ms` +
                      (this.online ? '' : ' (Redis is unreachable; they stay queued and are sent on reconnect)'),
                  ),
                ),
              timeoutMs,
            );
          }),
        ]);
      } finally {
        clearTimeout(timer);
      }
    }
    if (this.failure !== null) {
      const f = this.failure;
      this.failure = null;
      throw f;
    }
  }

  // ---- reading the stream ---------------------------------------------------------------------

  private skipForeign(e: Entry): void {
    this.onError(new ReplicationError(`skipped entry ${e.id} of ${this.keys.stream}: ${e.bad}`));
  }

  private decode(e: Entry): Op[] | null {
    const ops: Op[] = [];
    try {
      Decoder.of(e.body, `Redis entry ${e.id}`).body(this.cfg.serializer, ops);
      return ops;
    } catch (x) {
      // every reader skips the same entry, so all sides still converge
      this.onError(new ReplicationError(`skipped the unreadable entry ${e.id} of ${this.keys.stream}: ${(x as Error).message}`, { cause: x }));
      return null;
    }
  }

  /**
   * Applies entries in stream order. Returns false on a gap (an entry whose predecessor is not the
   * last one applied: entries were trimmed away, or Redis lost data) and while a resync runs (it
   * reads them itself); the caller then resyncs (or waits for the running one).
   */
  ingest(entries: readonly Entry[]): boolean {
    if (this.resyncing !== null) return false; // the resync reads these entries itself
    let cursor = this.lastId;
    let group: Op[] = [];
    let groupKeys: Set<Key> | null = new Set();
    const flushGroup = (): void => {
      if (group.length > 0) {
        const keys = groupKeys;
        this.target.applyRemote(group, () => this.reapplyFor(keys));
        this.stats_.applied += group.length;
        this.countApplied(group.length);
      }
      this.lastId = cursor;
      this.wake();
      group = [];
      groupKeys = new Set();
    };
    try {
      for (const e of entries) {
        if (cmpId(e.id, cursor) <= 0 || cmpId(e.id, this.readPos) <= 0) continue;
        this.readPos = e.id;
        if (e.bad !== undefined) {
          this.skipForeign(e); // written into the stream by something else: every reader skips it
          continue;
        }
        if (e.prev !== cursor) {
          // junk added by something else (not in the chain) is skipped; anything else is a gap
          if (this.decode(e) === null) continue;
          flushGroup();
          return false;
        }
        cursor = e.id;
        if (e.origin === this.cfg.origin && this.pendingCount > 0) {
          const head = this.pending[this.ph]!;
          if (head.seq === e.seq) {
            // the echo of our own oldest pending write: the local contents already include it
            flushGroup();
            this.popHead();
            this.stats_.confirmed++;
            continue;
          }
          if (e.seq > head.seq) {
            // pending writes before this one will never come back (refused): start over from Redis
            flushGroup();
            while (this.pendingCount > 0 && this.pending[this.ph]!.seq < e.seq) this.popHead();
            if (this.pendingCount > 0 && this.pending[this.ph]!.seq === e.seq) this.popHead();
            return false;
          }
        }
        // a remote entry (or one of ours no longer pending: a transaction, or from before a restart)
        const ops = this.decode(e);
        if (ops === null) continue;
        for (const o of ops) {
          group.push(o);
          if (groupKeys === null) continue;
          if (o.path != null && o.path.length > 0) groupKeys.add(o.path[0]!);
          else if (o.op === OP_CLEAR) groupKeys = null;
          else groupKeys.add(o.key!);
        }
      }
      flushGroup();
    } finally {
      if (this.snapWanted && this.pendingCount === 0) this.maybeSnapshot();
    }
    return true;
  }

  /** Where reading continues: after the last entry read, unless that is before the last applied. */
  private readFrom(): string {
    return cmpId(this.readPos, this.lastId) > 0 ? this.readPos : this.lastId;
  }

  /** Reads and applies every entry after lastId (on the command connection). False on a gap. */
  async catchUp(): Promise<boolean> {
    for (;;) {
      const raw = await this.cmd.xrangeBuffer(this.keys.stream, `(${this.readFrom()}`, '+', 'COUNT', PAGE);
      const entries = parseEntries(raw);
      if (!this.ingest(entries)) return false;
      if (entries.length < PAGE) return true;
    }
  }

  /** Resolves once lastId is at least `id` (the tail applies it), or after ms; true if it was reached. */
  whenApplied(id: string, ms: number): Promise<boolean> {
    if (cmpId(this.lastId, id) >= 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const w = {
        id,
        done: (ok: boolean): void => {
          clearTimeout(timer);
          this.waiters.delete(w);
          resolve(ok);
        },
      };
      const timer = setTimeout(() => w.done(false), ms);
      this.waiters.add(w);
    });
  }

  private wake(): void {
    if (this.waiters.size === 0) return;
    for (const w of [...this.waiters]) if (cmpId(this.lastId, w.id) >= 0) w.done(true);
  }

  /** Catches up, resyncing on a gap, until lastId is at least `id`. */
  async catchUpTo(id: string): Promise<void> {
    while (cmpId(this.lastId, id) < 0) {
      if (!(await this.catchUp())) await this.resync();
      else if (cmpId(this.lastId, id) < 0) throw new ReplicationError(`entry ${id} is missing from ${this.keys.stream}`);
    }
  }

  /**
   * Loads the snapshot and the entries after it. Pending writes that Redis already has (by the
   * origin's recorded sequence number) are dropped: they are in the snapshot or come back as entries.
   */
  resync(): Promise<void> {
    this.resyncing ??= (async () => {
      try {
        for (let attempt = 0; !this.closed; attempt++) {
          const k = this.keys;
          const { snapId, map, landed } = await this.readSnapshot();
          while (this.pendingCount > 0 && this.pending[this.ph]!.seq <= landed) this.popHead();
          // read the entries after the snapshot into the map, then replace the target's contents once:
          // it goes straight to a state at least as new as before (no value moves back in time)
          const end = await this.readInto(map, snapId);
          if (end === null) {
            if (attempt > 100) throw new ReplicationError(`${k.stream} keeps changing under the snapshot; giving up`);
            continue; // trimmed while we read: start over
          }
          this.target.reset(map, () => this.allPending());
          this.lastId = end.lastId;
          this.wake();
          this.readPos = end.readPos;
          this.stats_.resyncs++;
          return;
        }
      } finally {
        this.resyncing = null;
      }
    })();
    return this.resyncing;
  }

  /**
   * The stream's contents now (the snapshot and the entries after it), without touching the target.
   * Only while nothing is pending (entries of this origin would confirm pending writes).
   */
  async loadState(): Promise<{ map: Map<Key, unknown>; lastId: string }> {
    if (this.pendingCount > 0) throw new ReplicationError('loadState() needs nothing pending');
    for (let attempt = 0; attempt <= 100; attempt++) {
      const { snapId, map } = await this.readSnapshot();
      const end = await this.readInto(map, snapId);
      if (end !== null) return { map, lastId: end.lastId };
    }
    throw new ReplicationError(`${this.keys.stream} keeps changing under the snapshot; giving up`);
  }

  /** The snapshot (its id and contents) and, read with it, this origin's last sequence number in Redis (-1: none). */
  private async readSnapshot(): Promise<{ snapId: string; map: Map<Key, unknown>; landed: bigint }> {
    const k = this.keys;
    const res = await this.cmd.multi().hget(k.snap, 'id').hgetBuffer(k.snap, 'd').get(k.origin(this.cfg.origin)).exec();
    if (res === null) throw new ReplicationError('snapshot read was aborted');
    for (const [err] of res) if (err) throw new ReplicationError(`cannot read the snapshot: ${err.message}`, { cause: err });
    const snapId = (res[0]![1] as string | null) ?? '0-0';
    const dump = res[1]![1] as Buffer | null;
    const landed = res[2]![1] === null ? -1n : BigInt(res[2]![1] as string);
    if (dump === null || dump.length === 0) return { snapId, map: new Map(), landed };
    try {
      return { snapId, map: decodeDump(Decoder.of(dump, `snapshot ${k.snap}`), 0, dump.length, this.cfg.serializer).map, landed };
    } catch (x) {
      throw new ReplicationError(`the snapshot ${k.snap} is unreadable: ${(x as Error).message}`, { cause: x });
    }
  }

  /**
   * Applies every entry after `from` to a plain map (the stream's own state: own entries too, which
   * also confirm the pending writes they carry). Returns the position reached, or null on a gap.
   */
  private async readInto(map: Map<Key, unknown>, from: string): Promise<{ lastId: string; readPos: string } | null> {
    let cursor = from;
    let readPos = from;
    for (;;) {
      const entries = parseEntries(await this.cmd.xrangeBuffer(this.keys.stream, `(${readPos}`, '+', 'COUNT', PAGE));
      for (const e of entries) {
        if (cmpId(e.id, readPos) <= 0) continue;
        readPos = e.id;
        if (e.bad !== undefined) {
          this.skipForeign(e);
          continue;
        }
        const ops = this.decode(e);
        if (e.prev !== cursor) {
          if (ops === null) continue; // junk outside the chain
          return null;
        }
        cursor = e.id;
        if (e.origin === this.cfg.origin) while (this.pendingCount > 0 && this.pending[this.ph]!.seq <= e.seq) this.popHead();
        if (ops !== null) for (const o of ops) applyOp(map, o);
      }
      if (entries.length < PAGE) return { lastId: cursor, readPos };
    }
  }

  /** Starts the tail: XREAD BLOCK on its own connection, applying entries as they come. */
  startTail(): void {
    this.tailDone ??= (async () => {
      while (!this.closed) {
        let raw: unknown;
        try {
          raw = await this.tail.xreadBuffer('COUNT', PAGE, 'BLOCK', 1000, 'STREAMS', this.keys.stream, this.readFrom());
        } catch (e) {
          if (this.closed) return;
          await delay(50);
          continue;
        }
        if (this.closed) return;
        if (raw === null) continue;
        try {
          const entries = parseEntries((raw as [unknown, unknown][])[0]![1]);
          if (!this.ingest(entries)) await this.resync();
        } catch (e) {
          if (this.closed) return;
          this.onError(e);
          await delay(100);
        }
      }
    })();
  }

  // ---- snapshots ------------------------------------------------------------------------------

  private maybeSnapshot(): void {
    if (this.snapping || this.closed || this.pendingCount > 0 || this.resyncing !== null) return;
    this.snapping = true;
    this.snapDone = this.takeSnapshot()
      .catch((e: unknown) => this.onError(new ReplicationError(`snapshot failed: ${(e as Error).message}`, { cause: e })))
      .finally(() => {
        this.snapping = false;
      });
  }

  /**
   * One process at a time (a lock key with a timeout) dumps its contents at lastId, which requires
   * nothing pending, and publishes them, if a generation of entries came since the last snapshot;
   * the script refuses a snapshot older than the current one or one that is not due.
   */
  private async takeSnapshot(): Promise<void> {
    const k = this.keys;
    if ((await this.cmd.set(k.snapLock, this.cfg.origin, 'PX', 10_000, 'NX')) === null) return; // another process is at it
    try {
      const gen = this.snapForced ? 0 : this.generation();
      if ((await scripts(this.cmd).udSnapshotDue(k.snap, k.count, gen)) !== 1) {
        this.snapWanted = false; // another process wrote one recently
        return;
      }
      if (this.closed || this.pendingCount > 0 || this.resyncing !== null) return;
      const src = this.target.snapshotSource();
      if (src === null) return;
      const enc = new Encoder(64 * 1024);
      const [len] = encodeDump(enc, src, this.cfg.serializer);
      const id = this.lastId;
      this.snapWanted = false;
      this.snapForced = false;
      if ((await scripts(this.cmd).udSnapshot(k.snap, k.stream, k.count, k.ver, id, enc.buf.subarray(0, len), gen)) === 1) this.stats_.snapshots++;
    } finally {
      await this.cmd.del(k.snapLock);
    }
  }

  /** Writes a snapshot now (after flushing); resolves once Redis has it. */
  async snapshot(): Promise<void> {
    await this.flush();
    await this.catchUp();
    this.snapWanted = true;
    this.snapForced = true;
    this.maybeSnapshot();
    await this.snapDone;
  }

  stats(): ReplicaStats {
    return { lastId: this.lastId, pending: this.pendingCount, online: this.online, ...this.stats_ };
  }

  /** Stops the tail, waits up to timeoutMs for pending writes, and disconnects. */
  async close(timeoutMs: number): Promise<void> {
    if (this.closed) return;
    let err: unknown = null;
    try {
      await this.flush(timeoutMs);
    } catch (e) {
      err = e;
    }
    this.closed = true;
    for (const w of [...this.waiters]) w.done(false);
    await within(this.snapDone, timeoutMs); // releases the snapshot lock before the connection goes
    this.tail.disconnect();
    // a blocked XREAD that ioredis had queued for a reconnect is never settled by disconnect(): do not wait for it
    await within(this.tailDone?.catch(() => {}), 100);
    try {
      await within(this.cmd.quit(), 1000);
    } catch {
      // already gone
    }
    this.cmd.disconnect();
    if (err !== null) throw err instanceof UltraDictError ? err : new ReplicationError(String(err), { cause: err });
  }
}

/**
 * The op with a private deep copy of its nested dict (a SET of a Node); other ops as they are. A pending
 * write must keep the value it was made with: the Node a target holds changes with later writes into
 * it (remote ones included), and re-applying that changed Node would resurrect them.
 */
function detach(o: Op): Op {
  return o.op === OP_SET && o.value instanceof Node ? { op: o.op, key: o.key, path: o.path, value: copyNode(o.value) } : o;
}

function copyNode(n: Node): Node {
  const c = new Node();
  for (const [k, v] of n) nSet(c, k, v instanceof Node ? copyNode(v) : v);
  return c;
}

/** Waits for p, but at most ms; the timer is cleared either way (it must not keep the process alive). */
async function within(p: Promise<unknown> | undefined, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([p, new Promise((r) => (timer = setTimeout(r, ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

// The control block of a dict (segment "/ud.<name>"): header with the options fixed at creation, the
// published generation, the change counter, the lock word, statistics and the table of attached threads.
// Byte layout: docs/FORMAT.md.

import { randomBytes } from 'node:crypto';
import { CorruptSegmentError } from '../errors.js';
import { native, type SelfInfo } from './native.js';
import { Segment, type SegmentGuard } from './segment.js';
import type { Trust } from './trust.js';

export const CONTROL_MAGIC = 0x54434455; // "UDCT" little-endian
export const FORMAT_VERSION = 4;

// header (byte offsets)
const H_MAGIC = 0;
const H_VERSION = 4;
const H_STATE = 8;
const H_SIZE = 12;
const H_ID_LO = 16;
const H_ID_HI = 20;
const H_CREATED_AT = 24;
const H_CREATOR_PID = 32;
const H_CREATOR_TID = 36;
const H_CREATOR_START = 40;
const H_BUFFER_SIZE = 48;
const H_FULL_DUMP_SIZE = 56;
const H_FLAGS = 64;
const H_MODE = 68;
const H_SER_LEN = 72;
const H_SER_NAME = 73;
const SER_NAME_MAX = 63;
const H_CREATOR_NS = 144; // f64: pid namespace of the creator
const H_TTL = 152; // f64: default time to live in ms of every write (the `ttl` option; 0: none)
const H_MAX_KEYS = 160; // f64: the `maxKeys` bound (0: none)
const H_MAX_BYTES = 168; // f64: the `maxBytes` bound (0: none)
const H_EVICT = 176; // u32: EVICT_NONE, EVICT_LRU or EVICT_FIFO
const H_RECENCY_SLOTS = 180; // u32: slots of the recency table after the attach slots (EVICT_LRU only; else 0)

// shared, changing words (byte offsets; i32 index = offset / 4)
export const OFF_LOCK = 256;
const OFF_COUNTER = 264;
const OFF_GEN = 272; // BigInt64
export const OFF_LISTENERS = 280;
const OFF_LOCK_SINCE = 288; // f64, ms since epoch, written by the holder
const OFF_DUMPS = 296;
const OFF_UNLINKED = 300;
const OFF_LAST_DUMP_BYTES = 304; // f64
const OFF_RECOVERIES = 312;
const OFF_UNLINK_PENDING = 316; // i32: the creator closed (autoUnlink) while others were attached
/** i32: a starving lock waiter's request for a direct hand-off: its thread id (see lock.ts), 0 = none */
export const I_HANDOFF = 320 >> 2;
const OFF_LAST_WAKE = 328; // f64: ms since epoch of the last wake-up a lock release sent
const OFF_HANDOFFS = 336; // u32: number of lock hand-offs offered to starving waiters
const OFF_HANDOFF_LAPSED = 340; // u32: offers withdrawn because the waiter did not take them in time
const OFF_HANDOFF_AT = 344; // f64: ms since epoch when the lock was last offered to a waiter
// 360-399: data segment names and gc's removal (see the block at the end of the class)
const OFF_NONCES = 360; // NONCE_RING x 8 bytes: random name part of generation g's segments, slot g % NONCE_RING
const NONCE_RING = 3; // generations g-1, g (published) and g+1 (being written) never share a slot
const OFF_FIXED_NONCE = 384; // 8 bytes: random name part of the fixed dump area
const OFF_REMOVER = 392; // i32: pid of the gc() removing the dict (state REMOVING), else 0
const OFF_EXPIRED = 400; // f64: number of expired keys whose delete a writer published
const OFF_EVICTED = 408; // f64: number of keys a writer evicted to keep the dict within its bounds
// 416-447: reserved for eviction
// 1024-3071: loads in progress of fetch() (engine/loads.ts), LOAD_SLOTS x LOAD_SIZE bytes, changed under the lock
const OFF_LOADS = 1024;
export const LOAD_SLOTS = 16;
const LOAD_SIZE = 128;
const L_STATE = 0; // i32: LOAD_FREE, LOAD_RUNNING, LOAD_FAILED
const L_OWNER = 4; // i32: thread id (lock-word form) of the loading thread
const L_SEQ = 8; // u32: bumped by every claim of the slot
const L_HASH1 = 12; // u32, u32: hashes of the key
const L_HASH2 = 16;
const L_MSG_LEN = 20; // u32: bytes of the failure message
const L_AT = 24; // f64: ms since epoch of the claim or failure
const L_WAITERS = 32; // i32: callers waiting for this load (a failure is kept until each has seen it)
const L_MSG = 36; // the failure message, UTF-8, at most LOAD_MSG_MAX bytes
export const LOAD_MSG_MAX = LOAD_SIZE - L_MSG;
export const LOAD_FREE = 0;
export const LOAD_RUNNING = 1;
export const LOAD_FAILED = 2;

export const I_LOCK = OFF_LOCK >> 2;
export const I_COUNTER = OFF_COUNTER >> 2;
export { OFF_COUNTER };
export const I_LISTENERS = OFF_LISTENERS >> 2;
const I_GEN64 = OFF_GEN >> 3;
const I_STATE = H_STATE >> 2;

// The f64 words other threads read without the lock (lock holder's start, last wake-up, last dump size)
// move as their 64-bit pattern through Atomics: a plain 8-byte access is neither ordered nor guaranteed
// untorn across threads (JS memory model), which a weakly ordered CPU can show.
const f64Scratch = new Float64Array(1);
const f64ScratchBits = new BigInt64Array(f64Scratch.buffer);
function loadF64(b64: BigInt64Array, byteOffset: number): number {
  f64ScratchBits[0] = Atomics.load(b64, byteOffset >> 3);
  return f64Scratch[0]!;
}
function storeF64(b64: BigInt64Array, byteOffset: number, v: number): void {
  if (v === 0) {
    Atomics.store(b64, byteOffset >> 3, 0n); // the lock's release path: no conversion
    return;
  }
  f64Scratch[0] = v;
  Atomics.store(b64, byteOffset >> 3, f64ScratchBits[0]!);
}

export const STATE_INITIALIZING = 0;
export const STATE_READY = 1;
export const STATE_ABANDONED = 2;
/** gc() is removing the dict (see Control.beginRemoval); attachers that see it retry. */
export const STATE_REMOVING = 3;

// attach slots
const SLOTS_OFFSET = 4096;
const SLOT_SIZE = 32;
export const SLOT_COUNT = 1024;
const S_PID = 0;
const S_TID = 4;
const S_START = 8;
const S_NS = 16;
const S_LISTENING = 24; // i32: change listeners of this thread (summed in OFF_LISTENERS)
const S_EPOCH = 28; // i32: claim epoch, bumped by every claim (lock words name slot and epoch)
export const CONTROL_SIZE = SLOTS_OFFSET + SLOT_COUNT * SLOT_SIZE;
/** The recency table of an 'lru' dict (u32 per slot) starts right after the attach slots. */
export const RECENCY_OFFSET = CONTROL_SIZE;
/** Most slots of a recency table (16 MiB). */
export const MAX_RECENCY_SLOTS = 1 << 22;

export const EVICT_NONE = 0;
export const EVICT_LRU = 1;
export const EVICT_FIFO = 2;

export const FLAG_FIXED_DUMP = 1;
/** Plain objects assigned as values become nested dicts (the `recurse` option). */
export const FLAG_RECURSE = 2;
/** Largest bufferSize / fullDumpSize accepted from a header (the stream limit: 16 GiB). */
const MAX_SEGMENT = 0x7fffffff * 8;

/** A slot of the table of loads in progress (fetch()). */
export interface LoadSlot {
  state: number;
  owner: number;
  seq: number;
  hash1: number;
  hash2: number;
  at: number;
  waiters: number;
  message: string;
}

export interface ControlOptions {
  bufferSize: number;
  fullDumpSize: number; // 0 = a fresh segment per dump
  serializer: string;
  mode: number;
  /** FLAG_* bits other than FLAG_FIXED_DUMP (which follows fullDumpSize) */
  flags?: number;
  /** default time to live in ms (0: none) */
  ttl?: number;
  /** bounds (0: none), the eviction policy and the slots of its recency table (EVICT_LRU only) */
  maxKeys?: number;
  maxBytes?: number;
  evict?: number;
  recencySlots?: number;
}

let selfInfo: SelfInfo | undefined;
/** The calling thread's identity (pid, tid, start time, pid namespace); cached per thread. */
export function self(): SelfInfo {
  return (selfInfo ??= native.self());
}

/**
 * Whether the thread (pid, tid) that started at `startTime` (clock ticks) is alive: a reused pid or tid
 * has another start time. Unknown (another pid namespace, /proc unreadable) counts as alive: we never
 * take over from a thread we cannot prove dead.
 */
export function threadAlive(pid: number, tid: number, startTime: number, pidNamespace: number): boolean {
  if (pid <= 0) return false;
  if (pidNamespace !== 0 && pidNamespace !== self().pidNamespace) return true;
  const st = native.threadStartTime(pid, tid);
  if (st === -1) return false;
  if (st === -2) return true;
  return st === startTime;
}

export interface SlotInfo {
  index: number;
  pid: number;
  tid: number;
  startTime: number;
  pidNamespace: number;
}

export class Control {
  readonly i32: Int32Array;
  readonly b64: BigInt64Array;
  readonly dv: DataView;

  private constructor(readonly seg: Segment) {
    this.i32 = seg.i32;
    this.b64 = new BigInt64Array(seg.buffer, 0, seg.size >>> 3);
    this.dv = seg.dv;
  }

  /** Creates the control segment exclusively and writes its header (state stays INITIALIZING). */
  static create(segName: string, opts: ControlOptions): Control {
    const size = CONTROL_SIZE + 4 * (opts.recencySlots ?? 0);
    const seg = Segment.create(segName, size, opts.mode);
    const c = new Control(seg);
    const me = self();
    const dv = c.dv;
    const id = randomBytes(8);
    dv.setUint32(H_CREATOR_PID, me.pid, true);
    dv.setUint32(H_CREATOR_TID, me.tid, true);
    dv.setFloat64(H_CREATOR_START, me.startTime, true);
    dv.setFloat64(H_CREATOR_NS, me.pidNamespace, true);
    dv.setUint32(H_ID_LO, id.readUInt32LE(0), true);
    dv.setUint32(H_ID_HI, id.readUInt32LE(4), true);
    dv.setFloat64(H_CREATED_AT, Date.now(), true);
    dv.setUint32(H_SIZE, size, true);
    dv.setFloat64(H_BUFFER_SIZE, opts.bufferSize, true);
    dv.setFloat64(H_FULL_DUMP_SIZE, opts.fullDumpSize, true);
    dv.setUint32(H_FLAGS, (opts.fullDumpSize > 0 ? FLAG_FIXED_DUMP : 0) | (opts.flags ?? 0), true);
    dv.setUint32(H_MODE, opts.mode, true);
    dv.setFloat64(H_TTL, opts.ttl ?? 0, true);
    dv.setFloat64(H_MAX_KEYS, opts.maxKeys ?? 0, true);
    dv.setFloat64(H_MAX_BYTES, opts.maxBytes ?? 0, true);
    dv.setUint32(H_EVICT, opts.evict ?? EVICT_NONE, true);
    dv.setUint32(H_RECENCY_SLOTS, opts.recencySlots ?? 0, true);
    const ser = Buffer.from(opts.serializer, 'latin1');
    seg.u8[H_SER_LEN] = ser.length;
    seg.u8.set(ser, H_SER_NAME);
    c.newNonce(0);
    c.newFixedNonce();
    dv.setUint32(H_VERSION, FORMAT_VERSION, true);
    Atomics.store(c.i32, H_MAGIC >> 2, CONTROL_MAGIC);
    return c;
  }

  /**
   * Opens an existing control segment; null if missing. Validates magic, version and size; with a
   * guard, first checks the file itself (its owner: see trust.ts).
   */
  static open(segName: string, guard?: SegmentGuard): Control | null {
    const seg = Segment.tryOpen(segName, false, guard);
    if (!seg) return null;
    try {
      return Control.validate(seg);
    } catch (e) {
      seg.unmap();
      throw e;
    }
  }

  private static validate(seg: Segment): Control {
    if (seg.size < CONTROL_SIZE) {
      // a creator between shm_open and ftruncate shows size 0 (reported as EEMPTY by the addon); any
      // other size is a foreign segment
      throw new CorruptSegmentError(`${seg.name} is not an ultradict dict (size ${seg.size}, expected ${CONTROL_SIZE})`);
    }
    const c = new Control(seg);
    const magic = Atomics.load(c.i32, H_MAGIC >> 2);
    const state = Atomics.load(c.i32, I_STATE);
    // a creator still writing its header, or one that was declared dead before it finished
    if (magic === 0 && (state === STATE_INITIALIZING || state === STATE_ABANDONED)) return c;
    if (magic !== CONTROL_MAGIC) throw new CorruptSegmentError(`${seg.name} is not an ultradict dict (bad magic)`);
    c.checkHeader();
    return c;
  }

  /** Validates the header once the creator has finished writing it. */
  checkHeader(): void {
    const name = this.seg.name;
    if (Atomics.load(this.i32, H_MAGIC >> 2) !== CONTROL_MAGIC) throw new CorruptSegmentError(`${name} is not an ultradict dict (bad magic)`);
    const version = this.dv.getUint32(H_VERSION, true);
    if (version !== FORMAT_VERSION) {
      throw new CorruptSegmentError(`${name} has format version ${version}; this ultradict reads version ${FORMAT_VERSION}`);
    }
    const slots = this.recencySlots;
    const evict = this.evict;
    if (evict > EVICT_FIFO || (evict === EVICT_LRU) !== slots > 0 || slots > MAX_RECENCY_SLOTS || (slots & (slots - 1)) !== 0) {
      throw new CorruptSegmentError(`${name}: invalid eviction settings in the header`);
    }
    const size = CONTROL_SIZE + 4 * slots;
    if (this.dv.getUint32(H_SIZE, true) !== size || this.seg.size < size) throw new CorruptSegmentError(`${name}: control size mismatch`);
    const mk = this.maxKeys;
    const mb = this.maxBytes;
    if (!Number.isSafeInteger(mk) || mk < 0 || !Number.isSafeInteger(mb) || mb < 0 || (evict !== EVICT_NONE) !== mk + mb > 0) {
      throw new CorruptSegmentError(`${name}: invalid bounds in the header`);
    }
    const bs = this.bufferSize;
    const fd = this.fullDumpSize;
    if (!Number.isSafeInteger(bs) || bs < 64 || bs > MAX_SEGMENT || !Number.isSafeInteger(fd) || fd < 0 || fd > MAX_SEGMENT) {
      throw new CorruptSegmentError(`${name}: invalid sizes in the header`);
    }
    const ttl = this.ttl;
    if (!(ttl >= 0 && Number.isFinite(ttl))) throw new CorruptSegmentError(`${name}: invalid ttl in the header`);
    const serLen = this.seg.u8[H_SER_LEN]!;
    if (serLen === 0 || serLen > SER_NAME_MAX) throw new CorruptSegmentError(`${name}: invalid serializer name`);
  }

  get name(): string {
    return this.seg.name;
  }
  get state(): number {
    return Atomics.load(this.i32, I_STATE);
  }
  /**
   * The creator's last step: INITIALIZING -> READY. False if another process declared the creator dead
   * meanwhile (ABANDONED): the creation failed and the name may already belong to another incarnation.
   */
  setReady(): boolean {
    const ok = Atomics.compareExchange(this.i32, I_STATE, STATE_INITIALIZING, STATE_READY) === STATE_INITIALIZING;
    native.futexWake(this.seg.buffer, H_STATE, 0x7fffffff);
    return ok;
  }
  /**
   * Whether the creator of a control block still INITIALIZING is gone. Only a complete header names it
   * (its magic is written last: a pid whose thread id or start time is not written yet would look dead);
   * before that, the pid alone (written first) tells whether its process lives, and a header without even
   * a pid counts as gone once `noPidFor` ms have passed.
   */
  creatorGone(noPidFor: number): boolean {
    if (this.headerWritten) return !this.creatorAlive();
    const pid = this.creatorPid;
    if (pid === 0) return noPidFor > 1000;
    return !native.processAlive(pid);
  }

  /** Claims an abandoned (never finished) control segment; true for exactly one caller. */
  claimAbandoned(): boolean {
    return Atomics.compareExchange(this.i32, I_STATE, STATE_INITIALIZING, STATE_ABANDONED) === STATE_INITIALIZING;
  }
  /** A creator that failed marks its segment abandoned (waiting attachers then retry). */
  markAbandoned(): void {
    Atomics.store(this.i32, I_STATE, STATE_ABANDONED);
    native.futexWake(this.seg.buffer, H_STATE, 0x7fffffff);
  }
  waitState(timeoutMs: number): void {
    native.futexWait(this.seg.buffer, H_STATE, STATE_INITIALIZING, timeoutMs);
  }

  get idLo(): number {
    return this.dv.getUint32(H_ID_LO, true);
  }
  get idHi(): number {
    return this.dv.getUint32(H_ID_HI, true);
  }
  /** Hex tag of this incarnation, part of its data segment names. */
  get tag(): string {
    return this.idLo.toString(16).padStart(8, '0') + this.idHi.toString(16).padStart(8, '0');
  }
  get createdAt(): number {
    return this.dv.getFloat64(H_CREATED_AT, true);
  }
  get creatorPid(): number {
    return this.dv.getUint32(H_CREATOR_PID, true);
  }
  get creatorTid(): number {
    return this.dv.getUint32(H_CREATOR_TID, true);
  }
  get creatorStart(): number {
    return this.dv.getFloat64(H_CREATOR_START, true);
  }
  get creatorPidNamespace(): number {
    return this.dv.getFloat64(H_CREATOR_NS, true);
  }
  get bufferSize(): number {
    return this.dv.getFloat64(H_BUFFER_SIZE, true);
  }
  get fullDumpSize(): number {
    return this.dv.getFloat64(H_FULL_DUMP_SIZE, true);
  }
  get flags(): number {
    return this.dv.getUint32(H_FLAGS, true);
  }
  get mode(): number {
    return this.dv.getUint32(H_MODE, true);
  }
  /** The default time to live in ms of every write (0: none). */
  get ttl(): number {
    return this.dv.getFloat64(H_TTL, true);
  }
  /** The `maxKeys` bound (0: none). */
  get maxKeys(): number {
    return this.dv.getFloat64(H_MAX_KEYS, true);
  }
  /** The `maxBytes` bound (0: none). */
  get maxBytes(): number {
    return this.dv.getFloat64(H_MAX_BYTES, true);
  }
  /** The eviction policy: EVICT_NONE, EVICT_LRU or EVICT_FIFO. */
  get evict(): number {
    return this.dv.getUint32(H_EVICT, true);
  }
  get recencySlots(): number {
    return this.dv.getUint32(H_RECENCY_SLOTS, true);
  }
  /**
   * The recency table of an 'lru' dict: per slot, the change counter of the last read or write of the
   * keys hashed to it. Plain u32 loads and stores: a lost or stale update only makes the choice of a
   * victim a little less exact (see engine/bounds.ts).
   */
  recencyTable(): Uint32Array {
    return new Uint32Array(this.seg.buffer, RECENCY_OFFSET, this.recencySlots);
  }
  get serializerName(): string {
    const n = Math.min(this.seg.u8[H_SER_LEN]!, SER_NAME_MAX);
    return this.seg.buf.toString('latin1', H_SER_NAME, H_SER_NAME + n);
  }

  /** The published generation (slow path only: BigInt load). */
  gen(): number {
    return Number(Atomics.load(this.b64, I_GEN64));
  }
  /** The low 32 bits of the published generation (one plain atomic load, for the write path's check). */
  genLow(): number {
    return Atomics.load(this.i32, OFF_GEN >> 2);
  }
  publishGen(gen: number): void {
    Atomics.store(this.b64, I_GEN64, BigInt(gen));
  }
  /** Bumps the change counter; returns the new value. */
  bump(): number {
    return (Atomics.add(this.i32, I_COUNTER, 1) + 1) | 0;
  }

  get unlinked(): boolean {
    return Atomics.load(this.i32, OFF_UNLINKED >> 2) !== 0;
  }
  markUnlinked(): void {
    Atomics.store(this.i32, OFF_UNLINKED >> 2, 1);
  }
  get dumps(): number {
    return Atomics.load(this.i32, OFF_DUMPS >> 2) >>> 0;
  }
  get lastDumpBytes(): number {
    return loadF64(this.b64, OFF_LAST_DUMP_BYTES);
  }
  recordDump(bytes: number): void {
    storeF64(this.b64, OFF_LAST_DUMP_BYTES, bytes);
    Atomics.add(this.i32, OFF_DUMPS >> 2, 1);
  }
  /** Keys whose expiry a writer published (all processes). */
  get expired(): number {
    return loadF64(this.b64, OFF_EXPIRED);
  }
  get evicted(): number {
    return loadF64(this.b64, OFF_EVICTED);
  }
  /** Under the lock: n more evicted keys published. */
  recordEvicted(n: number): void {
    storeF64(this.b64, OFF_EVICTED, loadF64(this.b64, OFF_EVICTED) + n);
  }
  /** Under the lock: n more expired keys published. */
  recordExpired(n: number): void {
    storeF64(this.b64, OFF_EXPIRED, loadF64(this.b64, OFF_EXPIRED) + n);
  }
  get recoveries(): number {
    return Atomics.load(this.i32, OFF_RECOVERIES >> 2) >>> 0;
  }
  /** autoUnlink deferred to the last attached process. */
  get unlinkPending(): boolean {
    return Atomics.load(this.i32, OFF_UNLINK_PENDING >> 2) !== 0;
  }
  setUnlinkPending(): void {
    Atomics.store(this.i32, OFF_UNLINK_PENDING >> 2, 1);
  }

  /** Whether a live thread other than slot `except` is attached. */
  othersAttached(except: number): boolean {
    for (let i = 0; i < SLOT_COUNT; i++) {
      if (i === except || Atomics.load(this.i32, (this.slotBase(i) + S_PID) >> 2) === 0) continue;
      if (this.slotAlive(i)) return true;
    }
    return false;
  }

  recordRecovery(): void {
    Atomics.add(this.i32, OFF_RECOVERIES >> 2, 1);
  }
  get handoffs(): number {
    return Atomics.load(this.i32, OFF_HANDOFFS >> 2) >>> 0;
  }
  recordHandoff(): void {
    Atomics.add(this.i32, OFF_HANDOFFS >> 2, 1);
  }
  get lapsedHandoffs(): number {
    return Atomics.load(this.i32, OFF_HANDOFF_LAPSED >> 2) >>> 0;
  }
  recordLapsedHandoff(): void {
    Atomics.add(this.i32, OFF_HANDOFF_LAPSED >> 2, 1);
  }
  get handoffAt(): number {
    return loadF64(this.b64, OFF_HANDOFF_AT);
  }
  setHandoffAt(ms: number): void {
    storeF64(this.b64, OFF_HANDOFF_AT, ms);
  }
  get lastWake(): number {
    return loadF64(this.b64, OFF_LAST_WAKE);
  }
  setLastWake(ms: number): void {
    storeF64(this.b64, OFF_LAST_WAKE, ms);
  }
  get lockSince(): number {
    return loadF64(this.b64, OFF_LOCK_SINCE);
  }
  setLockSince(ms: number): void {
    storeF64(this.b64, OFF_LOCK_SINCE, ms);
  }

  // ---- loads in progress of fetch() ------------------------------------------------------------

  /** Load slot i (0 <= i < LOAD_SLOTS): read and written only under the dict's lock. */
  loadSlot(i: number): LoadSlot {
    const b = OFF_LOADS + i * LOAD_SIZE;
    const dv = this.dv;
    const len = Math.min(dv.getUint32(b + L_MSG_LEN, true), LOAD_MSG_MAX);
    return {
      state: dv.getInt32(b + L_STATE, true),
      owner: dv.getInt32(b + L_OWNER, true),
      seq: dv.getUint32(b + L_SEQ, true),
      hash1: dv.getUint32(b + L_HASH1, true),
      hash2: dv.getUint32(b + L_HASH2, true),
      at: dv.getFloat64(b + L_AT, true),
      waiters: dv.getInt32(b + L_WAITERS, true),
      message: len === 0 ? '' : Buffer.from(this.seg.u8.subarray(b + L_MSG, b + L_MSG + len)).toString('utf8'),
    };
  }
  setLoadSlot(i: number, l: LoadSlot): void {
    const b = OFF_LOADS + i * LOAD_SIZE;
    const dv = this.dv;
    const msg = Buffer.from(l.message, 'utf8').subarray(0, LOAD_MSG_MAX);
    this.seg.u8.set(msg, b + L_MSG);
    dv.setUint32(b + L_MSG_LEN, msg.length, true);
    dv.setInt32(b + L_OWNER, l.owner, true);
    dv.setUint32(b + L_SEQ, l.seq >>> 0, true);
    dv.setUint32(b + L_HASH1, l.hash1 >>> 0, true);
    dv.setUint32(b + L_HASH2, l.hash2 >>> 0, true);
    dv.setFloat64(b + L_AT, l.at, true);
    dv.setInt32(b + L_WAITERS, l.waiters, true);
    dv.setInt32(b + L_STATE, l.state, true);
  }

  // ---- attach slots -------------------------------------------------------------------------

  private slotBase(i: number): number {
    return SLOTS_OFFSET + i * SLOT_SIZE;
  }

  slot(i: number): SlotInfo {
    // the lock word names its owner's slot: a corrupt word must not become an out-of-bounds read
    if (!Number.isInteger(i) || i < 0 || i >= SLOT_COUNT) {
      throw new CorruptSegmentError(`${this.seg.name}: slot ${i} does not exist (corrupt lock word or slot index)`);
    }
    const b = this.slotBase(i);
    return {
      index: i,
      pid: Atomics.load(this.i32, (b + S_PID) >> 2),
      tid: this.dv.getInt32(b + S_TID, true),
      startTime: this.dv.getFloat64(b + S_START, true),
      pidNamespace: this.dv.getFloat64(b + S_NS, true),
    };
  }

  /**
   * Whether the thread in slot i is alive. Unknown (another pid namespace, /proc unreadable) counts as
   * alive: we never take over from a thread we cannot prove dead.
   */
  slotAlive(i: number): boolean {
    const s = this.slot(i);
    if (s.pid === 0) return false;
    if (s.pid < 0) return native.processAlive(-s.pid); // being claimed
    return threadAlive(s.pid, s.tid, s.startTime, s.pidNamespace);
  }

  /** Whether the thread that created this control block is alive (see threadAlive). */
  creatorAlive(): boolean {
    return threadAlive(this.creatorPid, this.creatorTid, this.creatorStart, this.creatorPidNamespace);
  }

  get slotCount(): number {
    return SLOT_COUNT;
  }
  /** Whether slot i is taken (or being taken). */
  slotClaimed(i: number): boolean {
    return Atomics.load(this.i32, (this.slotBase(i) + S_PID) >> 2) !== 0;
  }
  /** The claim epoch of slot i: changes with every claim, so a reused slot is told from its last holder. */
  slotEpoch(i: number): number {
    return Atomics.load(this.i32, (this.slotBase(i) + S_EPOCH) >> 2);
  }

  /**
   * Claims a free slot for the calling thread and bumps its claim epoch; reclaims dead ones if none is
   * free (onReap(slot) clears what referred to each). null if every slot is held by a live thread.
   */
  claimSlot(lockOwnerSlot: () => number, onReap: (slot: number) => void): { slot: number; epoch: number } | null {
    const me = self();
    for (let pass = 0; pass < 2; pass++) {
      for (let i = 0; i < SLOT_COUNT; i++) {
        const pidIdx = (this.slotBase(i) + S_PID) >> 2;
        if (Atomics.load(this.i32, pidIdx) !== 0) continue;
        if (Atomics.compareExchange(this.i32, pidIdx, 0, -me.pid) !== 0) continue;
        const b = this.slotBase(i);
        const epoch = (Atomics.add(this.i32, (b + S_EPOCH) >> 2, 1) + 1) & 0x3ffff;
        this.dv.setInt32(b + S_TID, me.tid, true);
        this.dv.setFloat64(b + S_START, me.startTime, true);
        this.dv.setFloat64(b + S_NS, me.pidNamespace, true);
        Atomics.store(this.i32, pidIdx, me.pid);
        return { slot: i, epoch };
      }
      this.reapSlots(lockOwnerSlot(), onReap);
    }
    return null;
  }

  /** Frees the slots of dead threads (never the one the lock word names: the lock recovers that). */
  reapSlots(skip: number, onReap?: (slot: number) => void): number {
    let n = 0;
    for (let i = 0; i < SLOT_COUNT; i++) {
      if (i === skip) continue;
      const pidIdx = (this.slotBase(i) + S_PID) >> 2;
      const pid = Atomics.load(this.i32, pidIdx);
      if (pid === 0 || this.slotAlive(i)) continue;
      if (Atomics.compareExchange(this.i32, pidIdx, pid, 0) === pid) {
        this.dropListening(i);
        onReap?.(i);
        n++;
      }
    }
    return n;
  }

  /**
   * Takes the change listeners of dead threads out of the total that writers check (their slots stay
   * until reaped): writers then stop waking listeners that are gone. Returns the listeners dropped.
   */
  dropDeadListeners(): number {
    let n = 0;
    for (let i = 0; i < SLOT_COUNT; i++) {
      const li = (this.slotBase(i) + S_LISTENING) >> 2;
      const epoch = this.slotEpoch(i);
      const c = Atomics.load(this.i32, li);
      if (c === 0 || this.slotAlive(i) || Atomics.compareExchange(this.i32, li, c, 0) !== c) continue;
      if (this.slotEpoch(i) !== epoch) {
        // reaped and claimed again meanwhile: the count may include its new thread's listeners
        Atomics.add(this.i32, li, c);
        continue;
      }
      Atomics.sub(this.i32, I_LISTENERS, c);
      n += c;
    }
    return n;
  }

  releaseSlot(i: number): void {
    const me = self();
    const pidIdx = (this.slotBase(i) + S_PID) >> 2;
    this.dropListening(i);
    Atomics.compareExchange(this.i32, pidIdx, me.pid, 0);
  }

  /** Frees a slot whose owner is known dead. */
  freeDeadSlot(i: number, pid: number): void {
    if (Atomics.compareExchange(this.i32, (this.slotBase(i) + S_PID) >> 2, pid, 0) === pid) this.dropListening(i);
  }

  /** Byte offsets of slot i's pid, tid, epoch and listener cells and of the listeners total (for the slot guard). */
  guardOffsets(i: number): [number, number, number, number, number] {
    const b = this.slotBase(i);
    return [b + S_PID, b + S_TID, b + S_EPOCH, b + S_LISTENING, OFF_LISTENERS];
  }

  /** Byte offsets of the listener counts a watcher of slot i must decrement if its thread dies. */
  listeningOffsets(i: number): [number, number] {
    return [this.slotBase(i) + S_LISTENING, OFF_LISTENERS];
  }

  /** Adds delta change listeners for slot i (and to the dict's total, which writers check). */
  addListening(i: number, delta: number): void {
    Atomics.add(this.i32, (this.slotBase(i) + S_LISTENING) >> 2, delta);
    Atomics.add(this.i32, I_LISTENERS, delta);
  }

  /** A freed slot takes its listeners out of the total. */
  private dropListening(i: number): void {
    const n = Atomics.exchange(this.i32, (this.slotBase(i) + S_LISTENING) >> 2, 0);
    if (n !== 0) Atomics.sub(this.i32, I_LISTENERS, n);
  }

  /** Number of change listeners in all processes (writers wake them only when non-zero). */
  get listeners(): number {
    return Atomics.load(this.i32, I_LISTENERS);
  }

  /** Live attached threads. */
  attached(): SlotInfo[] {
    const out: SlotInfo[] = [];
    for (let i = 0; i < SLOT_COUNT; i++) {
      if (Atomics.load(this.i32, (this.slotBase(i) + S_PID) >> 2) === 0) continue;
      if (this.slotAlive(i)) out.push(this.slot(i));
    }
    return out;
  }

  /** Number of occupied slots (without liveness checks). */
  occupiedSlots(): number {
    let n = 0;
    for (let i = 0; i < SLOT_COUNT; i++) if (Atomics.load(this.i32, (this.slotBase(i) + S_PID) >> 2) !== 0) n++;
    return n;
  }

  // ---- data segment names, owner checks and gc's removal (issue 11: findings 7-9) ---------------
  // Bytes 360-399 of the header; see docs/FORMAT.md.

  /** The owner and permission checks of this handle (null until the opener sets them: no checks). */
  private trust: Trust | null = null;

  /** Checks every data segment opened from now on with `trust` (the opener's, once the header is read). */
  checkWith(trust: Trust): void {
    this.trust = trust;
  }

  /**
   * The guard for opening a data segment of generation gen (-1: the fixed dump area, which lives as
   * long as the dict): checks its owner and permissions, and treats a segment that fails while gen is
   * no longer the published generation as missing (its name was unlinked and may have been reused).
   */
  guard(gen: number): SegmentGuard {
    return {
      check: (seg) => this.trust?.checkData(seg),
      gone: () => gen >= 0 && this.gen() !== gen,
    };
  }

  /** Hex of the random name part of generation gen's segments (ring of NONCE_RING, indexed by gen). */
  nonce(gen: number): string {
    return this.hex64(OFF_NONCES + (gen % NONCE_RING) * 8);
  }
  /** A writer draws the name part of generation gen before creating its segments (and publishing it). */
  newNonce(gen: number): void {
    this.random64(OFF_NONCES + (gen % NONCE_RING) * 8);
  }
  /** Random name part of the fixed dump area (drawn at creation). */
  get fixedNonce(): string {
    return this.hex64(OFF_FIXED_NONCE);
  }
  newFixedNonce(): void {
    this.random64(OFF_FIXED_NONCE);
  }
  private hex64(off: number): string {
    const lo = Atomics.load(this.i32, off >> 2) >>> 0;
    const hi = Atomics.load(this.i32, (off >> 2) + 1) >>> 0;
    return lo.toString(16).padStart(8, '0') + hi.toString(16).padStart(8, '0');
  }
  private random64(off: number): void {
    const r = randomBytes(8);
    Atomics.store(this.i32, off >> 2, r.readInt32LE(0));
    Atomics.store(this.i32, (off >> 2) + 1, r.readInt32LE(4));
  }

  /** Whether the creator finished writing the header (its magic is written last). */
  get headerWritten(): boolean {
    return Atomics.load(this.i32, H_MAGIC >> 2) === CONTROL_MAGIC;
  }

  /** The owner uid of the control segment's file: the dict's owner. */
  get ownerUid(): number {
    return this.seg.uid;
  }

  /**
   * gc(): moves READY to REMOVING (true for exactly one caller), records the remover's pid, then
   * re-checks the slots (Dekker with attachSettled: an attacher claims its slot, then reads the
   * state). If a live thread is attached by then, the state goes back to READY and false is returned.
   */
  beginRemoval(): boolean {
    if (Atomics.compareExchange(this.i32, I_STATE, STATE_READY, STATE_REMOVING) !== STATE_READY) return false;
    Atomics.store(this.i32, OFF_REMOVER >> 2, process.pid);
    if (this.attached().length === 0) return true;
    this.endRemoval();
    return false;
  }
  /** Back to READY (a remover that found a live attacher, or that died: see attachSettled). */
  endRemoval(): void {
    Atomics.store(this.i32, OFF_REMOVER >> 2, 0);
    if (Atomics.compareExchange(this.i32, I_STATE, STATE_REMOVING, STATE_READY) === STATE_REMOVING) {
      native.futexWake(this.seg.buffer, H_STATE, 0x7fffffff);
    }
  }
  /**
   * An attacher, after claiming its slot: whether the dict is still READY, so that no gc() can remove
   * it any more. False: gc() is removing it (or did), the caller releases its slot and starts again. A
   * REMOVING state whose remover died is reverted to READY here (the next try then attaches).
   */
  attachSettled(): boolean {
    const state = Atomics.load(this.i32, I_STATE);
    if (state === STATE_READY) return true;
    if (state === STATE_REMOVING) {
      const pid = Atomics.load(this.i32, OFF_REMOVER >> 2);
      if (pid > 0 && !native.processAlive(pid)) this.endRemoval();
    }
    return false;
  }
}

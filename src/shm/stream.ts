// The update stream of one generation (segment "/ud.<name>.<tag>.s<gen>"): frames appended under the lock,
// the end published with one atomic store, replayed by readers below that end. Never reset or rewritten.

import { align8, checksum, Decoder, FRAME_HEADER, type Encoder } from '../codec/wire.js';
import { CorruptSegmentError } from '../errors.js';
import { checkPrefix, writePrefix } from './header.js';
import { Segment, type SegmentGuard } from './segment.js';

export const STREAM_MAGIC = 0x54534455; // "UDST"
const VERSION = 1;
const H_CAPACITY = 24;
const H_END8 = 32; // i32: end of published data in 8-byte units
const H_DUMP_KIND = 36;
const H_DUMP_LEN = 40;
const H_STREAM_START = 48;
const H_DUMP_CHECKSUM = 56;
const H_RESERVED8 = 60; // u32: bytes of frame data whose pages are allocated, in 8-byte units (writers only)
/** Pages of a stream are allocated in steps of this many bytes as it fills. */
export const RESERVE_STEP = 1 << 20;
/** Frames start here. */
export const DATA = 64;
const I_END8 = H_END8 >> 2;
/** End offsets are stored in 8-byte units in an Int32: a stream holds at most 16 GiB. */
export const MAX_CAPACITY = 0x7fffffff * 8;

export const DUMP_NONE = 0;
export const DUMP_SEGMENT = 1;
export const DUMP_FIXED = 2;

/** Where the state a generation starts from is, and where in the stream replay starts after loading it. */
export interface DumpRef {
  kind: number;
  len: number;
  checksum: number;
  /** Byte offset (from DATA) of the first frame not contained in the dump. */
  streamStart: number;
}

/** Thrown inside Stream.open when a segment that fails validation belongs to a superseded generation. */
const GONE = Symbol('gone');

export class Stream {
  readonly capacity: number;
  readonly decoder: Decoder;

  private constructor(
    readonly seg: Segment,
    readonly gen: number,
  ) {
    this.capacity = seg.dv.getFloat64(H_CAPACITY, true);
    this.decoder = new Decoder(seg.u8, seg.dv, seg.buf, seg.name);
  }

  /**
   * Creates the stream of a generation. Only the first `reserve` bytes of its capacity get pages now;
   * writers reserve more, RESERVE_STEP at a time, as it fills (so a large capacity costs nothing).
   */
  static create(
    segName: string,
    mode: number,
    idLo: number,
    idHi: number,
    gen: number,
    capacity: number,
    dump: DumpRef,
    reserve: number,
  ): Stream {
    const reserved = Math.min(capacity, Math.ceil(Math.max(reserve, RESERVE_STEP) / 8) * 8);
    const seg = Segment.create(segName, DATA + capacity, mode, DATA + reserved);
    const dv = seg.dv;
    dv.setUint32(H_RESERVED8, reserved / 8, true);
    dv.setFloat64(H_CAPACITY, capacity, true);
    dv.setUint32(H_DUMP_KIND, dump.kind, true);
    dv.setFloat64(H_DUMP_LEN, dump.len, true);
    dv.setFloat64(H_STREAM_START, dump.streamStart, true);
    dv.setUint32(H_DUMP_CHECKSUM, dump.checksum, true);
    writePrefix(dv, 0, STREAM_MAGIC, VERSION, { idLo, idHi, gen });
    return new Stream(seg, gen);
  }

  /**
   * Opens and validates the stream of a generation; null if it no longer exists (or, with a guard, if
   * it fails its checks after its generation was superseded: the name may have been taken meanwhile).
   */
  static open(segName: string, idLo: number, idHi: number, gen: number, guard?: SegmentGuard): Stream | null {
    const seg = Segment.tryOpen(segName, true, guard);
    if (!seg) return null;
    const bad = (why: string): never => {
      seg.unmap();
      if (guard?.gone()) throw GONE;
      throw new CorruptSegmentError(`${segName} is not a valid ultradict stream: ${why}`);
    };
    try {
      return Stream.validate(seg, bad, gen, idLo, idHi);
    } catch (e) {
      if (e === GONE) return null;
      throw e;
    }
  }

  private static validate(seg: Segment, bad: (why: string) => never, gen: number, idLo: number, idHi: number): Stream {
    const dv = seg.dv;
    if (seg.size < DATA) bad('too small');
    checkPrefix(dv, 0, STREAM_MAGIC, VERSION, { idLo, idHi, gen }, bad);
    const cap = dv.getFloat64(H_CAPACITY, true);
    if (!Number.isSafeInteger(cap) || cap < 0 || cap % 8 !== 0 || DATA + cap > seg.size || cap > MAX_CAPACITY) bad('bad capacity');
    const s = new Stream(seg, gen);
    const d = s.dump;
    if (
      d.kind > DUMP_FIXED ||
      !Number.isSafeInteger(d.len) ||
      d.len < 0 ||
      !Number.isSafeInteger(d.streamStart) ||
      d.streamStart < 0 ||
      d.streamStart % 8 !== 0 ||
      d.streamStart > cap
    ) {
      bad('bad dump reference');
    }
    return s;
  }

  get dump(): DumpRef {
    const dv = this.seg.dv;
    return {
      kind: dv.getUint32(H_DUMP_KIND, true),
      len: dv.getFloat64(H_DUMP_LEN, true),
      checksum: dv.getUint32(H_DUMP_CHECKSUM, true),
      streamStart: dv.getFloat64(H_STREAM_START, true),
    };
  }

  /** Bytes of published frames (acquire load); validated against the capacity. */
  end(): number {
    const end = Atomics.load(this.seg.i32, I_END8) * 8;
    if (end < 0 || end > this.capacity) {
      throw new CorruptSegmentError(`${this.seg.name}: published end ${end} outside the stream (capacity ${this.capacity})`);
    }
    return end;
  }

  /**
   * Makes sure the pages up to `end` (bytes of frame data) are allocated, before a frame is written
   * there. Throws SharedMemoryError (ENOSPC) when /dev/shm is full; nothing is written then.
   */
  ensureReserved(end: number): void {
    const dv = this.seg.dv;
    const reserved = dv.getUint32(H_RESERVED8, true) * 8;
    if (end <= reserved) return;
    const want = Math.min(this.capacity, Math.ceil(Math.max(end, reserved + RESERVE_STEP) / 8) * 8);
    this.seg.reserve(DATA + reserved, want - reserved);
    dv.setUint32(H_RESERVED8, want / 8, true);
  }

  /** Bytes of frame data whose pages are allocated. */
  get reserved(): number {
    return this.seg.dv.getUint32(H_RESERVED8, true) * 8;
  }

  /** Copies a finished frame (enc.buf[0, len)) to `at` and publishes the new end. Caller holds the lock. */
  append(enc: Encoder, len: number, at: number): void {
    const dst = DATA + at;
    if (len <= 256) {
      const d = this.seg.i32;
      const s = enc.i32;
      const base = dst >> 2;
      for (let i = 0, n = len >> 2; i < n; i++) d[base + i] = s[i]!;
    } else {
      this.seg.u8.set(enc.buf.subarray(0, len), dst);
    }
    Atomics.store(this.seg.i32, I_END8, (at + len) / 8);
  }

  /**
   * Verifies the frame at `pos` (below `end`: length, checksum) and points this.decoder at its body.
   * Returns the position of the next frame. Throws CorruptSegmentError for anything malformed.
   */
  frameBody(pos: number, end: number): number {
    const seg = this.seg;
    const at = DATA + pos;
    if (pos + FRAME_HEADER > end) throw new CorruptSegmentError(`${seg.name}: truncated frame header at ${pos}`);
    const len = seg.dv.getUint32(at, true);
    if (len < 1 || len > end - pos - FRAME_HEADER) {
      throw new CorruptSegmentError(`${seg.name}: frame at ${pos} has impossible length ${len}`);
    }
    const sum = seg.dv.getUint32(at + 4, true);
    if (checksum(seg.i32, seg.u8, at + FRAME_HEADER, len) !== sum) {
      throw new CorruptSegmentError(`${seg.name}: checksum mismatch in frame at ${pos}`);
    }
    this.decoder.reset(at + FRAME_HEADER, at + FRAME_HEADER + len);
    return pos + align8(FRAME_HEADER + len);
  }

  unmap(): void {
    this.seg.unmap();
  }
}

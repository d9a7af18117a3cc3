// The segments of a dict's generations: writing generation 0 and each next one (a full dump and a fresh
// stream, sized so that dumps stay amortised), loading a generation from its dump, and removing what a
// dead writer left half-made. Core decides when; this module knows the segments.

import type { Key } from '../codec/ops.js';
import type { Serializer } from '../codec/serializer.js';
import { checksum, Encoder } from '../codec/wire.js';
import { FullDumpMemoryFullError, UltraDictError } from '../errors.js';
import type { Control } from '../shm/control.js';
import { encodeDump, fixedHalfSize, type DumpContents, loadDumpSegment, loadFixedDump, writeDumpSegment, writeFixedDump } from '../shm/dump.js';
import { dumpSegment, fixedDumpSegment, streamSegment } from '../shm/names.js';
import { Segment } from '../shm/segment.js';
import { DUMP_FIXED, DUMP_NONE, DUMP_SEGMENT, MAX_CAPACITY, Stream } from '../shm/stream.js';

/** createFirst(): the dict was declared abandoned while this creator initialised it (openEngine starts again). */
export class CreatorOvertakenError extends UltraDictError {}

/**
 * A new stream holds at least GROWTH times the dump just written: the dump work per streamed byte is at
 * most 1/GROWTH. Stream pages are allocated as the stream fills, so the size costs nothing up front.
 */
const GROWTH = 8;

/** Capacity of a new stream after a dump of dumpLen bytes whose first frame is frameLen bytes. */
export function capacityFor(bufferSize: number, dumpLen: number, frameLen: number): number {
  const want = Math.max(bufferSize, GROWTH * dumpLen, frameLen + bufferSize);
  if (!Number.isSafeInteger(want) || want > MAX_CAPACITY) {
    throw new UltraDictError(`the dict (or one write) is too large for a stream: ${want} bytes, limit ${MAX_CAPACITY}`);
  }
  return Math.ceil(want / 8) * 8;
}

/** The initial items, encoded as a dump body before anything exists in shared memory. */
export interface InitialDump {
  enc: Encoder;
  len: number;
  count: number;
}

export class Generations {
  readonly bufferSize: number;
  readonly fullDumpSize: number;
  private readonly mode: number;
  /** the fixed dump area (fullDumpSize > 0), mapped when first needed */
  #fixed: Segment | null = null;
  #dumpEnc: Encoder | null = null;

  constructor(
    private readonly name: string,
    private readonly ctrl: Control,
    private readonly ser: Serializer,
  ) {
    this.bufferSize = ctrl.bufferSize;
    this.fullDumpSize = ctrl.fullDumpSize;
    this.mode = ctrl.mode;
  }

  private fixedArea(): Segment {
    return (this.#fixed ??= Segment.open(fixedDumpSegment(this.name, this.ctrl), this.ctrl.guard(-1)));
  }

  /** Creator: writes generation 0 (the initial items as its dump) and marks the dict ready. */
  createFirst(initial: InitialDump | null): void {
    const ctrl = this.ctrl;
    let kind = DUMP_NONE;
    let len = 0;
    let sum = 0;
    let dumpSeg: Segment | null = null;
    if (this.fullDumpSize > 0) {
      this.#fixed = Segment.create(fixedDumpSegment(this.name, ctrl), 2 * fixedHalfSize(this.fullDumpSize), this.mode);
    }
    if (initial !== null && initial.count > 0) {
      len = initial.len;
      sum = checksum(initial.enc.i32, initial.enc.buf, 0, len);
      if (this.#fixed !== null) {
        if (len > this.fullDumpSize) {
          throw new FullDumpMemoryFullError(`the initial items need ${len} bytes; fullDumpSize is ${this.fullDumpSize}`);
        }
        writeFixedDump(this.#fixed, this.fullDumpSize, ctrl.idLo, ctrl.idHi, 0, initial.enc, len, sum);
        kind = DUMP_FIXED;
      } else {
        dumpSeg = writeDumpSegment(dumpSegment(this.name, ctrl, 0), this.mode, ctrl.idLo, ctrl.idHi, 0, initial.enc, len, sum);
        kind = DUMP_SEGMENT;
      }
    }
    const s = Stream.create(
      streamSegment(this.name, ctrl, 0),
      this.mode,
      ctrl.idLo,
      ctrl.idHi,
      0,
      capacityFor(this.bufferSize, len, 0),
      { kind, len, checksum: sum, streamStart: 0 },
      0,
    );
    s.unmap(); // the creator opens it like any attacher
    dumpSeg?.unmap();
    if (kind !== DUMP_NONE) ctrl.recordDump(len);
    ctrl.publishGen(0);
    ctrl.bump();
    if (!ctrl.setReady()) {
      throw new CreatorOvertakenError(`${ctrl.name}: another process took this creator for dead before it finished; nothing was created`);
    }
  }

  /** The stream of generation g, or null if its segment is gone (a newer generation exists). */
  openStream(g: number): Stream | null {
    const ctrl = this.ctrl;
    return Stream.open(streamSegment(this.name, ctrl, g), ctrl.idLo, ctrl.idHi, g, ctrl.guard(g));
  }

  /**
   * Generation g loaded from its dump: its contents and its stream (replay continues at the stream's
   * dump.streamStart); with `sizes`, each entry's size is recorded there. Null if its segments are gone
   * (a newer generation exists).
   */
  load(g: number, sizes?: Map<Key, number>): (DumpContents & { stream: Stream }) | null {
    const ctrl = this.ctrl;
    const s = this.openStream(g);
    if (s === null) return null;
    try {
      const d = s.dump;
      const expect = { idLo: ctrl.idLo, idHi: ctrl.idHi, gen: g, len: d.len, checksum: d.checksum };
      let map: DumpContents | null;
      if (d.kind === DUMP_NONE) {
        map = { map: new Map(), deadlines: new Map() };
      } else if (d.kind === DUMP_SEGMENT) {
        const seg = Segment.tryOpen(dumpSegment(this.name, ctrl, g), true, ctrl.guard(g));
        if (seg === null) {
          map = null;
        } else {
          try {
            map = loadDumpSegment(seg, expect, this.ser, sizes);
          } finally {
            seg.unmap();
          }
        }
      } else {
        map = loadFixedDump(this.fixedArea(), this.fullDumpSize, expect, this.ser, undefined, sizes);
      }
      if (map === null) {
        s.unmap();
        return null;
      }
      return { ...map, stream: s };
    } catch (e) {
      s.unmap();
      throw e;
    }
  }

  /**
   * Writes generation g+1: a dump of `map` (the pending write already applied to it) and a new stream
   * whose first frame (if len > 0) is that write. Nothing is visible to others until the caller
   * publishes g+1; a failure removes what was made and leaves the dict as it was. Returns the new
   * stream and the dump's size (0: none).
   */
  write(
    g: number,
    map: ReadonlyMap<Key, unknown>,
    deadlines: ReadonlyMap<Key, number> | undefined,
    frame: Encoder | null,
    len: number,
  ): { stream: Stream; dumpLen: number } {
    const ctrl = this.ctrl;
    const g1 = g + 1;
    const enc = (this.#dumpEnc ??= new Encoder(64 * 1024));
    const [dumpLen, count] = encodeDump(enc, map, this.ser, deadlines);
    const fixed = this.fullDumpSize > 0;
    if (fixed && count > 0 && dumpLen > this.fullDumpSize) {
      throw new FullDumpMemoryFullError(
        `a full dump of ${JSON.stringify(this.name)} needs ${dumpLen} bytes but fullDumpSize is ${this.fullDumpSize}; the write was not applied`,
      );
    }
    const capacity = capacityFor(this.bufferSize, dumpLen, len);
    ctrl.newNonce(g1); // fresh random names: nothing can be in the way (a dead writer's leftovers: removeLeftovers())
    const sName = streamSegment(this.name, ctrl, g1);
    const dName = dumpSegment(this.name, ctrl, g1);
    const sum = count > 0 ? checksum(enc.i32, enc.buf, 0, dumpLen) : 0;
    let kind = DUMP_NONE;
    let stream: Stream | null = null;
    try {
      if (count > 0) {
        if (fixed) {
          writeFixedDump(this.fixedArea(), this.fullDumpSize, ctrl.idLo, ctrl.idHi, g1, enc, dumpLen, sum);
          kind = DUMP_FIXED;
        } else {
          writeDumpSegment(dName, this.mode, ctrl.idLo, ctrl.idHi, g1, enc, dumpLen, sum).unmap();
          kind = DUMP_SEGMENT;
        }
      }
      stream = Stream.create(sName, this.mode, ctrl.idLo, ctrl.idHi, g1, capacity, { kind, len: count > 0 ? dumpLen : 0, checksum: sum, streamStart: len }, len);
      if (frame !== null && len > 0) stream.append(frame, len, 0);
    } catch (e) {
      stream?.unmap();
      Segment.unlinkIfAllowed(sName);
      if (!fixed) Segment.unlinkIfAllowed(dName);
      throw e;
    }
    if (enc.buf.length > 1 << 24) this.#dumpEnc = null; // do not keep a huge scratch buffer
    return { stream, dumpLen: count > 0 ? dumpLen : 0 };
  }

  /** After g+1 is published: unlinks the names of g and g-1 (readers that mapped them keep their mappings). */
  retire(g: number): void {
    this.unlink(g);
    if (g > 0) this.unlink(g - 1);
  }

  /** Under the lock taken over from a dead owner: its unpublished next generation, and the old ones it may not have unlinked. */
  removeLeftovers(): void {
    const g = this.ctrl.gen();
    this.unlink(g + 1);
    if (g > 0) this.unlink(g - 1);
  }

  private unlink(g: number): void {
    Segment.unlinkIfAllowed(streamSegment(this.name, this.ctrl, g));
    if (this.fullDumpSize === 0) Segment.unlinkIfAllowed(dumpSegment(this.name, this.ctrl, g));
  }

  /** Bytes of shared memory the dict holds with `stream` current (allocated pages: the stream's reserved part). */
  sharedMemoryBytes(stream: Stream): number {
    const d = stream.dump;
    return (
      this.ctrl.seg.size + // the control block (with the recency table of an 'lru' dict)
      64 +
      stream.reserved +
      (this.fullDumpSize > 0 ? 2 * fixedHalfSize(this.fullDumpSize) : d.kind === DUMP_SEGMENT ? d.len + 64 : 0)
    );
  }

  /** Unmaps the fixed dump area (the engine is closing). */
  unmap(): void {
    this.#fixed?.unmap();
    this.#fixed = null;
  }
}

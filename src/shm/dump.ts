// Full dumps: the whole dict encoded as one batch body, written to a fresh segment per generation
// ("/ud.<name>.<tag>.d<gen>") or to one half of the fixed dump area ("/ud.<name>.<tag>.dump"), and loaded back.

import { checksum, Decoder, Encoder } from '../codec/wire.js';
import { OP_BATCH, OP_EXPIRE, OP_SET, type Key } from '../codec/ops.js';
import { CorruptSegmentError } from '../errors.js';
import { checkPrefix, H_GEN, writePrefix, type SegmentOwner } from './header.js';
import { Segment } from './segment.js';
import type { Serializer } from '../codec/serializer.js';

export const DUMP_MAGIC = 0x50444455; // "UDDP"
const VERSION = 1;
const H_LEN = 24;
const H_CHECKSUM = 32;
const H_SEQ = 36; // i32: 1 = complete, 0 = being written (fixed area)
export const DUMP_HEADER = 64;

/** A loaded dump: the entries and the deadlines of those that expire. */
export interface DumpContents {
  map: Map<Key, unknown>;
  deadlines: Map<Key, number>;
}

/**
 * Encodes the whole dict (nested dicts included) as one batch body into enc: a SET per entry, then an
 * EXPIRE per entry with a deadline. Entries whose deadline is at or before `now` are left out. Returns
 * [length, entries].
 */
export function encodeDump(
  enc: Encoder,
  map: ReadonlyMap<Key, unknown>,
  serializer: Serializer,
  deadlines?: ReadonlyMap<Key, number>,
  now = Date.now(),
): [number, number] {
  enc.beginBody();
  enc.u8(OP_BATCH);
  const countAt = enc.pos;
  enc.u32(0);
  let n = 0;
  const timed = deadlines !== undefined && deadlines.size > 0;
  for (const [k, v] of map) {
    if (timed && deadlines.get(k)! <= now) continue; // expired: not carried into the next generation
    enc.u8(OP_SET);
    enc.key(k);
    enc.value(v, serializer, false);
    n++;
  }
  const entries = n;
  if (timed) {
    for (const [k, d] of deadlines) {
      if (d <= now || !map.has(k)) continue;
      enc.u8(OP_EXPIRE);
      enc.key(k);
      enc.f64(d);
      n++;
    }
  }
  enc.patchU32(countAt, n);
  return [enc.pos, entries];
}

function writeHeader(seg: Segment, at: number, idLo: number, idHi: number, gen: number, len: number, sum: number): void {
  const dv = seg.dv;
  dv.setFloat64(at + H_LEN, len, true);
  dv.setUint32(at + H_CHECKSUM, sum, true);
  writePrefix(dv, at, DUMP_MAGIC, VERSION, { idLo, idHi, gen });
}

/** Writes a dump body (enc.buf[0, len)) to a new segment. The caller unmaps it. */
export function writeDumpSegment(
  segName: string,
  mode: number,
  idLo: number,
  idHi: number,
  gen: number,
  enc: Encoder,
  len: number,
  sum: number,
): Segment {
  const seg = Segment.create(segName, DUMP_HEADER + len, mode);
  seg.u8.set(enc.buf.subarray(0, len), DUMP_HEADER);
  writeHeader(seg, 0, idLo, idHi, gen, len, sum);
  Atomics.store(seg.i32, H_SEQ >> 2, 1);
  return seg;
}

/** Size of one half of the fixed dump area. */
export function fixedHalfSize(fullDumpSize: number): number {
  return DUMP_HEADER + Math.ceil(fullDumpSize / 8) * 8;
}

/** Writes a dump body into half (gen % 2) of the fixed area: invalidate, write, validate. */
export function writeFixedDump(seg: Segment, fullDumpSize: number, idLo: number, idHi: number, gen: number, enc: Encoder, len: number, sum: number): void {
  const at = (gen % 2) * fixedHalfSize(fullDumpSize);
  Atomics.store(seg.i32, (at + H_SEQ) >> 2, 0);
  seg.u8.set(enc.buf.subarray(0, len), at + DUMP_HEADER);
  writeHeader(seg, at, idLo, idHi, gen, len, sum);
  Atomics.store(seg.i32, (at + H_SEQ) >> 2, 1);
}

/** What a dump must be: whose and which generation's (SegmentOwner), and its length and checksum from its stream. */
export interface DumpExpectation extends SegmentOwner {
  len: number;
  checksum: number;
}

function checkHeader(seg: Segment, at: number, x: DumpExpectation): void {
  const dv = seg.dv;
  const bad = (why: string): never => {
    throw new CorruptSegmentError(`${seg.name} is not a valid ultradict dump: ${why}`);
  };
  if (at + DUMP_HEADER > seg.size) bad('too small');
  checkPrefix(dv, at, DUMP_MAGIC, VERSION, x, bad);
  if (dv.getFloat64(at + H_LEN, true) !== x.len || at + DUMP_HEADER + x.len > seg.size) bad('length mismatch');
  if (dv.getUint32(at + H_CHECKSUM, true) !== x.checksum) bad('checksum mismatch with its stream');
}

/** Decodes a dump body (a batch of SETs, then EXPIREs) at [from, from+len) of the decoder's memory; with `sizes`, records each entry's size there. */
export function decodeDump(d: Decoder, from: number, len: number, serializer: Serializer, sizes?: Map<Key, number>): DumpContents {
  d.reset(from, from + len);
  if (d.u8v() !== OP_BATCH) d.fail('a dump must be a batch');
  const count = d.u32();
  if (count > len) d.fail(`dump count ${count} larger than its bytes`);
  const map = new Map<Key, unknown>();
  const deadlines = new Map<Key, number>();
  for (let i = 0; i < count; i++) {
    const op = d.u8v();
    if (op === OP_SET && deadlines.size === 0) {
      const at = d.pos;
      const k = d.key();
      map.set(k, d.value(serializer));
      sizes?.set(k, d.pos - at);
    } else if (op === OP_EXPIRE) {
      const k = d.key();
      d.need(8);
      const deadline = d.dv.getFloat64(d.pos, true);
      d.pos += 8;
      if (!(deadline > 0) || !map.has(k)) d.fail('a dump EXPIRE must give a deadline to an entry of the dump');
      deadlines.set(k, deadline);
    } else {
      d.fail('a dump holds SET operations, then EXPIRE operations');
    }
  }
  if (d.pos !== d.limit) d.fail('trailing bytes after the dump');
  return { map, deadlines };
}

/** Loads a dump segment of one generation (immutable once published). */
export function loadDumpSegment(seg: Segment, x: DumpExpectation, serializer: Serializer, sizes?: Map<Key, number>): DumpContents {
  checkHeader(seg, 0, x);
  if (Atomics.load(seg.i32, H_SEQ >> 2) !== 1) throw new CorruptSegmentError(`${seg.name}: dump incomplete`);
  if (checksum(seg.i32, seg.u8, DUMP_HEADER, x.len) !== x.checksum) throw new CorruptSegmentError(`${seg.name}: dump checksum mismatch`);
  return decodeDump(new Decoder(seg.u8, seg.dv, seg.buf, seg.name), DUMP_HEADER, x.len, serializer, sizes);
}

/**
 * How long a fixed half whose copy fails its checksum while its sequence word still says valid is given to
 * show the rewrite in progress (see loadFixedDump) before it counts as corrupt.
 */
export const TORN_COPY_GRACE_MS = 50;

/**
 * Loads the half of the fixed area of generation x.gen. The half may be rewritten concurrently (by the
 * writer of gen + 2): copy it, then check it was valid before and after the copy. Returns null when it
 * changed under us (the caller re-reads the published generation).
 *
 * The checks are a seqlock, and on a weakly ordered CPU (arm64) a seqlock in JS cannot order the plain
 * copy against its sequence word: JS has no fences, Atomics.store(seq, 0) is a release store (the
 * writer's new bytes may become visible before it) and Atomics.load(seq) an acquire load (the copy may be
 * read after it). A torn copy can then pass both checks. The checksum catches it, and a mismatch is only
 * corruption if the half still says valid for x.gen once the writer's invalidation has had time to
 * become visible: until then it is retried, and it turns into null as soon as seq or gen moves.
 */
export function loadFixedDump(
  seg: Segment,
  fullDumpSize: number,
  x: DumpExpectation,
  serializer: Serializer,
  graceMs = TORN_COPY_GRACE_MS,
  sizes?: Map<Key, number>,
): DumpContents | null {
  const at = (x.gen % 2) * fixedHalfSize(fullDumpSize);
  if (at + DUMP_HEADER > seg.size) throw new CorruptSegmentError(`${seg.name}: fixed dump area too small`);
  const seqIdx = (at + H_SEQ) >> 2;
  const valid = (): boolean => Atomics.load(seg.i32, seqIdx) === 1 && seg.dv.getFloat64(at + H_GEN, true) === x.gen;
  if (!valid()) return null;
  checkHeader(seg, at, x);
  const copy = Buffer.allocUnsafeSlow(Math.max(8, Math.ceil(x.len / 8) * 8));
  const i32 = new Int32Array(copy.buffer, copy.byteOffset, copy.length >> 2);
  let deadline = 0;
  for (;;) {
    copy.set(seg.u8.subarray(at + DUMP_HEADER, at + DUMP_HEADER + x.len), 0);
    if (!valid()) return null;
    if (checksum(i32, copy, 0, x.len) === x.checksum) break;
    const now = performance.now();
    if (deadline === 0) deadline = now + graceMs;
    else if (now > deadline) throw new CorruptSegmentError(`${seg.name}: dump checksum mismatch`);
  }
  const dv = new DataView(copy.buffer, copy.byteOffset, copy.length);
  return decodeDump(new Decoder(copy, dv, copy, seg.name), 0, x.len, serializer, sizes);
}

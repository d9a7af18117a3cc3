// The frames of a dict's stream as the Redis bridge consumes them: the FrameSource interface (the
// bridge's one door into an engine), decoding the frames between two positions, and telling a frame hook
// about a frame the engine published itself.

import { OP_NOTE, type Key, type Op } from '../codec/ops.js';
import type { Serializer } from '../codec/serializer.js';
import { FRAME_HEADER, type Encoder } from '../codec/wire.js';
import { CorruptSegmentError } from '../errors.js';
import type { Stream } from '../shm/stream.js';

/** Called for every frame of the stream with a private copy of its body and its ops (null: frames were skipped). */
export type FrameHook = (body: Buffer | null, ops: Op[], note: string | null) => void;

/**
 * The engine as the Redis bridge sees it: its one door into a local dict (docs/ARCHITECTURE.md, "The
 * bridge"). The local copy to compare and seed from, the stream position to forward from, writes in the
 * engine's transaction, the frames between two positions, and a tap on every frame published.
 */
export interface FrameSource {
  readonly name: string;
  /** the incarnation (hex of the dict's random id) */
  readonly tag: string;
  readonly ser: Serializer;
  /** the local copy as of the last read() */
  readonly map: ReadonlyMap<Key, unknown>;
  readonly gen: number;
  readonly pos: number;
  read(): void;
  write(ops: readonly Op[], timeout?: number): void;
  transaction<R>(fn: () => R, timeout?: number): R;
  framesBetween(from: number, to: number, cb: FrameCallback): void;
  /**
   * Calls hook for every frame of the stream from now on: replayed from other processes and published by
   * this thread (whose other handles share the engine); with null when a whole generation was missed and
   * loaded from its dump. null removes it.
   */
  tapFrames(hook: FrameHook | null): void;
}

/** Gets each frame's body (a private copy), its ops, the position after it and its NOTE (null: none). */
export type FrameCallback = (body: Buffer, ops: Op[], end: number, note: string | null) => void;

/** Decodes (without applying) the frames of `stream` in [from, to). */
export function decodeFrames(stream: Stream, ser: Serializer, from: number, to: number, cb: FrameCallback): void {
  const d = stream.decoder;
  if (from < 0 || from > to || to > stream.end()) throw new CorruptSegmentError(`${stream.seg.name}: no frames at [${from}, ${to})`);
  for (let pos = from; pos < to; ) {
    const next = stream.frameBody(pos, to);
    const bodyAt = d.pos;
    const ops: Op[] = [];
    d.body(ser, ops);
    cb(Buffer.from(d.u8.subarray(bodyAt, d.limit)), ops, next, d.note);
    pos = next;
  }
}

/**
 * Tells a frame hook about a frame the engine published itself from `enc` (other handles of the thread
 * share the engine, so their writes are never replayed there): the hook sees it like a replayed frame.
 */
export function tellOwnFrame(hook: FrameHook, enc: Encoder, ops: readonly Op[]): void {
  const bodyLen = enc.dv.getUint32(0, true);
  let note: string | null = null;
  const plainOps: Op[] = [];
  for (const o of ops) {
    if (o.op === OP_NOTE) note = String(o.key);
    else plainOps.push({ op: o.op, key: o.key, value: o.value, path: o.path });
  }
  hook(Buffer.from(enc.buf.subarray(FRAME_HEADER, FRAME_HEADER + bodyLen)), plainOps, note);
}

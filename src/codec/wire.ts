// Byte encoding of keys, values and operations (the bodies of stream frames and of dumps), and their checksum.
//
// A body is one operation: SET key value | DELETE key | CLEAR | IN path op | BATCH count op*. Keys are
// strings (UTF-8) or numbers (float64). Primitive values and nested dicts are encoded natively; other
// objects go through the dict's serializer. Every read is bounds-checked against the body's end: bytes
// from shared memory are never trusted.

import { isPlainObject } from '../args.js';
import { CorruptSegmentError, SerializationError } from '../errors.js';
import { MAX_DEPTH, OP_BATCH, OP_CLEAR, OP_DELETE, OP_EVICTED, OP_EXPIRE, OP_EXPIRED, OP_IN, OP_NOTE, OP_SET, type Key, type Op, type Path } from './ops.js';
import { freezeValue, Node, nSet } from './tree.js';
import type { Serializer } from './serializer.js';

const KEY_STRING = 1;
const KEY_NUMBER = 2;

const V_UNDEFINED = 0;
const V_NULL = 1;
const V_TRUE = 2;
const V_FALSE = 3;
const V_NUMBER = 4;
const V_STRING = 5;
const V_SERIALIZED = 6;
const V_DICT = 7;

/** Size of a frame header: u32 body length, u32 checksum. */
export const FRAME_HEADER = 8;

export function align8(n: number): number {
  return n < 0x7ffffff0 ? (n + 7) & ~7 : Math.ceil(n / 8) * 8;
}

/** murmur3-style 32-bit hash over `len` bytes at `off` (off must be 4-aligned; i32 views the same buffer from 0). */
export function checksum(i32: Int32Array, u8: Uint8Array, off: number, len: number): number {
  let h = (len ^ 0x9747b28c) | 0;
  const words = len >>> 2;
  let i = off >>> 2;
  const e = i + words;
  for (; i < e; i++) {
    let k = Math.imul(i32[i]!, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    h ^= Math.imul(k, 0x1b873593);
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  const tail = off + words * 4;
  const rem = len & 3;
  if (rem > 0) {
    let k = 0;
    for (let j = rem - 1; j >= 0; j--) k = (k << 8) | u8[tail + j]!;
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    h ^= Math.imul(k, 0x1b873593);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** A growable private buffer in which frames and dump bodies are built before being copied to shared memory. */
export class Encoder {
  buf: Buffer;
  dv: DataView;
  i32: Int32Array;
  pos = 0;

  constructor(size = 4096) {
    this.buf = Buffer.allocUnsafeSlow(size);
    this.dv = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength);
    this.i32 = new Int32Array(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength >>> 2);
  }

  ensure(n: number): void {
    const need = this.pos + n + 8;
    if (need <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < need) size *= 2;
    const next = Buffer.allocUnsafeSlow(size);
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
    this.dv = new DataView(next.buffer, next.byteOffset, next.byteLength);
    this.i32 = new Int32Array(next.buffer, next.byteOffset, next.byteLength >>> 2);
  }

  /** Starts a frame: leaves room for its header. */
  beginFrame(): void {
    this.pos = FRAME_HEADER;
  }

  /** Starts a bare body (a dump payload). */
  beginBody(): void {
    this.pos = 0;
  }

  /** Drops what was written after `mark` (a write that failed half-way out of a batch). */
  rewind(mark: number): void {
    this.pos = mark;
  }

  u8(v: number): void {
    this.ensure(1);
    this.buf[this.pos++] = v;
  }

  u32(v: number): void {
    this.ensure(4);
    this.dv.setUint32(this.pos, v, true);
    this.pos += 4;
  }

  /** Overwrites a u32 written earlier (batch counts). */
  patchU32(at: number, v: number): void {
    this.dv.setUint32(at, v, true);
  }

  private string(s: string): void {
    const len = s.length;
    const max = len * 3;
    this.ensure(4 + max);
    const buf = this.buf;
    const at = this.pos + 4;
    let n = -1;
    if (len < 64) {
      // short strings: copy ASCII by hand (cheaper than a call into the UTF-8 encoder)
      let i = 0;
      for (; i < len; i++) {
        const c = s.charCodeAt(i);
        if (c > 0x7f) break;
        buf[at + i] = c;
      }
      if (i === len) n = len;
    }
    if (n < 0) n = buf.write(s, at, max, 'utf8');
    this.dv.setUint32(this.pos, n, true);
    this.pos = at + n;
  }

  key(k: Key): void {
    if (typeof k === 'string') {
      this.u8(KEY_STRING);
      this.string(k);
    } else {
      this.ensure(9);
      this.buf[this.pos] = KEY_NUMBER;
      this.dv.setFloat64(this.pos + 1, k, true);
      this.pos += 9;
    }
  }

  f64(v: number): void {
    this.ensure(8);
    this.dv.setFloat64(this.pos, v, true);
    this.pos += 8;
  }

  /** Writes an IN prefix for a nested path (nothing for the root). */
  path(path: Path | null): void {
    if (path === null || path.length === 0) return;
    if (path.length > MAX_DEPTH) throw new SerializationError(`nested deeper than ${MAX_DEPTH} levels`);
    this.u8(OP_IN);
    this.u8(path.length);
    for (const k of path) this.key(k);
  }

  /**
   * Encodes a value; returns the copy this process should keep locally (same as what others decode).
   * With recurse, plain objects become nested dicts (Nodes); Nodes are always encoded as nested dicts.
   */
  value(v: unknown, serializer: Serializer, wantLocal = true, recurse = false, depth = 0): unknown {
    if (typeof v === 'object' && v !== null && (v instanceof Node || (recurse && isPlainObject(v)))) {
      if (depth >= MAX_DEPTH) throw new SerializationError(`nested deeper than ${MAX_DEPTH} levels`);
      const entries: Iterable<[Key, unknown]> = v instanceof Node ? v : (Object.entries(v) as [Key, unknown][]);
      this.u8(V_DICT);
      const countAt = this.pos;
      this.u32(0);
      const local = wantLocal ? new Node() : null;
      let n = 0;
      for (const [k, x] of entries) {
        this.key(k);
        const lx = this.value(x, serializer, wantLocal, recurse, depth + 1);
        if (local !== null) nSet(local, k, lx);
        n++;
      }
      this.patchU32(countAt, n);
      return local;
    }
    switch (typeof v) {
      case 'number':
        this.ensure(9);
        this.buf[this.pos] = V_NUMBER;
        this.dv.setFloat64(this.pos + 1, v, true);
        this.pos += 9;
        return v;
      case 'string':
        if (!v.isWellFormed()) throw new SerializationError('string values must be well-formed UTF-16 (no lone surrogates)');
        this.u8(V_STRING);
        this.string(v);
        return v;
      case 'boolean':
        this.u8(v ? V_TRUE : V_FALSE);
        return v;
      case 'undefined':
        this.u8(V_UNDEFINED);
        return v;
      case 'function':
      case 'symbol':
        throw new SerializationError(`cannot store a ${typeof v}: values must be data, not code`);
      default: {
        if (v === null) {
          this.u8(V_NULL);
          return v;
        }
        let bytes: Uint8Array;
        try {
          bytes = serializer.serialize(v);
        } catch (e) {
          if (e instanceof SerializationError) throw e;
          throw new SerializationError(`serializer '${serializer.name}' failed: ${(e as Error)?.message ?? e}`, { cause: e });
        }
        if (!(bytes instanceof Uint8Array)) {
          throw new SerializationError(`serializer '${serializer.name}' must return a Uint8Array`);
        }
        this.ensure(5 + bytes.length);
        this.buf[this.pos] = V_SERIALIZED;
        this.dv.setUint32(this.pos + 1, bytes.length, true);
        this.buf.set(bytes, this.pos + 5);
        this.pos += 5 + bytes.length;
        if (!wantLocal) return v;
        let local: unknown;
        try {
          local = serializer.deserialize(bytes);
        } catch (e) {
          throw new SerializationError(`serializer '${serializer.name}' cannot read back what it wrote: ${(e as Error)?.message ?? e}`, {
            cause: e,
          });
        }
        return freezeValue(local);
      }
    }
  }

  /** Finishes a frame begun with beginFrame(): pads to 8 bytes, writes length and checksum; returns its size. */
  finishFrame(): number {
    const bodyLen = this.pos - FRAME_HEADER;
    const total = align8(this.pos);
    this.ensure(total - this.pos);
    for (let i = this.pos; i < total; i++) this.buf[i] = 0;
    this.dv.setUint32(0, bodyLen, true);
    this.dv.setUint32(4, checksum(this.i32, this.buf, FRAME_HEADER, bodyLen), true);
    this.pos = total;
    return total;
  }
}

/** Encodes one write (a single op, or a batch of several) into enc; returns the local copies (`sizes`: see encodeOps). */
export function encodeWrite(enc: Encoder, raw: readonly Op[], ser: Serializer, recurse: boolean, sizes?: number[]): Op[] {
  if (raw.length === 1) return encodeOps(enc, raw, ser, recurse, sizes);
  enc.u8(OP_BATCH);
  const countAt = enc.pos;
  enc.u32(0);
  const ops = encodeOps(enc, raw, ser, recurse, sizes);
  enc.patchU32(countAt, ops.length);
  return ops;
}

/**
 * Encodes ops (values through the serializer) into enc; returns the local copies as Ops. With `sizes`,
 * pushes each op's entry size there: the bytes of its encoded key and value for a SET, else 0 (what
 * `maxBytes` counts).
 */
export function encodeOps(enc: Encoder, raw: readonly Op[], ser: Serializer, recurse: boolean, sizes?: number[]): Op[] {
  const out: Op[] = [];
  for (const r of raw) {
    enc.path(r.path); // throws for paths deeper than MAX_DEPTH
    enc.u8(r.op);
    const at = enc.pos;
    let value: unknown;
    if (r.op !== OP_CLEAR) enc.key(r.key!); // NOTE: its text is encoded as a key
    if (r.op === OP_SET) value = enc.value(r.value, ser, true, recurse);
    else if (r.op === OP_EXPIRE) enc.f64((value = r.value as number));
    sizes?.push(r.op === OP_SET ? enc.pos - at : 0);
    out.push({ op: r.op, key: r.key, value, path: r.path });
  }
  return out;
}

/**
 * Adds ops without values (EVICTED, DELETE of root keys) to the body of a frame encoded in enc (begun
 * with beginFrame, not finished): a single op becomes a batch. The caller finishes the frame again.
 */
export function appendKeyOps(enc: Encoder, op: number, keys: readonly Key[]): void {
  const start = FRAME_HEADER;
  if (enc.buf[start] === OP_BATCH) {
    enc.patchU32(start + 1, enc.dv.getUint32(start + 1, true) + keys.length);
  } else {
    enc.ensure(5);
    enc.buf.copyWithin(start + 5, start, enc.pos);
    enc.buf[start] = OP_BATCH;
    enc.patchU32(start + 1, 1 + keys.length);
    enc.pos += 5;
  }
  for (const k of keys) {
    enc.u8(op);
    enc.key(k);
  }
}

/** Reopens the frame last finished in enc for appendKeyOps (drops its padding). */
export function reopenFrame(enc: Encoder): void {
  enc.pos = FRAME_HEADER + enc.dv.getUint32(0, true);
}

/** Bounds-checked reader over a byte range of shared (or private) memory. */
export class Decoder {
  pos = 0;
  limit = 0;

  constructor(
    readonly u8: Uint8Array,
    readonly dv: DataView,
    readonly buf: Buffer,
    private readonly where: string,
  ) {}

  /** A decoder over a whole private buffer (a Redis entry or snapshot). */
  static of(buf: Buffer, where: string): Decoder {
    const d = new Decoder(buf, new DataView(buf.buffer, buf.byteOffset, buf.byteLength), buf, where);
    d.reset(0, buf.length);
    return d;
  }

  reset(pos: number, limit: number): void {
    if (limit > this.u8.length) this.fail('range beyond the segment');
    this.pos = pos;
    this.limit = limit;
  }

  fail(what: string): never {
    throw new CorruptSegmentError(`corrupt data in ${this.where} at byte ${this.pos}: ${what}`);
  }

  /** Steps over the byte just peeked at (u8[pos]). */
  skip(): void {
    this.need(1);
    this.pos++;
  }

  need(n: number): void {
    if (this.pos + n > this.limit) this.fail(`needs ${n} bytes, ${this.limit - this.pos} left`);
  }

  u8v(): number {
    this.need(1);
    return this.u8[this.pos++]!;
  }

  u32(): number {
    this.need(4);
    const v = this.dv.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }

  private string(): string {
    const n = this.u32();
    this.need(n);
    const s = n < 48 ? readAscii(this.u8, this.pos, n) ?? this.buf.toString('utf8', this.pos, this.pos + n) : this.buf.toString('utf8', this.pos, this.pos + n);
    this.pos += n;
    return s;
  }

  key(): Key {
    const tag = this.u8v();
    if (tag === KEY_STRING) return this.string();
    if (tag === KEY_NUMBER) {
      this.need(8);
      const v = this.dv.getFloat64(this.pos, true);
      this.pos += 8;
      return v;
    }
    return this.fail(`unknown key tag ${tag}`);
  }

  value(serializer: Serializer, depth = 0): unknown {
    const tag = this.u8v();
    switch (tag) {
      case V_DICT: {
        if (depth >= MAX_DEPTH) this.fail(`nested deeper than ${MAX_DEPTH} levels`);
        const count = this.u32();
        if (count > this.limit - this.pos) this.fail(`dict count ${count} larger than its bytes`);
        const node = new Node();
        for (let i = 0; i < count; i++) {
          const k = this.key();
          nSet(node, k, this.value(serializer, depth + 1));
        }
        return node;
      }
      case V_UNDEFINED:
        return undefined;
      case V_NULL:
        return null;
      case V_TRUE:
        return true;
      case V_FALSE:
        return false;
      case V_NUMBER: {
        this.need(8);
        const v = this.dv.getFloat64(this.pos, true);
        this.pos += 8;
        return v;
      }
      case V_STRING:
        return this.string();
      case V_SERIALIZED: {
        const n = this.u32();
        this.need(n);
        // a private copy: never hand shared memory to a deserializer (it may change under it, and
        // msgpackr's native extractor rejects SharedArrayBuffer sources)
        const bytes = this.u8.slice(this.pos, this.pos + n);
        this.pos += n;
        try {
          return freezeValue(serializer.deserialize(bytes));
        } catch (e) {
          return this.fail(`serializer '${serializer.name}' cannot decode a value: ${(e as Error)?.message ?? e}`);
        }
      }
      default:
        return this.fail(`unknown value tag ${tag}`);
    }
  }

  /** Decodes one simple op (SET, DELETE or CLEAR, possibly IN a path; EXPIRE, EXPIRED or EVICTED of a root key) into out. */
  private simple(op: number, serializer: Serializer, out: Op[]): void {
    let path: Key[] | null = null;
    if (op === OP_IN) {
      const depth = this.u8v();
      if (depth === 0 || depth > MAX_DEPTH) this.fail(`bad path depth ${depth}`);
      path = [];
      for (let i = 0; i < depth; i++) path.push(this.key());
      op = this.u8v();
    }
    if (op === OP_SET) {
      const at = this.pos;
      const key = this.key();
      out.push({ op, key, value: this.value(serializer), path });
      this.sizes?.push(this.pos - at);
      return;
    }
    this.sizes?.push(0);
    if (op === OP_DELETE) {
      out.push({ op, key: this.key(), value: undefined, path });
    } else if (op === OP_CLEAR) {
      out.push({ op, key: undefined, value: undefined, path });
    } else if (op === OP_EXPIRE && path === null) {
      const key = this.key();
      this.need(8);
      const deadline = this.dv.getFloat64(this.pos, true);
      this.pos += 8;
      if (!(deadline >= 0)) this.fail(`bad deadline ${deadline}`);
      out.push({ op, key, value: deadline, path });
    } else if ((op === OP_EXPIRED || op === OP_EVICTED) && path === null) {
      out.push({ op, key: this.key(), value: undefined, path });
    } else {
      this.fail(`unknown operation ${op}`);
    }
  }

  /** The NOTE of the last body decoded (null: none); NOTE ops are not put in `out`. */
  note: string | null = null;
  /** When set, body() pushes the entry size of every op it puts in `out` here (as encodeOps does). */
  sizes: number[] | null = null;

  /** Decodes a whole body [pos, limit) into flat ops (a batch is expanded). Nothing is applied yet. */
  body(serializer: Serializer, out: Op[]): void {
    const op = this.u8v();
    this.note = null;
    if (op === OP_BATCH) {
      const count = this.u32();
      // each inner op takes at least 1 byte: a count beyond that is corrupt, not a reason to loop
      if (count > this.limit - this.pos) this.fail(`batch count ${count} larger than its bytes`);
      for (let i = 0; i < count; i++) {
        const inner = this.u8v();
        if (inner === OP_NOTE) {
          const k = this.key();
          this.note = typeof k === 'string' ? k : String(k);
        } else this.simple(inner, serializer, out);
      }
    } else {
      this.simple(op, serializer, out);
    }
    if (this.pos !== this.limit) this.fail(`${this.limit - this.pos} trailing bytes after an operation`);
  }
}

/** A short ASCII string from bytes (undefined if any byte is not ASCII); the hot path of key decoding. */
function readAscii(u8: Uint8Array, at: number, n: number): string | undefined {
  for (let i = 0; i < n; i++) if (u8[at + i]! > 0x7f) return undefined;
  const f = String.fromCharCode;
  switch (n) {
    case 0:
      return '';
    case 1:
      return f(u8[at]!);
    case 2:
      return f(u8[at]!, u8[at + 1]!);
    case 3:
      return f(u8[at]!, u8[at + 1]!, u8[at + 2]!);
    case 4:
      return f(u8[at]!, u8[at + 1]!, u8[at + 2]!, u8[at + 3]!);
    case 5:
      return f(u8[at]!, u8[at + 1]!, u8[at + 2]!, u8[at + 3]!, u8[at + 4]!);
    case 6:
      return f(u8[at]!, u8[at + 1]!, u8[at + 2]!, u8[at + 3]!, u8[at + 4]!, u8[at + 5]!);
    case 7:
      return f(u8[at]!, u8[at + 1]!, u8[at + 2]!, u8[at + 3]!, u8[at + 4]!, u8[at + 5]!, u8[at + 6]!);
    case 8:
      return f(u8[at]!, u8[at + 1]!, u8[at + 2]!, u8[at + 3]!, u8[at + 4]!, u8[at + 5]!, u8[at + 6]!, u8[at + 7]!);
    default: {
      let s = '';
      for (let i = 0; i < n; i++) s += f(u8[at + i]!);
      return s;
    }
  }
}

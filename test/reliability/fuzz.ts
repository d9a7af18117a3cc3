// Fuzzing of everything ultradict reads from shared memory: frame bodies, stream headers and frames,
// dumps (segment and fixed area), control blocks, and whole attaches to mutated segment sets.
//
// Inputs are mutations of real segments written by real dicts (all serializers, nested dicts, fixed dump
// area, empty dicts), with checksums fixed up half of the time so that mutated bytes get past the
// checksum into the decoders. The oracle: an input gives a result or a typed UltraDictError
// (CorruptSegmentError mostly); any other exception (TypeError, RangeError: an out-of-bounds read in JS)
// is a finding, and so is a crash (signal), an input that takes more than a second (a hang), or a
// mapping not released after a failed attach.

import { readdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { UltraDict, UltraDictError } from '../../src/index.js';
import { checksum, Decoder, FRAME_HEADER } from '../../src/codec/wire.js';
import type { Op } from '../../src/codec/ops.js';
import { Control } from '../../src/shm/control.js';
import { dumpSegment, fixedDumpSegment, streamSegment } from '../../src/shm/names.js';
import { SharedLock, threadId } from '../../src/engine/lock.js';
import { native } from '../../src/shm/native.js';
import { Segment } from '../../src/shm/segment.js';
import { builtinSerializers, type Serializer } from '../../src/codec/serializer.js';
import { DUMP_HEADER, loadDumpSegment, loadFixedDump } from '../../src/shm/dump.js';
import { DATA, Stream } from '../../src/shm/stream.js';
import { Rng } from './lib.js';
import { scaled } from '../lib/helpers.js';

// ---- templates: real segments -----------------------------------------------------------------------

export interface Template {
  label: string;
  ser: Serializer;
  tag: string;
  idLo: number;
  idHi: number;
  gen: number;
  fullDumpSize: number;
  /** names of the stream, dump and fixed dump files after "ud.<name>." (tag and random parts) */
  files: { stream: string; dump: string; fixed: string };
  ctrl: Buffer;
  stream: Buffer;
  dump: Buffer | null;
  fixed: Buffer | null;
  bodies: Buffer[];
}

const shm = (f: string): string => `/dev/shm/${f}`;

function sampleValues(i: number): unknown[] {
  return [
    i,
    -0,
    Number.NaN,
    `str${i}`,
    'ü✓\u{1F600}'.repeat(i % 3),
    true,
    false,
    null,
    undefined,
    [1, 'two', { three: 3 }],
    { a: i, b: [i, i + 1], c: { d: 'x'.repeat(i % 20) } },
    'x'.repeat(300 + i),
  ];
}

/** Builds dicts of every kind and copies their segments; returns the templates and the dicts (keep them open). */
export function buildTemplates(prefix: string): { templates: Template[]; dicts: UltraDict<unknown>[] } {
  const kinds: { label: string; opts: Record<string, unknown>; empty?: boolean }[] = [
    { label: 'msgpack', opts: { serializer: 'msgpack', bufferSize: 4096 } },
    { label: 'json', opts: { serializer: 'json', bufferSize: 4096 } },
    { label: 'v8', opts: { serializer: 'v8', bufferSize: 4096 } },
    { label: 'fixed', opts: { serializer: 'msgpack', bufferSize: 4096, fullDumpSize: 16384 } },
    { label: 'recurse', opts: { serializer: 'msgpack', bufferSize: 4096, recurse: true } },
    { label: 'empty', opts: { bufferSize: 2048 }, empty: true },
  ];
  const templates: Template[] = [];
  const dicts: UltraDict<unknown>[] = [];
  for (const k of kinds) {
    const name = `${prefix}_${k.label}`;
    const d = new UltraDict<unknown>({ name, ...k.opts });
    dicts.push(d);
    if (!k.empty) {
      for (let i = 0; i < 30; i++) d.set(`k${i}`, sampleValues(i)[i % 12]);
      d.update(sampleValues(3).map((v, j) => [j, v] as const).filter(([, v]) => k.label !== 'json' || v !== undefined));
      d.dump();
      for (let i = 0; i < 12; i++) {
        const v = sampleValues(i)[(i * 5) % 12];
        d.set(i % 2 === 0 ? `s${i}` : i, k.label === 'json' && v === undefined ? 'u' : v);
      }
      d.delete('k1');
      d.update([
        ['b1', 1],
        ['b2', 'two'],
      ]);
      if (k.label === 'recurse') {
        d.set('nest', { x: 1, y: { z: 'deep' } } as never);
        (d.get('nest') as UltraDict<unknown>).set('x', 2);
        (d.get('nest') as UltraDict<unknown>).delete('y');
        d.nested('other').set('q', [1, 2]);
        d.nested('other').clear();
      }
    }
    const ctrl = Control.open(`/ud.${name}`)!;
    const tag = ctrl.tag;
    const gen = ctrl.gen();
    const after = (segName: string): string => segName.slice(`/ud.${name}.`.length);
    const files = { stream: after(streamSegment(name, ctrl, gen)), dump: after(dumpSegment(name, ctrl, gen)), fixed: after(fixedDumpSegment(name, ctrl)) };
    const t: Template = {
      label: k.label,
      ser: builtinSerializers[(k.opts.serializer as 'msgpack' | 'json' | 'v8') ?? 'msgpack'],
      tag,
      idLo: ctrl.idLo,
      idHi: ctrl.idHi,
      gen,
      fullDumpSize: ctrl.fullDumpSize,
      files,
      ctrl: readFileSync(shm(`ud.${name}`)),
      stream: readFileSync(shm(`ud.${name}.${files.stream}`)),
      dump: safeRead(shm(`ud.${name}.${files.dump}`)),
      fixed: safeRead(shm(`ud.${name}.${files.fixed}`)),
      bodies: [],
    };
    ctrl.seg.unmap();
    // the frame bodies of the stream, and the dump payload as one more body
    const end = t.stream.readInt32LE(32) * 8;
    for (let pos = t.stream.readDoubleLE(48); pos + FRAME_HEADER <= end; ) {
      const len = t.stream.readUInt32LE(DATA + pos);
      t.bodies.push(Buffer.from(t.stream.subarray(DATA + pos + FRAME_HEADER, DATA + pos + FRAME_HEADER + len)));
      pos += (FRAME_HEADER + len + 7) & ~7;
    }
    if (t.dump) t.bodies.push(Buffer.from(t.dump.subarray(DUMP_HEADER)));
    templates.push(t);
  }
  return { templates, dicts };
}

function safeRead(p: string): Buffer | null {
  try {
    return readFileSync(p);
  } catch {
    return null;
  }
}

// ---- mutation ---------------------------------------------------------------------------------------

const U32S = [0, 1, 2, 7, 8, 63, 64, 255, 4096, 0x7fff_ffff, 0x8000_0000, 0xffff_fffe, 0xffff_ffff, 36864, 0x3fff_ffff, 0x4000_0001];
const F64S = [0, -0, 1, -1, 0.5, 7, 8, 64, 2 ** 31, 2 ** 31 * 8, 2 ** 32, 2 ** 53, 2 ** 53 + 2, 2 ** 60, 1e300, -1e300, Number.NaN, Infinity, -Infinity];

/** Mutates a copy of src. `hot` lists offsets of header fields (u32/f64 at those offsets get interesting values). */
export function mutate(r: Rng, src: Uint8Array, hot: readonly number[], maxGrow = 4096): Buffer {
  let b: Buffer = Buffer.from(src);
  const n = 1 + r.int(r.chance(0.2) ? 8 : 3);
  for (let m = 0; m < n; m++) {
    if (b.length === 0) b = Buffer.alloc(1 + r.int(64));
    const x = r.int(100);
    if (x < 20) {
      const at = r.int(b.length);
      b[at]! ^= 1 << r.int(8);
    } else if (x < 35) {
      b[r.int(b.length)] = r.pick([0, 1, 0x7f, 0x80, 0xff, r.int(256), 2, 3, 4, 5, 6, 7]);
    } else if (x < 60 && hot.length > 0) {
      const at = r.pick(hot);
      const y = r.int(10);
      if (y === 0) {
        if (at + 8 <= b.length) b.writeBigInt64LE(r.pick([-1n, -2n, 1n, 2n, 2n ** 53n, 2n ** 53n + 1n, 2n ** 63n - 1n, -(2n ** 63n), 0n]), at);
      } else if (y < 5) {
        if (at + 4 <= b.length) b.writeUInt32LE(r.chance(0.8) ? r.pick(U32S) : r.int(0x1_0000_0000), at);
      } else if (at + 8 <= b.length) {
        b.writeDoubleLE(r.chance(0.8) ? r.pick(F64S) : r.int(1 << 20) * 8, at);
      }
    } else if (x < 70) {
      const at = r.int(b.length);
      const len = Math.min(b.length - at, 1 + r.int(16));
      for (let i = 0; i < len; i++) b[at + i] = r.int(256);
    } else if (x < 78) {
      // copy a range from elsewhere (repeats structure: keys, tags, lengths)
      const from = r.int(b.length);
      const to = r.int(b.length);
      const len = Math.min(b.length - from, b.length - to, 1 + r.int(32));
      b.copy(b, to, from, from + len);
    } else if (x < 86) {
      b = b.subarray(0, r.int(b.length + 1)); // truncated
    } else if (x < 92) {
      const grow = 1 + r.int(maxGrow);
      b = Buffer.concat([b, r.chance(0.5) ? Buffer.alloc(grow) : randomBuf(r, grow)]);
    } else if (x < 96) {
      const at = r.int(b.length);
      b[at] = (b[at]! + (r.chance(0.5) ? 1 : 255)) & 0xff; // off by one
    } else {
      b = randomBuf(r, r.chance(0.5) ? b.length : 1 + r.int(4096)); // a foreign program's bytes
    }
  }
  return Buffer.from(b);
}

function randomBuf(r: Rng, n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = r.int(256);
  return b;
}

const STREAM_HOT = [0, 4, 8, 12, 16, 24, 32, 36, 40, 48, 56, 60, DATA, DATA + 4];
const DUMP_HOT = [0, 4, 8, 12, 16, 24, 32, 36, DUMP_HEADER, DUMP_HEADER + 1];
const CONTROL_HOT = [0, 4, 8, 12, 16, 20, 24, 32, 36, 40, 48, 56, 64, 68, 72, 144, 256, 264, 272, 276, 280, 284, 288, 296, 300, 304, 312, 360, 368, 376, 384, 392, 4096, 4100, 4104, 4112, 4120, 4128, 4132];

/** The files of a template's segment set under another dict name: [file in /dev/shm, bytes]. */
export function segmentFiles(t: Template, name: string): [string, Buffer][] {
  const files: [string, Buffer][] = [[`ud.${name}`, t.ctrl], [`ud.${name}.${t.files.stream}`, t.stream]];
  if (t.dump) files.push([`ud.${name}.${t.files.dump}`, t.dump]);
  if (t.fixed) files.push([`ud.${name}.${t.files.fixed}`, t.fixed]);
  return files;
}

/** Recomputes frame checksums (walking the mutated lengths) so mutated bodies reach the decoder. */
function fixFrameChecksums(b: Buffer): void {
  if (b.length < DATA) return;
  const end = Math.min(b.readInt32LE(32) * 8, b.length - DATA);
  let pos = b.readDoubleLE(48);
  if (!Number.isSafeInteger(pos) || pos < 0 || pos % 8 !== 0) return;
  const i32 = new Int32Array(b.buffer, b.byteOffset, b.length >> 2);
  if (b.byteOffset % 4 !== 0) return;
  while (pos + FRAME_HEADER <= end) {
    const at = DATA + pos;
    const len = b.readUInt32LE(at);
    if (len < 1 || at + FRAME_HEADER + len > b.length) return;
    b.writeUInt32LE(checksum(i32, b, at + FRAME_HEADER, len), at + 4);
    pos += (FRAME_HEADER + len + 7) & ~7;
  }
}

// ---- scratch segments ---------------------------------------------------------------------------

/** Named segments of exact sizes, reused: writing an input into one is a memcpy, not a syscall. */
class Scratch {
  private readonly segs = new Map<number, Segment>();
  private n = 0;
  constructor(private readonly prefix: string) {}
  /** A segment holding exactly `bytes` (size = bytes.length, at least 1). */
  put(bytes: Uint8Array): Segment {
    const size = Math.max(1, bytes.length);
    let s = this.segs.get(size);
    if (!s) {
      if (this.segs.size >= 48) {
        const [k, old] = this.segs.entries().next().value as [number, Segment];
        old.unmap();
        Segment.unlink(old.name);
        this.segs.delete(k);
      }
      s = Segment.create(`/${this.prefix}.x${++this.n}`, size, 0o600);
      this.segs.set(size, s);
    }
    s.u8.set(bytes.subarray(0, size), 0);
    if (bytes.length === 0) s.u8[0] = 0;
    return s;
  }
  close(): void {
    for (const s of this.segs.values()) {
      s.unmap();
      Segment.unlink(s.name);
    }
    this.segs.clear();
  }
}

// ---- the oracle ---------------------------------------------------------------------------------------

export interface FuzzStats {
  target: string;
  seconds?: number;
  inputs: number;
  ok: number;
  typed: Record<string, number>;
  findings: string[];
  slowestMs: number;
}

function newStats(target: string): FuzzStats {
  return { target, inputs: 0, ok: 0, typed: {}, findings: [], slowestMs: 0 };
}

/** An input slower than this is reported as a hang (generous: the machine may be loaded by other tests). */
const HANG_MS = scaled(5000); // longer under emulation (ULTRADICT_TEST_TIME_SCALE)

function judge(st: FuzzStats, seed: number, i: number, fn: () => void, input: () => Uint8Array): void {
  const t = performance.now();
  try {
    fn();
    st.ok++;
  } catch (e) {
    if (e instanceof UltraDictError) {
      st.typed[e.name] = (st.typed[e.name] ?? 0) + 1;
    } else if (st.findings.length < 20) {
      const bytes = Buffer.from(input());
      st.findings.push(
        `${st.target} seed ${seed} input ${i}: untyped ${(e as Error)?.name}: ${(e as Error)?.message}\n    at ${((e as Error)?.stack ?? '').split('\n').slice(1, 4).join(' | ')}\n    input (${bytes.length} bytes): ${bytes.subarray(0, 160).toString('hex')}`,
      );
    }
  }
  const ms = performance.now() - t;
  st.inputs++;
  if (ms > st.slowestMs) st.slowestMs = ms;
  if (ms > HANG_MS && st.findings.length < 20) {
    const bytes = Buffer.from(input());
    st.findings.push(`${st.target} seed ${seed} input ${i}: took ${ms.toFixed(0)} ms; input (${bytes.length} bytes): ${bytes.subarray(0, 200).toString('hex')}`);
  }
}

// ---- targets ----------------------------------------------------------------------------------------

/** Frame bodies straight into the Decoder (with every template's serializer). */
export function fuzzDecoder(templates: Template[], n: number, seed: number): FuzzStats {
  const st = newStats('decoder');
  const r = new Rng(seed);
  const buf = Buffer.alloc(1 << 16);
  const d = new Decoder(buf, new DataView(buf.buffer, buf.byteOffset, buf.length), buf, 'fuzz');
  const ops: Op[] = [];
  const withBodies = templates.filter((t) => t.bodies.length > 0);
  for (let i = 0; i < n; i++) {
    const t = r.pick(withBodies);
    const body = mutate(r, r.pick(t.bodies), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 256);
    const len = Math.min(body.length, buf.length);
    judge(
      st,
      seed,
      i,
      () => {
        buf.set(body.subarray(0, len), 0);
        ops.length = 0;
        d.reset(0, len);
        d.body(t.ser, ops);
      },
      () => body,
    );
  }
  return st;
}

/** Stream segments: Stream.open (header validation), end(), then every frame up to the end. */
export function fuzzStream(templates: Template[], n: number, seed: number, scratch: Scratch): FuzzStats {
  const st = newStats('stream');
  const r = new Rng(seed);
  const ops: Op[] = [];
  for (let i = 0; i < n; i++) {
    const t = r.pick(templates);
    const b = mutate(r, t.stream, STREAM_HOT, 512);
    if (r.chance(0.6)) fixFrameChecksums(b);
    const gen = r.chance(0.9) ? t.gen : r.pick([t.gen + 1, -1, 2 ** 53, Number.NaN]);
    judge(
      st,
      seed,
      i,
      () => {
        const seg = scratch.put(b);
        const s = Stream.open(seg.name, t.idLo, t.idHi, gen);
        if (s === null) return;
        try {
          const end = s.end();
          let pos = s.dump.streamStart;
          if (pos > end) return;
          while (pos < end) {
            ops.length = 0;
            pos = s.frameBody(pos, end); // as Core's replay: verify, then decode the body
            s.decoder.body(t.ser, ops);
          }
        } finally {
          s.unmap();
        }
      },
      () => b,
    );
  }
  return st;
}

/** Dump segments and fixed dump areas, with the expectation (from the stream header) mutated or not. */
export function fuzzDump(templates: Template[], n: number, seed: number, scratch: Scratch): FuzzStats {
  const st = newStats('dump');
  const r = new Rng(seed);
  const withDump = templates.filter((t) => t.dump !== null || t.fixed !== null);
  for (let i = 0; i < n; i++) {
    const t = r.pick(withDump);
    const fixed = t.fixed !== null;
    const src = fixed ? t.fixed! : t.dump!;
    const half = fixed ? 64 + ((t.fullDumpSize + 7) & ~7) : 0;
    const at = fixed ? (t.gen % 2) * half : 0;
    const b = mutate(r, src, DUMP_HOT.map((o) => o + at), 512);
    const x = {
      idLo: t.idLo,
      idHi: t.idHi,
      gen: t.gen,
      len: t.stream.readDoubleLE(40),
      checksum: t.stream.readUInt32LE(56),
    };
    if (r.chance(0.6) && b.length >= at + DUMP_HEADER) {
      // make the payload's checksum right again so the decoder sees the mutated payload
      const len = b.readDoubleLE(at + 24);
      if (Number.isSafeInteger(len) && len >= 0 && at + DUMP_HEADER + len <= b.length) {
        const al = Buffer.alloc((DUMP_HEADER + len + 7) & ~7);
        b.copy(al, 0, at, at + DUMP_HEADER + len);
        const sum = checksum(new Int32Array(al.buffer, al.byteOffset, al.length >> 2), al, DUMP_HEADER, len);
        b.writeUInt32LE(sum, at + 32);
        x.len = len;
        x.checksum = sum;
      }
    }
    // the expectation comes from a stream header that Stream.open validated (a safe integer >= 0): stay in that space
    if (r.chance(0.1)) x.len = r.pick(F64S.filter((v) => Number.isSafeInteger(v) && v >= 0));
    if (r.chance(0.05)) x.gen = r.pick([x.gen + 2, x.gen + 1, 0]);
    const fds = r.chance(0.9) ? t.fullDumpSize : r.pick([0, 64, 2 ** 31, 2 ** 33, 2 ** 53]);
    judge(
      st,
      seed,
      i,
      () => {
        const seg = scratch.put(b);
        if (fixed) loadFixedDump(seg, fds, x, t.ser);
        else loadDumpSegment(seg, x, t.ser);
      },
      () => b,
    );
  }
  return st;
}

/** Control blocks: open/validate, header getters, slots, and the lock (owner, a 0 ms acquire). */
export function fuzzControl(templates: Template[], n: number, seed: number, scratch: Scratch): FuzzStats {
  const st = newStats('control');
  const r = new Rng(seed);
  for (let i = 0; i < n; i++) {
    const t = r.pick(templates);
    const b = mutate(r, t.ctrl, CONTROL_HOT, 256);
    judge(
      st,
      seed,
      i,
      () => {
        const seg = scratch.put(b);
        const c = Control.open(seg.name);
        if (c === null) return;
        try {
          c.checkHeader();
          void [c.tag, c.gen(), c.genLow(), c.bufferSize, c.fullDumpSize, c.mode, c.serializerName, c.flags, c.creatorPid, c.unlinked];
          void c.attached();
          const slot = r.int(8);
          const entry = { key: `fuzz${i}`, slot, id: threadId(slot, 1), depth: 0, refs: 1, since: false, onIdle: null };
          const lock = new SharedLock(c, entry, 0, () => {}, () => {});
          void lock.owner();
          const h = lock.acquire({ timeout: 0 });
          h.release();
        } finally {
          c.seg.unmap();
        }
      },
      () => b,
    );
  }
  return st;
}

/**
 * Whole attaches: a template's segment set copied under a fresh name with one file mutated (or
 * missing), then new UltraDict({ create: false }), a full read, optionally one write, close. Checks that
 * every mapping is released afterwards.
 */
export function fuzzAttach(templates: Template[], n: number, seed: number, prefix: string, writes: boolean): FuzzStats {
  const st = newStats('attach');
  const r = new Rng(seed);
  for (let i = 0; i < n; i++) {
    const baseline = native.liveMappings();
    const t = r.pick(templates);
    const name = `${prefix}_a${i}`;
    const files = segmentFiles(t, name);
    const victim = r.int(files.length);
    const [vf, vb] = files[victim]!;
    // the generation and id fields are left alone most of the time: a wrong one only makes the attach
    // retry its missing segments for ~0.5 s before CorruptSegmentError (covered, but slow to repeat)
    // (and so are the random parts of the segment names, 360-391)
    const ctrlHot = r.chance(0.97) ? CONTROL_HOT.filter((o) => o !== 16 && o !== 20 && o !== 272 && o !== 276 && !(o >= 360 && o < 392)) : CONTROL_HOT;
    const hot = victim === 0 ? ctrlHot : /\.(d\d+|dump)\./.test(vf) ? DUMP_HOT : STREAM_HOT;
    let mutated: Buffer | null = mutate(r, vb, hot, 512);
    if (victim !== 0 && r.chance(0.005)) mutated = null; // a missing segment
    if (mutated && /\.s\d+\./.test(vf) && r.chance(0.6)) fixFrameChecksums(mutated);
    files[victim] = [vf, mutated ?? Buffer.alloc(0)];
    for (const [f, b] of files) if (!(f === vf && mutated === null)) writeFileSync(shm(f), b, { mode: 0o600 });
    const t0 = performance.now();
    judge(
      st,
      seed,
      i,
      () => {
        using d = new UltraDict<unknown>({ name, create: false, lockTimeout: 30 });
        for (const [k, v] of d) void [k, v];
        void d.size;
        if (writes) {
          d.set('fuzz', i);
          d.delete('fuzz');
        }
      },
      () => mutated ?? Buffer.alloc(0),
    );
    const live = native.liveMappings();
    if (live !== baseline && st.findings.length < 20) {
      st.findings.push(`attach seed ${seed} input ${i}: ${live - baseline} mapping(s) not released after the attach (file ${vf}: ${(mutated ?? Buffer.alloc(0)).subarray(0, 80).toString('hex')})`);
    }
    if (process.env.ULTRADICT_FUZZ_DEBUG && performance.now() - t0 > 500) {
      console.error(`slow attach input ${i} (${(performance.now() - t0).toFixed(0)} ms) template ${t.label} file ${vf}: ${(mutated ?? Buffer.alloc(0)).subarray(0, 400).toString('hex')}`);
    }
    for (const f of readdirSync('/dev/shm')) {
      if (f === `ud.${name}` || f.startsWith(`ud.${name}.`)) {
        try {
          unlinkSync(shm(f));
        } catch {
          // gone
        }
      }
    }
  }
  return st;
}

/** The addon's own inputs: bad names, sizes, modes, ids, offsets, buffers, pids. Run in a child process. */
export function fuzzAddon(n: number, seed: number, prefix: string): FuzzStats {
  const st = newStats('addon');
  const r = new Rng(seed);
  const sab = new SharedArrayBuffer(64);
  const watchSeg = `/${prefix}.watched`;
  const watched = native.create(watchSeg, 64, 0o600);
  const running: number[] = [];
  const junk = (): unknown =>
    r.pick<unknown>([
      undefined,
      null,
      0,
      -1,
      1.5,
      Number.NaN,
      Infinity,
      -Infinity,
      2 ** 31,
      2 ** 32 + 4,
      2 ** 53,
      -(2 ** 53),
      1e308,
      '',
      'x',
      '/',
      {},
      [],
      () => 1,
      Symbol('s'),
      10n,
      sab,
      new ArrayBuffer(8),
      new Uint8Array(8),
      new SharedArrayBuffer(0),
      new SharedArrayBuffer(3),
    ]);
  const names = [
    '',
    '/',
    '/.',
    '/..',
    '/../etc/passwd',
    '/a/b',
    'noslash',
    `/${prefix}\0x`,
    `/${prefix}ü`,
    '/' + 'a'.repeat(251),
    '/' + 'a'.repeat(300),
    '//x',
    `/${prefix} sp`,
    `/${prefix}%2e`,
    `/${prefix}.ok`,
    `/${prefix}.missing${r.int(1000)}`,
  ];
  const fns: (() => unknown)[] = [
    () => native.create(r.chance(0.5) ? r.pick(names) : (junk() as string), r.chance(0.5) ? r.pick([0, -1, 1, 4096, 1.5, 2 ** 50, 2 ** 62, Number.NaN, Infinity]) : (junk() as number), r.chance(0.5) ? r.pick([0o600, 0, -1, 0o1777, 4096, Number.NaN]) : (junk() as number), ...(r.chance(0.5) ? [] : [r.pick([0, -1, 1, 64, 4096, 2 ** 53, Number.NaN]) as number])),
    () => native.open(r.chance(0.7) ? r.pick(names) : (junk() as string)),
    () => native.unlink(r.chance(0.7) ? r.pick(names) : (junk() as string)),
    () => native.unmap(r.chance(0.5) ? r.pick([0, -1, 2 ** 32 - 1, 2 ** 32 + 1, 123456, Number.NaN, 1.5]) : (junk() as number)),
    () => native.futexWake(junk() as SharedArrayBuffer, r.chance(0.5) ? r.pick([0, 4, 60, 61, 64, -4, 2 ** 53, Number.NaN, 4.5]) : (junk() as number), junk() as number),
    () => native.futexWake(sab, r.pick([0, 4, 60, 61, 62, 63, 64, 68, -4, -0, 2 ** 32, 2 ** 53, Number.NaN, 4.5, Infinity]), r.pick([0, 1, -1, 2 ** 31, Number.NaN])),
    () => native.futexWait(sab, r.pick([0, 4, 60, 61, 64, -4, 2 ** 32, 2 ** 53, Number.NaN, 4.5]), r.pick([1, -1, 2 ** 31, Number.NaN]), r.pick([0, -1, Number.NaN, 0.001, -Infinity, 1])),
    () => native.futexWait(junk() as SharedArrayBuffer, junk() as number, junk() as number, junk() as number),
    () => native.threadStartTime(junk() as number, junk() as number),
    () => native.threadStartTime(r.pick([0, -1, 1, process.pid, 2 ** 31 - 1, 2 ** 31, 2 ** 32 + 1]), r.pick([0, -1, 1, process.pid, 2 ** 31 - 1, 2 ** 32 + 1])),
    () => native.processAlive(r.chance(0.5) ? r.pick([0, -1, 1, process.pid, 2 ** 31 - 1, 2 ** 31, 2 ** 32 + 1, -(2 ** 31)]) : (junk() as number)),
    () => native.liveMappings(),
    () => native.self(),
    // change watchers: a thread per watcher waiting on a futex in its own mapping of the segment
    () => native.watchStart(r.chance(0.5) ? r.pick(names) : (junk() as string), junk() as number, junk() as () => void, junk() as number),
    () => {
      const id = native.watchStart(
        watchSeg,
        r.pick([0, 4, 60, 61, 64, 4096, -4, 2, 2 ** 53, Number.NaN]),
        r.chance(0.9) ? () => {} : (junk() as () => void),
        junk() as number,
        r.pick([0, 4, 60, 64, -4, 3, 2 ** 40, Number.NaN]),
        junk() as number,
      );
      if (r.chance(0.5)) native.watchRef(id, r.chance(0.5));
      if (r.chance(0.9)) native.watchStop(id);
      else running.push(id); // left running for a while (a ref'd one would keep the process alive: stopped at the end)
      if (r.chance(0.3)) native.watchStop(id); // twice
    },
    () => native.watchStop(r.chance(0.5) ? r.pick([0, -1, 2 ** 32 - 1, 123456, Number.NaN, 1.5]) : (junk() as number)),
    // page reservation in a mapped segment (where the addon has it)
    () => {
      const reserve = (native as unknown as { reserve?: (...a: unknown[]) => unknown }).reserve;
      if (typeof reserve !== 'function') return;
      const buf = r.chance(0.8) ? watched.buffer : junk();
      const off = r.chance(0.8) ? r.pick([0, 4, 8, 60, 63, 64, 65, -1, -8, 4096, 2 ** 32, 2 ** 53, Number.NaN, 1.5]) : junk();
      const len = r.chance(0.8) ? r.pick([0, 1, 8, 56, 64, 65, -1, 4096, 2 ** 31, 2 ** 53, Number.NaN]) : junk();
      reserve(buf, off, len, r.chance(0.9) ? watchSeg : junk());
    },
    () => native.watchRef(r.chance(0.5) ? r.pick([0, -1, 2 ** 32 - 1, 123456, Number.NaN]) : (junk() as number), junk() as boolean),
  ];
  for (let i = 0; i < n; i++) {
    const f = r.int(fns.length);
    const t = performance.now();
    try {
      const res = fns[f]!() as { buffer?: unknown; id?: number } | undefined;
      if (res && typeof res === 'object' && typeof res.id === 'number' && res.buffer instanceof SharedArrayBuffer) native.unmap(res.id);
      st.ok++;
    } catch (e) {
      // the addon throws plain Errors with a code (typed by src/shm/segment.ts) or TypeErrors from N-API
      const code = (e as { code?: unknown })?.code;
      const key = typeof code === 'string' ? code : (e as Error)?.name ?? 'thrown';
      st.typed[key] = (st.typed[key] ?? 0) + 1;
      if (!(e instanceof Error) && st.findings.length < 20) st.findings.push(`addon fn ${f} input ${i}: threw a non-Error ${String(e)}`);
    }
    st.inputs++;
    const ms = performance.now() - t;
    if (ms > st.slowestMs) st.slowestMs = ms;
    if (ms > HANG_MS && st.findings.length < 20) st.findings.push(`addon fn ${f} input ${i}: took ${ms.toFixed(0)} ms`);
  }
  for (const id of running) native.watchStop(id);
  native.unmap(watched.id);
  for (const f of readdirSync('/dev/shm')) if (f.startsWith(prefix)) unlinkSync(shm(f));
  return st;
}

export { Scratch };

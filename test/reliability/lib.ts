// Shared pieces of the reliability suites: seeded PRNG, canonical value strings, ack files, shm probes, summaries.

import { spawn } from 'node:child_process';
import { withPrivateShm } from '../lib/private-shm.js';
import { closeSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** mulberry32: small, fast, seedable; good enough to drive tests reproducibly. */
export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0 || 0x9e3779b9;
  }
  next(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) | 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** integer in [0, n) */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  /** integer in [lo, hi] */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
}

/** Mixes integers into one 32-bit seed (for per-(seed, writer, op) generators). */
export function mix(...xs: number[]): number {
  let h = 0x811c9dc5;
  for (const x of xs) {
    h = Math.imul(h ^ (x >>> 0), 0x01000193);
    h ^= h >>> 13;
    h = Math.imul(h, 0x5bd1e995);
    h ^= h >>> 15;
  }
  return h >>> 0;
}

/** A canonical string of a value (sorted object keys; distinguishes undefined, -0, NaN). */
export function canon(v: unknown): string {
  if (v === undefined) return 'u';
  if (v === null) return 'n';
  if (typeof v === 'number') return Object.is(v, -0) ? 'd:-0' : `d:${v}`;
  if (typeof v === 'string') return `s:${JSON.stringify(v)}`;
  if (typeof v === 'boolean') return v ? 't' : 'f';
  if (Array.isArray(v)) return `[${v.map(canon).join(',')}]`;
  if (v instanceof Map) return `M{${canonEntries(v).join(',')}}`;
  if (typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canon(o[k])}`)
      .join(',')}}`;
  }
  return `?${String(v)}`;
}

/** FNV-1a of a string, as 8 hex digits. */
export function hashStr(s: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return (h >>> 0).toString(16).padStart(8, '0');
}

/** Canonical listing of a map's entries, sorted by key (number keys marked). */
export function canonEntries(entries: Iterable<readonly [string | number, unknown]>): string[] {
  const out: string[] = [];
  for (const [k, v] of entries) out.push(`${typeof k === 'number' ? `#${k}` : JSON.stringify(k)}=${canon(v)}`);
  return out.sort();
}

// ---- ack files ------------------------------------------------------------------------------------
// A writer reports progress through a 16-byte file it overwrites after every operation returns:
// [phase f64][acked f64]. pwrite is a syscall: once it returned, a SIGKILL cannot undo it, so the
// parent reads exactly what was acknowledged before the kill.

export const PHASE_STARTED = 1; // process running, before opening the dict
export const PHASE_ATTACHED = 2; // dict opened, writing

export class AckWriter {
  private readonly fd: number;
  private readonly buf = Buffer.alloc(16);
  constructor(path: string) {
    this.fd = openSync(path, 'r+');
  }
  write(phase: number, acked: number): void {
    this.buf.writeDoubleLE(phase, 0);
    this.buf.writeDoubleLE(acked, 8);
    writeSync(this.fd, this.buf, 0, 16, 0);
  }
}

export function readAck(path: string): { phase: number; acked: number } {
  const fd = openSync(path, 'r');
  try {
    const b = Buffer.alloc(16);
    readSync(fd, b, 0, 16, 0);
    return { phase: b.readDoubleLE(0), acked: b.readDoubleLE(8) };
  } finally {
    closeSync(fd);
  }
}

export function tempDir(prefix: string): { dir: string; file(name: string): string; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return {
    dir,
    file(name: string): string {
      const p = join(dir, name);
      closeSync(openSync(p, 'w'));
      const fd = openSync(p, 'r+');
      writeSync(fd, Buffer.alloc(16), 0, 16, 0);
      closeSync(fd);
      return p;
    },
    cleanup(): void {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Reads n bytes at offset of a file (e.g. a /dev/shm segment), or null if it is gone. */
export function readBytes(path: string, offset: number, n: number): Buffer | null {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return null;
  }
  try {
    const b = Buffer.alloc(n);
    const got = readSync(fd, b, 0, n, offset);
    return b.subarray(0, got);
  } finally {
    closeSync(fd);
  }
}

// ---- private /dev/shm ------------------------------------------------------------------------------

export { privateShmUnavailable } from '../lib/private-shm.js';

/** argv for running `node script args` inside a private mount namespace with a tmpfs of `size` on /dev/shm. */
export function inPrivateShm(size: string, script: string, args: string[]): [string, string[]] {
  return withPrivateShm([process.execPath, script, ...args], size);
}

/** Runs a Node script with a private /dev/shm of `size` (see inPrivateShm); resolves with its exit and output. */
export function runInPrivateShm(size: string, script: string, args: string[]): Promise<{ code: number | string | null; out: string; err: string }> {
  const [cmd, argv] = inPrivateShm(size, script, args);
  const p = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  p.stdout.on('data', (b: Buffer) => (out += b));
  p.stderr.on('data', (b: Buffer) => (err += b));
  return new Promise((resolve) => p.on('exit', (c, sig) => resolve({ code: c ?? sig, out, err })));
}

// ---- summaries -----------------------------------------------------------------------------------

/** The figures one suite run reports (the full runners print one JSON line `RESULT {...}`). */
export interface SuiteResult {
  suite: string;
  trials: number;
  inputs: number;
  failures: number;
  lostWrites: number;
  seconds: number;
  details: Record<string, unknown>;
  problems: string[];
}

export function printResult(r: SuiteResult): void {
  console.log(`RESULT ${JSON.stringify(r)}`);
}

/** Reads a number from the environment, or the default. */
export function envInt(name: string, dflt: number): number {
  const v = process.env[name];
  if (v === undefined || v === '') return dflt;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new Error(`${name} must be a number, got ${v}`);
  return n;
}

export function readJsonFile<T>(path: string): T {
  return JSON.parse(readFileSync(path, 'utf8')) as T;
}

#!/usr/bin/env node
// The `ultradict` command line: list, inspect, read, write, watch and remove the dicts of this machine.

import { once } from 'node:events';
import { readFileSync, realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Change, DictInfo, Key, UltraDict as UltraDictClass, UltraDictStats } from './index.js';

/** Exit codes a script can rely on (also in `ultradict --help` and docs/api.md). */
export const EXIT = { ok: 0, error: 1, usage: 2, notFound: 3 } as const;

type Lib = typeof import('./index.js');

class UsageError extends Error {}
class KeyNotFound extends Error {
  readonly code = 'ULTRADICT_KEY_NOT_FOUND';
}

// ---- arguments -------------------------------------------------------------------------------

interface OptionSpec {
  short?: string;
  value?: string; // name of the value if the option takes one
  help: string;
}

const OPTIONS: Record<string, OptionSpec> = {
  json: { help: 'machine-readable output (JSON)' },
  help: { short: 'h', help: 'show help' },
  version: { help: 'print the version' },
  'number-key': { short: 'n', help: 'KEY is a number key (keys are strings by default: 1 and "1" differ)' },
  string: { short: 's', help: 'store VALUE as a plain string instead of parsing it as JSON' },
  raw: { short: 'r', help: 'print a string value without JSON quotes' },
  entries: { help: 'print [key, value] pairs (keeps number keys apart from string keys)' },
  force: { short: 'f', help: 'remove even if live processes are attached' },
  'lock-timeout': { value: 'MS', help: 'longest wait for the dict lock (default 10000)' },
  owner: { value: 'UID', help: "attach to a dict owned by this uid, or by anyone with 'any' (default: only your own)" },
  grace: { value: 'MS', help: 'leave segments younger than this alone (default 2000)' },
  all: { short: 'a', help: 'also remove dicts that every process closed cleanly (kept with autoUnlink: false)' },
  stream: { value: 'NAME', help: 'name of the replicated dict in Redis (default: the local NAME)' },
  id: { value: 'ID', help: "this host's bridge id (default: the host name); keep it stable across restarts" },
  prefix: { value: 'PREFIX', help: 'prefix of the Redis keys (default "ultradict:")' },
  'connect-timeout': { value: 'MS', help: 'longest wait for the first connection to Redis (default 5000)' },
};

interface Parsed {
  positionals: string[];
  flags: Set<string>;
  values: Map<string, string>;
}

/**
 * Splits argv into options and positionals. Unlike util.parseArgs, a negative number (`-5`) or a lone
 * `-` (stdin) is a positional, so `ultradict set n k -5` works; `--` ends the options.
 */
export function parseArgv(argv: readonly string[]): Parsed {
  const out: Parsed = { positionals: [], flags: new Set(), values: new Map() };
  const byShort = new Map(Object.entries(OPTIONS).flatMap(([k, o]) => (o.short ? [[o.short, k] as const] : [])));
  const take = (name: string, inline: string | undefined, i: number): number => {
    const spec = OPTIONS[name];
    if (spec === undefined) throw new UsageError(`unknown option --${name}`);
    if (spec.value === undefined) {
      if (inline !== undefined) throw new UsageError(`option --${name} takes no value`);
      out.flags.add(name);
      return i;
    }
    const v = inline ?? argv[i + 1];
    if (v === undefined) throw new UsageError(`option --${name} needs a value (${spec.value})`);
    out.values.set(name, v);
    return inline === undefined ? i + 1 : i;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      out.positionals.push(...argv.slice(i + 1));
      break;
    }
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      i = take(eq < 0 ? a.slice(2) : a.slice(2, eq), eq < 0 ? undefined : a.slice(eq + 1), i);
    } else if (a.length > 1 && a.startsWith('-') && !/^-[\d.]/.test(a)) {
      for (const ch of a.slice(1)) {
        const name = byShort.get(ch);
        if (name === undefined) throw new UsageError(`unknown option -${ch}`);
        i = take(name, undefined, i);
      }
    } else {
      out.positionals.push(a);
    }
  }
  return out;
}

// ---- commands --------------------------------------------------------------------------------

interface Ctx {
  lib: Lib;
  args: string[];
  p: Parsed;
  json: boolean;
  /** prints a line; a promise when the output is full (wait for it before writing more) */
  out: (s: string) => void | Promise<void>;
  err: (s: string) => void;
  signal: AbortSignal;
}

interface Command {
  args: string[];
  options: string[];
  summary: string;
  details: string;
  run(ctx: Ctx): Promise<number> | number;
}

const COMMON = ['json', 'help', 'lock-timeout', 'owner'];

const COMMANDS: Record<string, Command> = {
  ls: {
    args: [],
    options: ['json', 'help', 'lock-timeout'],
    summary: 'list every dict on this machine',
    details:
      'Columns: name, keys, bytes in shared memory, live attached processes, creator pid, age, serializer.\n' +
      'A dict marked (unlinked) was removed by name but is still used by the processes attached to it.',
    run: cmdLs,
  },
  inspect: {
    args: ['NAME'],
    options: [...COMMON],
    summary: 'show the statistics of one dict',
    details: 'Keys, stream use, dumps, generation, lock holder (and since when, if it had to wait for the lock),\nserializer, options, attached processes, and the Redis bridge running on it (its counters).',
    run: cmdInspect,
  },
  get: {
    args: ['NAME', 'KEY'],
    options: ['number-key', 'raw', ...COMMON],
    summary: 'print the value of KEY as JSON',
    details: 'Exits with 3 if the dict or the key does not exist.',
    run: cmdGet,
  },
  set: {
    args: ['NAME', 'KEY', 'VALUE'],
    options: ['number-key', 'string', ...COMMON],
    summary: 'set KEY to VALUE (JSON, or a string with --string; "-" reads it from stdin)',
    details:
      'VALUE is parsed as JSON: 42, true, null, \'"text"\', \'{"a":[1,2]}\'. Put -- before a VALUE that starts\n' +
      'with "-" and is not a number: ultradict set NAME KEY -- -x. The dict must exist.',
    run: cmdSet,
  },
  del: {
    args: ['NAME', 'KEY'],
    options: ['number-key', ...COMMON],
    summary: 'delete KEY',
    details: 'Exits with 3 if the dict or the key does not exist.',
    run: cmdDel,
  },
  dump: {
    args: ['NAME'],
    options: ['entries', ...COMMON],
    summary: 'print the whole contents as JSON',
    details:
      'A JSON object keyed by String(key), like JSON.stringify(dict). With --entries, an array of\n' +
      '[key, value] pairs, which keeps the number key 1 apart from the string key "1".',
    run: cmdDump,
  },
  watch: {
    args: ['NAME'],
    options: [...COMMON],
    summary: 'print changes as they happen, until Ctrl-C',
    details:
      'One line per change: time, type (set, delete, clear, reload), key and value. With --json, one\n' +
      'JSON object per line. Ends with exit code 0 on Ctrl-C (SIGINT), SIGTERM or when the dict is removed.',
    run: cmdWatch,
  },
  rm: {
    args: ['NAME'],
    options: ['json', 'force', 'help'],
    summary: 'remove a dict (every segment of the name)',
    details:
      'Refuses (exit 1) while live processes are attached, unless --force: they then keep their\n' +
      'mappings but the name is gone, and a new dict may be created under it. Exits with 3 if nothing exists.',
    run: cmdRm,
  },
  gc: {
    args: [],
    options: ['json', 'grace', 'all', 'help'],
    summary: 'remove dicts left behind by crashed processes',
    details:
      'Dicts whose attached processes all died without closing (SIGKILL, crash), unlinked dicts nobody\n' +
      'uses, creators that died while initialising, and orphan segments. Dicts that every process closed\n' +
      'cleanly (kept with autoUnlink: false) stay, unless --all.',
    run: cmdGc,
  },
  bridge: {
    args: ['NAME', 'URL'],
    options: ['json', 'help', 'stream', 'id', 'prefix', 'connect-timeout'],
    summary: 'replicate a dict across hosts through a Redis stream (runs until Ctrl-C)',
    details:
      'Joins the local dict NAME (created if missing) to the stream of the same name on the Redis server\n' +
      'at URL (redis://host:port). Run one bridge per host per dict; hosts whose bridges share a stream\n' +
      'converge to the same contents. Needs the ioredis package. See docs/replication.md.',
    run: cmdBridge,
  },
};

/** The value of an option in ms (a number >= 0), or undefined if not given. */
function msOption(p: Parsed, name: string): number | undefined {
  const v = p.values.get(name);
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!(n >= 0) || v.trim() === '') throw new UsageError(`--${name} must be a number of ms >= 0, got ${JSON.stringify(v)}`);
  return n;
}

function lockTimeout(p: Parsed): number | undefined {
  return msOption(p, 'lock-timeout');
}

function owner(p: Parsed): number | 'any' | undefined {
  const v = p.values.get('owner');
  if (v === undefined || v === 'any') return v;
  if (!/^\d{1,10}$/.test(v) || Number(v) > 0xfffffffe) throw new UsageError(`--owner must be a uid or 'any', got ${JSON.stringify(v)}`);
  return Number(v);
}

function open(ctx: Ctx, name: string): UltraDictClass<unknown> {
  const lt = lockTimeout(ctx.p);
  const own = owner(ctx.p);
  // attach only, and never unlink on close: the CLI is a visitor
  return new ctx.lib.UltraDict<unknown>({
    name,
    create: false,
    autoUnlink: false,
    ...(lt === undefined ? {} : { lockTimeout: lt }),
    ...(own === undefined ? {} : { owner: own }),
  });
}

function withDict<R>(ctx: Ctx, name: string, fn: (d: UltraDictClass<unknown>) => R): R {
  const d = open(ctx, name);
  try {
    return fn(d);
  } finally {
    d.close();
  }
}

function parseKey(ctx: Ctx, raw: string): Key {
  if (!ctx.p.flags.has('number-key')) return raw;
  const n = raw.trim() === 'NaN' ? NaN : Number(raw);
  if (raw.trim() === '' || (Number.isNaN(n) && raw.trim() !== 'NaN')) throw new UsageError(`--number-key: ${JSON.stringify(raw)} is not a number`);
  return n;
}

function describeKey(k: Key): string {
  return typeof k === 'number' ? `number key ${k}` : `key ${JSON.stringify(k)}`;
}

function missingKey(d: UltraDictClass<unknown>, key: Key): KeyNotFound {
  let hint = '';
  if (typeof key === 'string' && key.trim() !== '' && d.has(Number(key))) hint = ` (the number key ${Number(key)} exists: add --number-key)`;
  if (typeof key === 'number' && d.has(String(key))) hint = ` (the string key "${key}" exists: drop --number-key)`;
  return new KeyNotFound(`no ${describeKey(key)} in ${JSON.stringify(d.name)}${hint}`);
}

/** JSON of any value the serializers can return (BigInt as a string, Map as an object, Set as an array). */
export function toJson(v: unknown, indent?: number): string {
  const s = JSON.stringify(
    v,
    (_k, x: unknown) => {
      if (typeof x === 'bigint') return x.toString();
      if (x instanceof Map) return Object.fromEntries(x);
      if (x instanceof Set) return [...x];
      if (ArrayBuffer.isView(x) && !(x instanceof DataView)) return Array.from(x as unknown as ArrayLike<number>);
      if (typeof x === 'undefined' || typeof x === 'function' || typeof x === 'symbol') return null;
      return x;
    },
    indent,
  );
  return s ?? 'null';
}

function cmdGet(ctx: Ctx): number {
  const [name, rawKey] = ctx.args as [string, string];
  const key = parseKey(ctx, rawKey);
  return withDict(ctx, name, (d) => {
    if (!d.has(key)) throw missingKey(d, key);
    const v = d.get(key);
    if (ctx.json) ctx.out(toJson({ name, key, value: v }));
    else ctx.out(typeof v === 'string' && ctx.p.flags.has('raw') ? v : toJson(v, 2));
    return EXIT.ok;
  });
}

function cmdSet(ctx: Ctx): number {
  const [name, rawKey, rawValue] = ctx.args as [string, string, string];
  const key = parseKey(ctx, rawKey);
  const text = rawValue === '-' ? readFileSync(0, 'utf8').replace(/\n$/, '') : rawValue;
  let value: unknown = text;
  if (!ctx.p.flags.has('string')) {
    try {
      value = JSON.parse(text);
    } catch {
      throw new UsageError(`VALUE is not valid JSON: ${JSON.stringify(text.length > 80 ? text.slice(0, 80) + '…' : text)} (add --string to store it as a string)`);
    }
  }
  withDict(ctx, name, (d) => d.set(key, value));
  if (ctx.json) ctx.out(toJson({ name, key, set: true }));
  return EXIT.ok;
}

function cmdDel(ctx: Ctx): number {
  const [name, rawKey] = ctx.args as [string, string];
  const key = parseKey(ctx, rawKey);
  return withDict(ctx, name, (d) => {
    if (!d.delete(key)) throw missingKey(d, key);
    if (ctx.json) ctx.out(toJson({ name, key, deleted: true }));
    return EXIT.ok;
  });
}

function cmdDump(ctx: Ctx): number {
  const [name] = ctx.args as [string];
  return withDict(ctx, name, (d) => {
    const entries = [...d.entries()];
    ctx.out(toJson(ctx.p.flags.has('entries') ? entries : Object.fromEntries(entries.map(([k, v]) => [String(k), v])), ctx.json ? undefined : 2));
    return EXIT.ok;
  });
}

function alive(pid: number): boolean {
  if (pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = -1;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[u]}`;
}

export function formatDuration(ms: number): string {
  if (!(ms >= 0)) return '-';
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, '0')}s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h${String(m % 60).padStart(2, '0')}m`;
  return `${Math.floor(h / 24)}d${String(h % 24).padStart(2, '0')}h`;
}

function table(rows: string[][], rightAligned: Set<number>): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows
    .map((r) => r.map((c, i) => (rightAligned.has(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ').trimEnd())
    .join('\n');
}

interface LsRow {
  name: string;
  tag: string;
  attachable: boolean;
  ready: boolean;
  keys: number | null;
  sharedMemoryBytes: number;
  attachedPids: number[];
  creatorPid: number;
  creatorAlive: boolean;
  createdAt: number | null;
  ageMs: number | null;
  serializer: string;
}

function countKeys(ctx: Ctx, info: DictInfo): number | null {
  if (!info.ready || !info.attachable) return null;
  try {
    return withDict(ctx, info.name, (d) => (d.stats().createdAt === info.createdAt ? d.size : null));
  } catch {
    return null; // vanished, custom serializer, corrupt: shown as "?"
  }
}

function cmdLs(ctx: Ctx): number {
  const now = Date.now();
  const infos = ctx.lib.listDicts().sort((a, b) => a.name.localeCompare(b.name) || a.createdAt - b.createdAt);
  const rows: LsRow[] = infos.map((i) => ({
    name: i.name,
    tag: i.tag,
    attachable: i.attachable,
    ready: i.ready,
    keys: countKeys(ctx, i),
    sharedMemoryBytes: i.sharedMemoryBytes,
    attachedPids: i.attachedPids.filter((p) => p !== process.pid),
    creatorPid: i.creatorPid,
    creatorAlive: alive(i.creatorPid),
    createdAt: i.createdAt || null,
    ageMs: i.createdAt ? now - i.createdAt : null,
    serializer: i.serializer,
  }));
  if (ctx.json) {
    ctx.out(JSON.stringify(rows));
    return EXIT.ok;
  }
  if (rows.length === 0) {
    ctx.out('no dicts');
    return EXIT.ok;
  }
  const lines = [['NAME', 'KEYS', 'MEMORY', 'ATTACHED', 'CREATOR', 'AGE', 'SERIALIZER']];
  for (const r of rows) {
    lines.push([
      r.name + (!r.ready ? ' (initialising)' : !r.attachable ? ' (unlinked)' : ''),
      r.keys === null ? '?' : String(r.keys),
      formatBytes(r.sharedMemoryBytes),
      r.attachedPids.length === 0 ? '-' : r.attachedPids.join(','),
      `${r.creatorPid}${r.creatorAlive ? '' : ' (dead)'}`,
      r.ageMs === null ? '-' : formatDuration(r.ageMs),
      r.serializer || '-',
    ]);
  }
  ctx.out(table(lines, new Set([1, 2])));
  return EXIT.ok;
}

async function cmdInspect(ctx: Ctx): Promise<number> {
  const [name] = ctx.args as [string];
  const info = ctx.lib.listDicts().find((i) => i.name === name && i.attachable);
  // a Redis bridge running on this dict answers on its registration socket (no ioredis needed)
  const bridge = info?.tag ? await (await import('./redis/claim.js')).bridgeOf(name, info.tag) : null;
  return withDict(ctx, name, (d) => {
    const s: UltraDictStats = d.stats();
    const now = Date.now();
    const pids = (info?.attachedPids ?? []).filter((p) => p !== process.pid);
    const lock = s.lockHolder === null ? null : { ...s.lockHolder, heldMs: s.lockHolder.since ? now - s.lockHolder.since : null };
    const report = {
      ...s,
      attached: Math.max(0, s.attached - 1), // not counting this command
      attachedPids: pids,
      tag: info?.tag ?? null,
      creatorAlive: alive(s.creatorPid),
      ageMs: now - s.createdAt,
      lockHolder: lock,
      bridge,
    };
    if (ctx.json) {
      ctx.out(JSON.stringify(report));
      return EXIT.ok;
    }
    const pct = s.streamBytesSize > 0 ? ((100 * s.streamBytesUsed) / s.streamBytesSize).toFixed(1) : '0';
    const rows: [string, string][] = [
      ['name', s.name + (s.unlinked ? ' (unlinked)' : '')],
      ['keys', String(s.keys)],
      ['serializer', s.serializer + (s.recurse ? ', recurse (nested dicts)' : '')],
      ['created', `${new Date(s.createdAt).toISOString()} (${formatDuration(report.ageMs)} ago) by pid ${s.creatorPid}${report.creatorAlive ? '' : ' (dead)'}`],
      ['attached', `${report.attached} thread(s)${pids.length ? `, pids ${pids.join(', ')}` : ''}`],
      ['lock', lock === null ? 'free' : `held by pid ${lock.pid} (thread ${lock.tid})${lock.heldMs === null ? '' : `, taken ${formatDuration(lock.heldMs)} ago`}`],
      ['lock recoveries', String(s.lockRecoveries)],
      ['change listeners', String(s.listeners)],
      ['generation', String(s.generation)],
      ['stream', `${formatBytes(s.streamBytesUsed)} of ${formatBytes(s.streamBytesSize)} used (${pct}%)`],
      ['dumps', `${s.dumps}${s.dumps ? `, last ${formatBytes(s.lastDumpBytes)}` : ''}`],
      ['bufferSize', formatBytes(s.bufferSize)],
      ['fullDumpSize', s.fullDumpSize ? formatBytes(s.fullDumpSize) : 'none (a segment per dump)'],
      ['shared memory', formatBytes(s.sharedMemoryBytes)],
      [
        'redis bridge',
        bridge === null
          ? 'none'
          : `pid ${bridge.pid} as ${bridge.origin}, stream ${String(bridge.stream)}: ${String(bridge.forwarded)} local writes forwarded, ` +
            `${String(bridge.gaps)} gaps, ${String(bridge.recovered)} keys recovered, ${String(bridge.lost)} keys lost${bridge.online === false ? ' (Redis unreachable)' : ''}`,
      ],
    ];
    const w = Math.max(...rows.map((r) => r[0].length));
    ctx.out(rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join('\n'));
    return EXIT.ok;
  });
}

function cmdRm(ctx: Ctx): number {
  const [name] = ctx.args as [string];
  const { UltraDict, listDicts } = ctx.lib;
  const users = [...new Set(listDicts().filter((i) => i.name === name).flatMap((i) => i.attachedPids))].filter((p) => p !== process.pid);
  if (users.length > 0 && !ctx.p.flags.has('force')) {
    throw new Error(`${JSON.stringify(name)} is in use by pid ${users.join(', ')}: stop them first, or add --force`);
  }
  if (!UltraDict.unlink(name)) throw new ctx.lib.NotFoundError(`no UltraDict named ${JSON.stringify(name)} exists`);
  if (ctx.json) ctx.out(toJson({ name, removed: true }));
  return EXIT.ok;
}

function cmdGc(ctx: Ctx): number {
  const raw = ctx.p.values.get('grace');
  const graceMs = raw === undefined ? undefined : Number(raw);
  if (graceMs !== undefined && !(graceMs >= 0)) throw new UsageError(`--grace must be a number of ms >= 0, got ${JSON.stringify(raw)}`);
  const removed = ctx.lib.gc({ ...(graceMs === undefined ? {} : { graceMs }), includeDetached: ctx.p.flags.has('all') });
  if (ctx.json) ctx.out(JSON.stringify(removed));
  else ctx.out(removed.length === 0 ? 'nothing to remove' : `removed ${removed.length}: ${removed.join(', ')}`);
  return EXIT.ok;
}

function time(): string {
  const d = new Date();
  const p = (n: number, w = 2): string => String(n).padStart(w, '0');
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

/** Changes buffered for printing at most; beyond, they are counted and reported as skipped. */
const MAX_PENDING = 10_000;

function changeLine(c: Change, json: boolean): string {
  if (json) {
    const o: Record<string, unknown> = { time: new Date().toISOString(), type: c.type };
    if (c.path !== undefined && c.path.length > 0) o.path = c.path;
    if (c.key !== undefined) o.key = c.key;
    if (c.type === 'set') o.value = c.value ?? null;
    return toJson(o);
  }
  const show = (k: Key): string => (typeof k === 'number' ? String(k) : JSON.stringify(k));
  const keys = [...(c.path ?? []), ...(c.key === undefined ? [] : [c.key])];
  const where = keys.length === 0 ? '' : `  ${keys.map(show).join(' > ')}`;
  const value = c.type === 'set' ? ` = ${toJson(c.value)}` : '';
  return `${time()}  ${c.type.padEnd(6)}${where}${value}`;
}

/**
 * Prints the dict's change events until Ctrl-C (the signal) or until the dict is removed by name
 * (checked every 250 ms: removal is not a change event). Output waits for a slow terminal or pipe;
 * meanwhile at most MAX_PENDING changes are kept and the rest are counted as skipped.
 */
async function cmdWatch(ctx: Ctx): Promise<number> {
  const [name] = ctx.args as [string];
  const d = open(ctx, name);
  let pending: Change[] = [];
  let skipped = 0;
  let removed = false;
  let wake: (() => void) | null = null;
  const poke = (): void => wake?.();
  const onChange = (c: Change): void => {
    if (pending.length < MAX_PENDING) pending.push(c);
    else skipped++;
    poke();
  };
  const timer = setInterval(() => {
    try {
      removed = d.stats().unlinked;
    } catch {
      removed = true; // closed under us
    }
    if (removed) poke();
  }, 250);
  d.on('change', onChange);
  ctx.signal.addEventListener('abort', poke);
  try {
    ctx.err(`watching ${JSON.stringify(name)} (${d.size} keys); Ctrl-C to stop`);
    while (!ctx.signal.aborted) {
      if (pending.length > 0) {
        const batch = pending;
        pending = [];
        for (const c of batch) await ctx.out(changeLine(c, ctx.json));
        continue;
      }
      if (skipped > 0) {
        const n = skipped;
        skipped = 0;
        await ctx.out(ctx.json ? JSON.stringify({ time: new Date().toISOString(), type: 'skipped', count: n }) : `${time()}  … ${n} changes not shown (output too slow)`);
        continue;
      }
      if (removed) {
        await ctx.out(ctx.json ? JSON.stringify({ time: new Date().toISOString(), type: 'removed' }) : `${time()}  removed  (the dict was unlinked)`);
        break;
      }
      await new Promise<void>((resolve) => (wake = resolve));
      wake = null;
    }
  } finally {
    clearInterval(timer);
    ctx.signal.removeEventListener('abort', poke);
    d.off('change', onChange);
    d.close();
  }
  return EXIT.ok;
}

/**
 * Runs a bridge until SIGINT/SIGTERM: local writes go to the Redis stream, remote ones into the
 * local dict. Prints one "ready" line on stdout once both directions run; events go to stderr.
 */
async function cmdBridge(ctx: Ctx): Promise<number> {
  const [name, url] = ctx.args as [string, string];
  if (!/^rediss?:\/\/[^/]/.test(url)) throw new UsageError(`URL must look like redis://host:port, not ${JSON.stringify(url)}`);
  const { Bridge } = await import('./redis/index.js');
  const { describeTarget } = await import('./redis/protocol.js');
  const log = (type: string, message: string): void =>
    ctx.err(ctx.json ? JSON.stringify({ time: new Date().toISOString(), type, message }) : `${time()}  ${type.padEnd(7)}  ${message}`);
  const connectTimeout = msOption(ctx.p, 'connect-timeout');
  const b = await Bridge.start({
    name,
    redis: url,
    stream: ctx.p.values.get('stream'),
    id: ctx.p.values.get('id'),
    prefix: ctx.p.values.get('prefix'),
    ...(connectTimeout === undefined ? {} : { connectTimeout }),
  });
  b.on('error', (e: Error) => log('error', e.message));
  b.on('warning', (e: Error) => log('warning', e.message));
  b.on('offline', () => log('offline', 'Redis connection lost; local writes are queued and sent on reconnect'));
  b.on('online', () => log('online', 'Redis connection back'));
  const s = b.stats();
  await ctx.out(ctx.json ? JSON.stringify({ type: 'ready', name, stream: b.stream, origin: b.origin, keys: b.dict.size, lastId: s.lastId }) : `ready: ${name} <-> ${describeTarget(url)} stream ${b.stream} as ${b.origin} (${b.dict.size} keys)`);
  if (!ctx.signal.aborted) await once(ctx.signal, 'abort');
  log('stop', 'forwarding what is left, then closing');
  await b.close();
  const st = b.stats();
  log(
    'stop',
    `closed: ${st.forwarded} local writes forwarded, ${st.applied} remote operations applied, ${st.resyncs} snapshot loads, ${st.gaps} local gaps, ` +
      `${st.recovered} keys recovered after a gap, ${st.lost} keys lost`,
  );
  return EXIT.ok;
}

// ---- help ------------------------------------------------------------------------------------

function usageLine(name: string): string {
  const c = COMMANDS[name]!;
  return `ultradict ${name}${c.args.map((a) => ` ${a}`).join('')}${c.options.filter((o) => o !== 'help').length ? ' [options]' : ''}`;
}

function optionLines(names: string[]): string {
  const rows = names.map((n) => {
    const o = OPTIONS[n]!;
    return [`${o.short ? `-${o.short}, ` : '    '}--${n}${o.value ? ` ${o.value}` : ''}`, o.help] as const;
  });
  const w = Math.max(...rows.map((r) => r[0].length));
  return rows.map(([a, b]) => `  ${a.padEnd(w)}  ${b}`).join('\n');
}

const EXIT_HELP = `Exit codes:
  0  success
  1  error (lock timeout, dict in use, corrupt segment, ...)
  2  usage error (unknown command or option, bad arguments, invalid name, VALUE not JSON)
  3  not found (no such dict, or no such key)`;

export function helpText(command?: string): string {
  if (command !== undefined && Object.hasOwn(COMMANDS, command)) {
    const c = COMMANDS[command]!;
    return `Usage: ${usageLine(command)}\n\n${c.summary[0]!.toUpperCase()}${c.summary.slice(1)}.\n${c.details}\n\nOptions:\n${optionLines(c.options)}\n\n${EXIT_HELP}\n`;
  }
  const w = Math.max(...Object.keys(COMMANDS).map((n) => usageLine(n).length));
  return `Usage: ultradict COMMAND [ARGS] [options]

Operate the ultradict dicts (shared-memory Maps) of this machine.

Commands:
${Object.keys(COMMANDS)
  .map((n) => `  ${usageLine(n).padEnd(w)}  ${COMMANDS[n]!.summary}`)
  .join('\n')}
  ultradict help [COMMAND]

Options:
${optionLines(['help', 'version', 'json'])}

Run "ultradict COMMAND --help" for the options of a command.
KEY is a string unless --number-key is given. The CLI attaches to existing dicts only (bridge creates
its dict if missing) and never removes one when it detaches (only rm and gc remove).

${EXIT_HELP}
`;
}

function version(): string {
  try {
    return (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

// ---- main ------------------------------------------------------------------------------------

export interface Io {
  /** prints a line; a promise when the output is full (wait for it before writing more) */
  out: (s: string) => void | Promise<void>;
  err: (s: string) => void;
  signal: AbortSignal;
}

/** Runs one command line; returns the exit code. */
export async function main(argv: readonly string[], io: Io): Promise<number> {
  let p: Parsed;
  let json = argv.includes('--json');
  const fail = (code: number, errCode: string, message: string): number => {
    if (json) io.err(JSON.stringify({ error: { code: errCode, message } }));
    else io.err(`ultradict: ${message}`);
    return code;
  };
  try {
    p = parseArgv(argv);
  } catch (e) {
    return fail(EXIT.usage, 'USAGE', `${(e as Error).message}\n${json ? '' : 'Run "ultradict --help" for usage.'}`.trim());
  }
  json = p.flags.has('json');
  const [command, ...args] = p.positionals;
  if (p.flags.has('version')) {
    io.out(version());
    return EXIT.ok;
  }
  if (command === undefined || command === 'help') {
    if (command === 'help' && args[0] !== undefined && !Object.hasOwn(COMMANDS, args[0])) {
      return fail(EXIT.usage, 'USAGE', `unknown command ${JSON.stringify(args[0])}`);
    }
    io.out(helpText(args[0]).trimEnd());
    return command === undefined && !p.flags.has('help') ? EXIT.usage : EXIT.ok;
  }
  if (!Object.hasOwn(COMMANDS, command)) {
    return fail(EXIT.usage, 'USAGE', `unknown command ${JSON.stringify(command)}; run "ultradict --help" for the list`);
  }
  const cmd = COMMANDS[command]!;
  if (p.flags.has('help')) {
    io.out(helpText(command).trimEnd());
    return EXIT.ok;
  }
  // --help, --version and --json are global: every command takes them
  const given = [...p.flags, ...p.values.keys()].filter((o) => o !== 'version' && o !== 'json');
  const wrong = given.find((o) => !cmd.options.includes(o));
  if (wrong !== undefined) return fail(EXIT.usage, 'USAGE', `${command} does not take --${wrong}; run "ultradict ${command} --help"`);
  if (json && p.flags.has('raw')) return fail(EXIT.usage, 'USAGE', '--raw and --json exclude each other');
  if (args.length < cmd.args.length) {
    const missing = cmd.args.slice(args.length).join(' ');
    return fail(EXIT.usage, 'USAGE', `${command} needs ${cmd.args.join(' ')}: ${missing} missing; usage: ${usageLine(command)}`);
  }
  if (args.length > cmd.args.length) {
    const extra = args.slice(cmd.args.length).map((a) => JSON.stringify(a)).join(' ');
    const hint = command === 'set' ? ' (quote a VALUE that has spaces: \'{"a": 1}\')' : '';
    return fail(
      EXIT.usage,
      'USAGE',
      `too many arguments: ${command} takes ${cmd.args.length ? cmd.args.join(' ') : 'no arguments'}, and ${extra} ${args.length - cmd.args.length === 1 ? 'is' : 'are'} left over${hint}; usage: ${usageLine(command)}`,
    );
  }
  let lib: Lib;
  try {
    lib = await import('./index.js');
  } catch (e) {
    return fail(EXIT.error, (e as { code?: string }).code ?? 'ERROR', (e as Error).message);
  }
  try {
    if (cmd.args[0] === 'NAME') {
      // names are checked before anything touches shared memory
      try {
        lib.UltraDict.exists(args[0]!);
      } catch (e) {
        if (e instanceof lib.InvalidNameError) throw new UsageError(e.message);
        throw e;
      }
    }
    return await cmd.run({ lib, args, p, json, out: io.out, err: io.err, signal: io.signal });
  } catch (e) {
    const code = (e as { code?: unknown }).code;
    const c = typeof code === 'string' ? code : 'ERROR';
    const message = (e as Error).message ?? String(e);
    if (e instanceof UsageError) return fail(EXIT.usage, 'USAGE', message);
    if (e instanceof KeyNotFound || e instanceof lib.NotFoundError) return fail(EXIT.notFound, c, message);
    return fail(EXIT.error, c, message);
  }
}

async function run(): Promise<void> {
  const ac = new AbortController();
  const stop = (): void => ac.abort();
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(EXIT.ok); // `ultradict dump x | head`
    throw e;
  });
  const code = await main(process.argv.slice(2), {
    out: (s) => (process.stdout.write(s + '\n') ? undefined : once(process.stdout, 'drain').then(() => undefined)),
    err: (s) => process.stderr.write(s + '\n'),
    signal: ac.signal,
  });
  process.off('SIGINT', stop);
  process.off('SIGTERM', stop);
  process.exitCode = code;
}

function isMain(): boolean {
  try {
    return process.argv[1] !== undefined && realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isMain()) await run();

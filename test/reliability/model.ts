// Model-based concurrency test: processes run random operations, each under the lock with a global
// sequence number kept in the dict itself; a sequential replay of the committed history must predict
// every value observed under the lock and the final contents every process holds.
//
// Every operation runs inside withLock (or a transaction) and starts by reading "__seq" and writing
// "__seq" + 1, so the sequence numbers are a total order of the committed operations. An operation that
// failed (FullDumpMemoryFullError, increment of a non-number, a transaction that threw) is logged too:
// the replay applies nothing for it, and the final comparison checks that it indeed changed nothing.

import { canon, hashStr, mix, Rng } from './lib.js';

export interface ModelProfile {
  name: string;
  bufferSize: number;
  fullDumpSize?: number;
  serializer: 'msgpack' | 'json' | 'v8';
  recurse: boolean;
  keys: number;
  maxString: number;
  /** a bounded dict ('lru'): each op logs the keys it left, the replay checks its evictions */
  maxKeys?: number;
}

export const MODEL_PROFILES: ModelProfile[] = [
  { name: 'tiny-msgpack', bufferSize: 1024, serializer: 'msgpack', recurse: false, keys: 24, maxString: 300 },
  { name: 'json', bufferSize: 2048, serializer: 'json', recurse: false, keys: 16, maxString: 800 },
  { name: 'v8', bufferSize: 1024, serializer: 'v8', recurse: false, keys: 32, maxString: 200 },
  { name: 'fixed-dump', bufferSize: 1024, fullDumpSize: 1200, serializer: 'msgpack', recurse: false, keys: 24, maxString: 1000 },
  { name: 'recurse', bufferSize: 1024, serializer: 'msgpack', recurse: true, keys: 12, maxString: 200 },
  { name: 'bounded-lru', bufferSize: 2048, serializer: 'msgpack', recurse: false, keys: 40, maxString: 100, maxKeys: 12 },
];

export type MKey = string | number;

export type MOp =
  | { kind: 'set'; key: MKey; value: unknown }
  | { kind: 'del'; key: MKey }
  | { kind: 'clear' }
  | { kind: 'batch'; items: [MKey, unknown][] }
  | { kind: 'incr'; key: MKey }
  | { kind: 'increment'; key: MKey; by: number }
  | { kind: 'compute'; key: MKey }
  | { kind: 'tx'; writes: ({ t: 'set'; key: MKey; value: unknown } | { t: 'del'; key: MKey })[]; abort: boolean }
  | { kind: 'dump' }
  | { kind: 'nset'; nkey: string; key: MKey; value: unknown }
  | { kind: 'ndel'; nkey: string; key: MKey }
  | { kind: 'nclear'; nkey: string };

function genValue(r: Rng, p: ModelProfile, i: number): unknown {
  const x = r.int(12);
  switch (x) {
    case 0:
      return r.int(1000);
    case 1:
      return r.next() * 1e6 - 5e5;
    case 2:
      return `s${i}:${'v'.repeat(r.int(p.maxString))}`;
    case 3:
      return r.chance(0.5);
    case 4:
      return null;
    case 5:
      return p.serializer === 'json' ? `u${i}` : undefined;
    case 6:
      return [i, `a${r.int(50)}`, r.int(9)];
    case 7:
      return { i, tag: `o${r.int(100)}`, list: [r.int(5), { deep: 'x'.repeat(r.int(40)) }] };
    case 8:
      return 'ünïcødé ✓ ' + '\u{1F600}'.repeat(r.int(4)) + i;
    case 9:
      return r.int(3) === 0 ? -0 : Number.NaN;
    case 10:
      return '';
    default:
      return 2 ** 40 + i;
  }
}

function genKey(r: Rng, p: ModelProfile): MKey {
  const j = r.int(p.keys);
  return j % 3 === 0 ? j : `k${j}`; // number and string keys (1 and '1' differ, as in a Map)
}

export function modelOp(seed: number, id: number, i: number, p: ModelProfile): MOp {
  const r = new Rng(mix(seed, id, i, 77));
  const x = r.next();
  if (p.recurse && x < 0.25) {
    const nkey = `n${r.int(3)}`;
    const y = r.next();
    if (y < 0.6) return { kind: 'nset', nkey, key: genKey(r, p), value: genValue(r, p, i) };
    if (y < 0.9) return { kind: 'ndel', nkey, key: genKey(r, p) };
    return { kind: 'nclear', nkey };
  }
  if (x < 0.3) return { kind: 'set', key: genKey(r, p), value: genValue(r, p, i) };
  if (x < 0.42) return { kind: 'del', key: genKey(r, p) };
  if (x < 0.44) return { kind: 'clear' };
  if (x < 0.55) {
    const n = r.range(1, 5);
    const items: [MKey, unknown][] = [];
    for (let j = 0; j < n; j++) items.push([genKey(r, p), genValue(r, p, i)]);
    return { kind: 'batch', items };
  }
  if (x < 0.63) return { kind: 'incr', key: genKey(r, p) };
  if (x < 0.71) return { kind: 'increment', key: genKey(r, p), by: r.range(-3, 7) };
  if (x < 0.79) return { kind: 'compute', key: genKey(r, p) };
  if (x < 0.97) {
    const n = r.range(1, 4);
    const writes: ({ t: 'set'; key: MKey; value: unknown } | { t: 'del'; key: MKey })[] = [];
    for (let j = 0; j < n; j++) writes.push(r.chance(0.7) ? { t: 'set', key: genKey(r, p), value: genValue(r, p, i) } : { t: 'del', key: genKey(r, p) });
    return { kind: 'tx', writes, abort: r.chance(0.25) };
  }
  return { kind: 'dump' };
}

/** compute()'s function: deterministic in the old value and the op index. */
export function computeFn(old: unknown, i: number): unknown {
  if (typeof old === 'number' && Number.isFinite(old)) return old + 10;
  if (old === undefined) return i;
  return undefined; // deletes
}

export const SEQ = '__seq';

/** The keys an op reads before writing (their values are logged as its observation). */
export function observedKeys(op: MOp): MKey[] {
  switch (op.kind) {
    case 'set':
    case 'del':
    case 'incr':
    case 'increment':
    case 'compute':
      return [op.key];
    case 'batch':
      return op.items.map(([k]) => k);
    case 'tx':
      return op.writes.map((w) => w.key);
    case 'nset':
    case 'ndel':
    case 'nclear':
      return [op.nkey];
    default:
      return [];
  }
}

/** A hash of the values of `keys` in a map-like (nested dicts as sorted listings). */
export function observe(get: (k: MKey) => unknown, keys: MKey[], size: number): string {
  return hashStr(`${size}|${keys.map((k) => canon(get(k))).join('|')}`);
}

/** One log record: op index, its sequence number (null: it did not commit), observation, error name. */
export interface LogRecord {
  i: number;
  seq: number | null;
  obs: string;
  err?: string;
  /** bounded profiles: the dict's keys once the op (and its evictions) committed, canonical and sorted */
  keys?: string[];
}

/** A plain-object form of a value as the model holds it (nested dicts are Maps). */
function isMapLike(v: unknown): v is Map<MKey, unknown> {
  return v instanceof Map;
}

function plainToNested(v: unknown, recurse: boolean): unknown {
  if (!recurse || v === null || typeof v !== 'object' || Array.isArray(v)) return v;
  if (Object.getPrototypeOf(v) !== Object.prototype && Object.getPrototypeOf(v) !== null) return v;
  const m = new Map<MKey, unknown>();
  for (const [k, x] of Object.entries(v as Record<string, unknown>)) m.set(k, plainToNested(x, recurse));
  return m;
}

/** The value a write stores, as the model sees it: what the serializer reads back. */
export function stored(v: unknown, p: ModelProfile): unknown {
  if (p.recurse) return plainToNested(v, true);
  if (p.serializer === 'json' && v !== null && typeof v === 'object') return JSON.parse(JSON.stringify(v));
  return v;
}

/**
 * Replays the committed history. Returns the final model and the problems found (a missing or
 * duplicate sequence number, an observation the model does not predict, an unexpected error).
 */
export function replay(
  seed: number,
  p: ModelProfile,
  logs: Map<number, LogRecord[]>,
): { model: Map<MKey, unknown>; problems: string[]; committed: number; failed: number; aborted: number; evicted: number; errors: Record<string, number> } {
  const problems: string[] = [];
  const all: { id: number; r: LogRecord }[] = [];
  for (const [id, log] of logs) for (const r of log) all.push({ id, r });
  const committed = all.filter((x) => x.r.seq !== null).sort((a, b) => a.r.seq! - b.r.seq!);
  for (let s = 0; s < committed.length; s++) {
    if (committed[s]!.r.seq !== s) {
      problems.push(`sequence numbers are not 0..n-1: position ${s} holds ${committed[s]!.r.seq} (a lost update under the lock)`);
      break;
    }
  }
  const m = new Map<MKey, unknown>();
  let failed = 0;
  let evicted = 0;
  const errors: Record<string, number> = {};
  for (const x of all) if (x.r.err !== undefined) errors[x.r.err] = (errors[x.r.err] ?? 0) + 1;
  for (const { id, r } of committed) {
    const op = modelOp(seed, id, r.i, p);
    const obs = observe((k) => m.get(k), observedKeys(op), m.size);
    if (obs !== r.obs && problems.length < 20) {
      problems.push(`seq ${r.seq} (process ${id} op ${r.i} ${op.kind}): observed values differ from the replay`);
    }
    if (op.kind !== 'clear') m.set(SEQ, r.seq! + 1);
    if (r.err !== undefined) {
      failed++;
      const expected =
        r.err === 'FullDumpMemoryFullError' ||
        (r.err === 'TypeError' && op.kind === 'increment' && m.has(op.key) && typeof m.get(op.key) !== 'number') ||
        (r.err === 'NotFoundError' && op.kind.startsWith('n'));
      if (!expected && problems.length < 20) problems.push(`seq ${r.seq} (process ${id} op ${r.i} ${op.kind}): unexpected ${r.err}`);
      if (p.maxKeys !== undefined) evicted += checkEvictions(m, op, r, p.maxKeys, problems);
      continue;
    }
    applyModel(m, op, r.i, p);
    if (op.kind === 'clear') m.set(SEQ, r.seq! + 1);
    if (p.maxKeys !== undefined) evicted += checkEvictions(m, op, r, p.maxKeys, problems);
  }
  const aborted = all.filter((x) => x.r.seq === null).length;
  return { model: m, problems, committed: committed.length, failed, aborted, evicted, errors };
}

/**
 * A bounded dict: the keys the op left (logged under the lock) against the model with the op applied.
 * The difference must be evictions only: keys the model had, exactly as many as the bound requires,
 * never the sequence key nor a key the op itself wrote (the least recently used go first, and the
 * dict is small enough for the writer to compare all its keys). Applies them to the model.
 */
function checkEvictions(m: Map<MKey, unknown>, op: MOp, r: LogRecord, maxKeys: number, problems: string[]): number {
  const where = `seq ${r.seq} (op ${r.i} ${op.kind})`;
  if (r.keys === undefined) {
    problems.push(`${where}: no keys logged`);
    return 0;
  }
  const left = new Set(r.keys);
  const gone = [...m.keys()].filter((k) => !left.has(canon(k)));
  const known = new Set([...m.keys()].map((k) => canon(k)));
  const appeared = r.keys.filter((k) => !known.has(k));
  const want = Math.max(0, m.size - maxKeys);
  const written = new Set<MKey>([SEQ, ...writtenKeys(op)]);
  if (problems.length < 20) {
    if (appeared.length > 0) problems.push(`${where}: keys the model does not have: ${appeared.slice(0, 4).join(', ')}`);
    if (gone.length !== want) problems.push(`${where}: ${gone.length} key(s) evicted, the bound of ${maxKeys} needs ${want}`);
    const own = gone.filter((k) => written.has(k));
    if (own.length > 0) problems.push(`${where}: evicted ${own.map((k) => canon(k)).join(', ')}, which the op had just written`);
  }
  for (const k of gone) m.delete(k);
  return gone.length;
}

/** The root keys an op writes (sets) when it commits. */
function writtenKeys(op: MOp): MKey[] {
  switch (op.kind) {
    case 'set':
    case 'incr':
    case 'increment':
    case 'compute':
      return [op.key];
    case 'batch':
      return op.items.map(([k]) => k);
    case 'tx':
      return op.writes.filter((w) => w.t === 'set').map((w) => w.key);
    default:
      return [];
  }
}

function applyModel(m: Map<MKey, unknown>, op: MOp, i: number, p: ModelProfile): void {
  switch (op.kind) {
    case 'set':
      m.set(op.key, stored(op.value, p));
      break;
    case 'del':
      m.delete(op.key);
      break;
    case 'clear':
      m.clear();
      break;
    case 'batch':
      for (const [k, v] of op.items) m.set(k, stored(v, p));
      break;
    case 'incr': {
      const v = m.get(op.key);
      m.set(op.key, (typeof v === 'number' ? v : 0) + 1);
      break;
    }
    case 'increment': {
      const v = m.get(op.key);
      m.set(op.key, ((v as number | undefined) ?? 0) + op.by);
      break;
    }
    case 'compute': {
      const next = computeFn(m.get(op.key), i);
      if (next === undefined) m.delete(op.key);
      else m.set(op.key, next);
      break;
    }
    case 'tx':
      for (const w of op.writes) {
        if (w.t === 'set') m.set(w.key, stored(w.value, p));
        else m.delete(w.key);
      }
      break;
    case 'nset':
    case 'ndel':
    case 'nclear': {
      let n = m.get(op.nkey);
      if (!isMapLike(n)) {
        n = new Map<MKey, unknown>();
        m.set(op.nkey, n);
      }
      const nm = n as Map<MKey, unknown>;
      if (op.kind === 'nset') nm.set(op.key, stored(op.value, p));
      else if (op.kind === 'ndel') nm.delete(op.key);
      else nm.clear();
      break;
    }
    case 'dump':
      break;
  }
}

// ---- the runner -----------------------------------------------------------------------------------

import { UltraDict } from '../../src/index.js';
import { Child, shmEntries, uniqueName } from '../lib/helpers.js';
import { canonEntries } from './lib.js';

export interface ModelRun {
  seed: number;
  profile: string;
  processes: number;
  ops: number;
  committed: number;
  failed: number;
  aborted: number;
  dumps: number;
  /** keys the bounded profile evicted (0 for the others) */
  evicted: number;
  errors: Record<string, number>;
  problems: string[];
}

/** One seed: `processes` processes x `ops` operations on one dict, then the replay and the comparisons. */
export async function runModelSeed(seed: number, p: ModelProfile, processes: number, ops: number): Promise<ModelRun> {
  const name = uniqueName(`model${seed}`);
  const d = new UltraDict<unknown>({
    name,
    bufferSize: p.bufferSize,
    serializer: p.serializer,
    recurse: p.recurse,
    ...(p.fullDumpSize ? { fullDumpSize: p.fullDumpSize } : {}),
    ...(p.maxKeys ? { maxKeys: p.maxKeys, evict: 'lru' as const } : {}),
  });
  const kids: Child[] = [];
  const problems: string[] = [];
  let result: ReturnType<typeof replay> | null = null;
  let dumps = 0;
  try {
    for (let id = 1; id <= processes; id++) kids.push(new Child('rel-model', { name, id, seed, ops, profile: p.name }, 900_000));
    await Promise.all(kids.map((k) => k.message('ready', 60_000)));
    for (const k of kids) k.send({ type: 'go' });
    const logs = new Map<number, LogRecord[]>();
    await Promise.all(
      kids.map(async (k, j) => {
        const m = await k.message('log', 600_000);
        logs.set(j + 1, m.log as LogRecord[]);
      }),
    );
    for (const k of kids) k.send({ type: 'verify' });
    const finals = await Promise.all(kids.map((k) => k.message('final', 60_000)));
    await Promise.all(kids.map((k) => k.done()));
    result = replay(seed, p, logs);
    problems.push(...result.problems);
    const want = canonEntries(result.model);
    d.refresh();
    const mine = canonEntries(d.data);
    const diff = (label: string, got: string[]): void => {
      if (got.join('\n') === want.join('\n')) return;
      const missing = want.filter((x) => !got.includes(x)).slice(0, 4);
      const extra = got.filter((x) => !want.includes(x)).slice(0, 4);
      problems.push(`${label} differs from the replay: missing ${JSON.stringify(missing).slice(0, 400)}, extra ${JSON.stringify(extra).slice(0, 400)}`);
    };
    finals.forEach((f, j) => diff(`process ${j + 1}`, f.entries as string[]));
    diff('the creator', mine);
    const fresh = new UltraDict<unknown>({ name, create: false });
    try {
      diff('a fresh handle', canonEntries(fresh.data));
    } finally {
      fresh.close();
    }
    dumps = d.stats().dumps;
  } catch (e) {
    problems.push(`run failed: ${(e as Error).stack ?? e}`);
  } finally {
    for (const k of kids) k.proc.kill('SIGKILL');
    await Promise.all(kids.map((k) => k.exited));
    d.close();
    if (shmEntries(name).length > 0) {
      problems.push(`segments left: ${shmEntries(name).join(' ')}`);
      UltraDict.unlink(name);
    }
  }
  return {
    seed,
    profile: p.name,
    processes,
    ops,
    committed: result?.committed ?? 0,
    failed: result?.failed ?? 0,
    aborted: result?.aborted ?? 0,
    dumps,
    evicted: result?.evicted ?? 0,
    errors: result?.errors ?? {},
    problems: problems.map((x) => `[seed ${seed} profile ${p.name}; reproduce: ULTRADICT_SEED=${seed} ULTRADICT_MODEL_SEEDS=1 npm run reliability:model] ${x}`),
  };
}

/** Seeds seedBase.. with the profiles in turn. */
export async function runModel(opts: { seeds: number; seedBase: number; processes: number; ops: number; log?: (s: string) => void }): Promise<ModelRun[]> {
  const runs: ModelRun[] = [];
  for (let s = 0; s < opts.seeds; s++) {
    const seed = opts.seedBase + s;
    const p = MODEL_PROFILES[seed % MODEL_PROFILES.length]!;
    const t = Date.now();
    const r = await runModelSeed(seed, p, opts.processes, opts.ops);
    runs.push(r);
    opts.log?.(
      `seed ${seed} ${p.name}: ${Date.now() - t} ms, ${r.committed} committed, ${r.failed} failed as expected, ${r.aborted} rolled back, ${r.dumps} dumps, errors ${JSON.stringify(r.errors)}` +
        (r.problems.length > 0 ? `\n  PROBLEMS:\n  ${r.problems.join('\n  ')}` : ''),
    );
  }
  return runs;
}

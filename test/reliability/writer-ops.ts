// The kill matrix's writer workload: a deterministic op sequence per (seed, writer id), its model, and the check.
//
// Writer `id` only touches keys "w<id>.*", so its part of the final state is a function of how many of its
// operations took effect. Operation i is acknowledged once it returned (see AckWriter). After a SIGKILL the
// dict must hold exactly the state after ops 1..acked, or after 1..acked+1 (the op in flight when the
// kill came may or may not have been published), or, for the one non-atomic op kind (two sets under
// withLock), the state after its first set. Anything else is a lost or torn write.

import { canon, mix, Rng } from './lib.js';

export type OpKind = 'set' | 'batch' | 'del' | 'pair' | 'incr' | 'dump';

export interface WriterOp {
  kind: OpKind;
  keys: string[];
  value: string;
}

export interface Profile {
  /** name shown in reports */
  name: string;
  bufferSize: number;
  /** keys per writer */
  keys: number;
  /** value length range */
  minValue: number;
  maxValue: number;
  /** probability of an explicit dump() */
  dumpRate: number;
  /** number of static entries written by the parent first (a big dump to load on attach) */
  staticEntries: number;
  staticValue: number;
}

export const PROFILES: Record<string, Profile> = {
  writes: { name: 'writes', bufferSize: 1 << 16, keys: 64, minValue: 1, maxValue: 64, dumpRate: 0, staticEntries: 0, staticValue: 0 },
  dumps: { name: 'dumps', bufferSize: 1024, keys: 12, minValue: 200, maxValue: 3000, dumpRate: 0.05, staticEntries: 0, staticValue: 0 },
  bigdump: { name: 'bigdump', bufferSize: 1024, keys: 16, minValue: 10, maxValue: 400, dumpRate: 0.2, staticEntries: 3000, staticValue: 100 },
  bigframes: { name: 'bigframes', bufferSize: 4 << 20, keys: 8, minValue: 50_000, maxValue: 400_000, dumpRate: 0, staticEntries: 0, staticValue: 0 },
  attach: { name: 'attach', bufferSize: 1 << 20, keys: 32, minValue: 1, maxValue: 200, dumpRate: 0, staticEntries: 40000, staticValue: 60 },
};

export function writerOp(seed: number, id: number, i: number, p: Profile): WriterOp {
  const r = new Rng(mix(seed, id, i));
  const key = (): string => `w${id}.${r.int(p.keys)}`;
  const value = `${id}:${i}:${'x'.repeat(r.range(p.minValue, p.maxValue))}`;
  if (p.dumpRate > 0 && r.chance(p.dumpRate)) return { kind: 'dump', keys: [], value };
  const x = r.next();
  if (x < 0.4) return { kind: 'set', keys: [key()], value };
  if (x < 0.6) return { kind: 'batch', keys: [key(), key(), key()], value };
  if (x < 0.72) return { kind: 'del', keys: [key()], value };
  if (x < 0.86) return { kind: 'pair', keys: [key(), key()], value };
  return { kind: 'incr', keys: [`w${id}.n`], value };
}

/** Minimal dict surface the writer needs (UltraDict satisfies it). */
export interface WritableDict {
  get(k: string): unknown;
  set(k: string, v: unknown): unknown;
  delete(k: string): boolean;
  update(items: Iterable<readonly [string, unknown]>): unknown;
  withLock<R>(fn: () => R): R;
  dump(): void;
}

export function applyToDict(d: WritableDict, op: WriterOp): void {
  switch (op.kind) {
    case 'set':
      d.set(op.keys[0]!, op.value);
      break;
    case 'batch':
      d.update(op.keys.map((k) => [k, op.value] as const));
      break;
    case 'del':
      d.delete(op.keys[0]!);
      break;
    case 'pair':
      d.withLock(() => {
        d.set(op.keys[0]!, op.value);
        d.set(op.keys[1]!, op.value);
      });
      break;
    case 'incr':
      d.withLock(() => d.set(op.keys[0]!, ((d.get(op.keys[0]!) as number | undefined) ?? 0) + 1));
      break;
    case 'dump':
      d.dump();
      break;
  }
}

/** Applies op to a model map; `partial` stops a pair after its first set (the kill came in between). */
export function applyToModel(m: Map<string, unknown>, op: WriterOp, partial = false): void {
  switch (op.kind) {
    case 'set':
      m.set(op.keys[0]!, op.value);
      break;
    case 'batch':
      for (const k of op.keys) m.set(k, op.value);
      break;
    case 'del':
      m.delete(op.keys[0]!);
      break;
    case 'pair':
      m.set(op.keys[0]!, op.value);
      if (!partial) m.set(op.keys[1]!, op.value);
      break;
    case 'incr':
      m.set(op.keys[0]!, ((m.get(op.keys[0]!) as number | undefined) ?? 0) + 1);
      break;
    case 'dump':
      break;
  }
}

function listing(m: Map<string, unknown>): string {
  return [...m]
    .map(([k, v]) => `${k}=${canon(v)}`)
    .sort()
    .join('\n');
}

export interface WriterCheck {
  ok: boolean;
  /** which acceptable state matched: 'acked', 'acked+1', 'acked+1/partial' */
  matched: string | null;
  /** acknowledged ops whose effect is missing (0 when ok) */
  lost: number;
  detail: string;
}

/**
 * Compares the keys "w<id>.*" of `actual` with the acceptable states after `acked` acknowledged ops.
 */
export function checkWriter(seed: number, id: number, acked: number, p: Profile, actual: ReadonlyMap<string | number, unknown>): WriterCheck {
  const prefix = `w${id}.`;
  const mine = new Map<string, unknown>();
  for (const [k, v] of actual) if (typeof k === 'string' && k.startsWith(prefix)) mine.set(k, v);
  const got = listing(mine);
  const model = new Map<string, unknown>();
  for (let i = 1; i <= acked; i++) applyToModel(model, writerOp(seed, id, i, p));
  if (listing(model) === got) return { ok: true, matched: 'acked', lost: 0, detail: '' };
  const next = writerOp(seed, id, acked + 1, p);
  if (next.kind === 'pair') {
    const part = new Map(model);
    applyToModel(part, next, true);
    if (listing(part) === got) return { ok: true, matched: 'acked+1/partial', lost: 0, detail: '' };
  }
  const full = new Map(model);
  applyToModel(full, next);
  if (listing(full) === got) return { ok: true, matched: 'acked+1', lost: 0, detail: '' };
  // how far back does the actual state go? (the number of acknowledged ops lost)
  let lost = acked;
  const m2 = new Map<string, unknown>();
  if (listing(m2) === got) lost = acked;
  for (let j = 1; j <= acked; j++) {
    applyToModel(m2, writerOp(seed, id, j, p));
    if (listing(m2) === got) lost = acked - j;
  }
  const want = listing(model).split('\n');
  const have = got.split('\n');
  const missing = want.filter((x) => !have.includes(x)).slice(0, 5);
  const extra = have.filter((x) => !want.includes(x)).slice(0, 5);
  return {
    ok: false,
    matched: null,
    lost: Math.max(lost, 1),
    detail: `writer ${id} acked ${acked} (next op ${next.kind}): missing ${JSON.stringify(missing).slice(0, 600)} extra ${JSON.stringify(extra).slice(0, 600)}`,
  };
}

// The Map behaviour UltraDict and RedisDict share, written once: accepted items, iteration snapshots,
// toJSON, and the steps of compute/increment/getOrInsert that each runs in its own atomic scope.

import { describe, isPlainObject, isThenable } from './args.js';
import type { Key } from './codec/ops.js';
import { plain, setOwn } from './codec/tree.js';

/** Items to write: a Map, an iterable of [key, value] pairs, or a plain object. */
export type Initial<V> = Iterable<readonly [Key, V]> | Record<string, V> | ReadonlyMap<Key, V>;

/** The [key, value] pairs of items (keys still to be checked); a TypeError naming `what` for anything else. */
export function entriesOf<V>(items: Initial<V>, what: string): Iterable<readonly [unknown, V]> {
  if (items instanceof Map) return items as ReadonlyMap<Key, V>;
  if (isPlainObject(items)) return Object.entries(items) as [string, V][];
  if (items !== null && typeof items === 'object' && typeof (items as Iterable<unknown>)[Symbol.iterator] === 'function') {
    return pairsOf(items as Iterable<unknown>, what) as Iterable<readonly [Key, V]>;
  }
  throw new TypeError(`${what} must be a plain object, a Map or an iterable of [key, value] pairs, got ${describe(items)}`);
}

/** The items of an iterable, each checked to be a [key, value] pair (else a TypeError naming the item). */
function* pairsOf(items: Iterable<unknown>, what: string): Generator<unknown> {
  let i = 0;
  for (const p of items) {
    if (p === null || typeof p !== 'object' || typeof (p as Iterable<unknown>)[Symbol.iterator] !== 'function') {
      throw new TypeError(`${what}: item [${i}] must be a [key, value] pair, got ${describe(p)}`);
    }
    i++;
    yield p;
  }
}

/** The Map methods both dicts run against their own get/set/delete (inside their own atomic scope). */
export interface MapLike<V> {
  get(key: Key): V | undefined;
  has(key: Key): boolean;
  set(key: Key, value: V): unknown;
  delete(key: Key): boolean;
}

/** compute's step: writes fn(old), or deletes the key when fn returns undefined; returns the new value. */
export function computeStep<V>(d: MapLike<V>, key: Key, fn: (old: V | undefined) => V | undefined): V | undefined {
  const next = fn(d.get(key));
  if (isThenable(next)) {
    throw new TypeError(
      'compute(key, fn): fn returned a Promise; fn must be synchronous: the update is atomic and cannot cover awaited work. ' +
        'Await the new value first, then set it (or compute it from values you already have).',
    );
  }
  if (next === undefined) d.delete(key);
  else d.set(key, next);
  return next;
}

/** Checks increment's `by` before anything is locked or sent. */
export function checkIncrement(by: unknown): asserts by is number {
  if (typeof by !== 'number' || !Number.isFinite(by)) throw new TypeError(`increment(key, by): by must be a finite number, got ${describe(by)}`);
}

/** increment's step: adds `by` to the number at key (missing counts as 0); returns the new value. */
export function incrementStep<V>(d: MapLike<V>, key: Key, by: number): number {
  const old = d.get(key) ?? 0;
  if (typeof old !== 'number') throw new TypeError(`increment: the value at ${JSON.stringify(key)} is ${describe(old)}, not a number`);
  const next = old + by;
  d.set(key, next as V);
  return next;
}

/** getOrInsert's step (Map.prototype.getOrInsert, ES2026): the value at key, after writing `make(key)` if absent. */
export function getOrInsertStep<V>(d: MapLike<V>, key: Key, make: (key: Key) => V): V {
  if (!d.has(key)) {
    const v = make(key);
    if (isThenable(v)) throw new TypeError('getOrInsertComputed(key, fn): fn returned a Promise; fn must be synchronous');
    d.set(key, v);
  }
  return d.get(key) as V;
}

/** Checks getOrInsertComputed's callback. */
export function checkCallback(fn: unknown, where: string): asserts fn is (...args: never[]) => unknown {
  if (typeof fn !== 'function') throw new TypeError(`${where}: fn must be a function, got ${describe(fn)}`);
}

/** The contents of a local map as a plain object (nested dicts as plain objects): what toJSON() returns. */
export function toPlainObject(m: ReadonlyMap<Key, unknown> | undefined): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  if (m !== undefined) for (const [k, v] of m) setOwn(o, String(k), plain(v));
  return o;
}

/** A snapshot of a local map's entries, values mapped by `out` (a write during iteration does not affect it). */
export function entryList<V>(m: ReadonlyMap<Key, unknown> | undefined, out: (k: Key, v: unknown) => V): MapIterator<[Key, V]> {
  const list: [Key, V][] = [];
  if (m !== undefined) for (const [k, v] of m) list.push([k, out(k, v)]);
  return list[Symbol.iterator]() as unknown as MapIterator<[Key, V]>;
}

/** A snapshot of a local map's values, mapped by `out`. */
export function valueList<V>(m: ReadonlyMap<Key, unknown> | undefined, out: (k: Key, v: unknown) => V): MapIterator<V> {
  const list: V[] = [];
  if (m !== undefined) for (const [k, v] of m) list.push(out(k, v));
  return list[Symbol.iterator]() as unknown as MapIterator<V>;
}

/** A snapshot of a local map's keys. */
export function keyList(m: ReadonlyMap<Key, unknown> | undefined): MapIterator<Key> {
  return (m === undefined ? [] : Array.from(m.keys()))[Symbol.iterator]() as unknown as MapIterator<Key>;
}

/** forEach over a dict's entries, checked like Map's. */
export function forEachEntry<V>(d: Map<Key, V>, fn: unknown, thisArg: unknown): void {
  if (typeof fn !== 'function') throw new TypeError(`forEach(fn): fn must be a function, got ${describe(fn)}`);
  for (const [k, v] of d.entries()) (fn as (value: V, key: Key, map: Map<Key, V>) => void).call(thisArg, v, k, d);
}

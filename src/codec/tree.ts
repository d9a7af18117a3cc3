// The local copy of a dict: a tree of Maps (nested dicts are read-only Node maps), operations applied to
// it with undo records, and the frozen plain views of it given to users.

import { OP_CLEAR, OP_DELETE, OP_EVICTED, OP_EXPIRE, OP_EXPIRED, OP_NOTE, OP_SET, type Key, type Op, type Path } from './ops.js';

const mapSet = Map.prototype.set;
const mapDelete = Map.prototype.delete;
const mapClear = Map.prototype.clear;

/**
 * A nested dict in the local copy. Read-only from outside (it can be reached through `dict.data`):
 * only the dict itself changes it, through the n* methods.
 */
export class Node extends Map<Key, unknown> {
  override set(_k: Key, _v: unknown): this {
    throw new TypeError('nested dicts in dict.data are read-only: write through the dict');
  }
  override delete(_k: Key): boolean {
    throw new TypeError('nested dicts in dict.data are read-only: write through the dict');
  }
  override clear(): void {
    throw new TypeError('nested dicts in dict.data are read-only: write through the dict');
  }
}

/** A frozen plain-object snapshot of a nested dict (for events, toJSON and inspection); other values as they are. */
export function plain(v: unknown): unknown {
  if (!(v instanceof Node)) return v;
  const o: Record<string, unknown> = {};
  for (const [k, x] of v) setOwn(o, String(k), plain(x));
  return Object.freeze(o);
}

/**
 * o[k] = v as an own data property, also for k = '__proto__' (an assignment would set the prototype
 * instead, and the key would be lost).
 */
export function setOwn(o: Record<string, unknown>, k: string, v: unknown): void {
  if (k === '__proto__') Object.defineProperty(o, k, { value: v, writable: true, enumerable: true, configurable: true });
  else o[k] = v;
}

/** The map at `path` below root (null or []: the root), or undefined if it does not exist (or is not a dict). */
export function targetOf(root: Map<Key, unknown>, path: Path | null | undefined): Map<Key, unknown> | undefined {
  let m = root;
  if (path == null) return m;
  for (const k of path) {
    const x = m.get(k);
    if (!(x instanceof Node)) return undefined;
    m = x;
  }
  return m;
}

/** Applies one decoded op to a tree of maps; false (nothing changed) if its nested dict does not exist. */
export function applyOp(root: Map<Key, unknown>, o: Op): boolean {
  if (o.op === OP_NOTE || o.op === OP_EXPIRE) return true; // an EXPIRE changes the engine's deadlines, not the tree
  const m = targetOf(root, o.path);
  if (m === undefined) return false;
  if (o.op === OP_SET) nSet(m, o.key!, o.value);
  else if (o.op === OP_DELETE || o.op === OP_EXPIRED || o.op === OP_EVICTED) nDelete(m, o.key!);
  else nClear(m);
  return true;
}

/** What undoes one applied op: the key's old value, or every entry of a cleared map. */
export interface Undo {
  m: Map<Key, unknown>;
  k: Key | undefined;
  had: boolean;
  old: unknown;
  entries?: [Key, unknown][];
  /** undoes what the op changed outside the tree (a key's deadline); then the fields above are unused */
  restore?: () => void;
}

/**
 * Applies one op to a tree of maps and records how to undo it; false (nothing changed) if its nested
 * dict does not exist. NOTE ops change nothing.
 */
export function applyWithUndo(root: Map<Key, unknown>, o: Op, undo: Undo[]): boolean {
  if (o.op === OP_NOTE || o.op === OP_EXPIRE) return true;
  const m = targetOf(root, o.path);
  if (m === undefined) return false;
  if (o.op === OP_CLEAR) {
    undo.push({ m, k: undefined, had: false, old: undefined, entries: [...m] });
    nClear(m);
    return true;
  }
  const k = o.key!;
  undo.push({ m, k, had: m.has(k), old: m.get(k) });
  if (o.op === OP_SET) nSet(m, k, o.value);
  else nDelete(m, k);
  return true;
}

/** Undoes the ops recorded after undo[downTo], newest first, and drops their records. */
export function undoAll(undo: Undo[], downTo = 0): void {
  for (let i = undo.length - 1; i >= downTo; i--) {
    const u = undo[i]!;
    if (u.restore !== undefined) {
      u.restore();
    } else if (u.entries !== undefined) {
      nClear(u.m);
      for (const [k, v] of u.entries) nSet(u.m, k, v);
    } else if (u.had) {
      nSet(u.m, u.k!, u.old);
    } else {
      nDelete(u.m, u.k!);
    }
  }
  undo.length = downTo;
}

/** Writes to a local map that may be a Node. */
export function nSet(m: Map<Key, unknown>, k: Key, v: unknown): void {
  mapSet.call(m, k, v);
}
export function nDelete(m: Map<Key, unknown>, k: Key): boolean {
  return mapDelete.call(m, k);
}
export function nClear(m: Map<Key, unknown>): void {
  mapClear.call(m);
}

/** Deep-freezes plain objects and arrays of a value read from the dict, so in-place mutation fails loudly. */
export function freezeValue<T>(v: T): T {
  if (typeof v !== 'object' || v === null || Object.isFrozen(v) || v instanceof Node) return v;
  if (ArrayBuffer.isView(v)) return v; // typed arrays cannot be frozen
  Object.freeze(v);
  if (v instanceof Map) {
    for (const x of v.values()) freezeValue(x);
  } else if (v instanceof Set) {
    for (const x of v) freezeValue(x);
  } else if (Array.isArray(v)) {
    for (const x of v) freezeValue(x);
  } else {
    for (const k of Object.keys(v)) freezeValue((v as Record<string, unknown>)[k]);
  }
  return v;
}

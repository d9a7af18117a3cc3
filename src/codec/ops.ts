// Operations on a dict, the one currency of the engine, the codec and replication: keys, operation
// codes, the Op shape and the Change that listeners receive.

export type Key = string | number;

export const OP_SET = 1;
export const OP_DELETE = 2;
export const OP_CLEAR = 3;
export const OP_BATCH = 4;
/** A SET/DELETE/CLEAR inside a nested dict: u8 depth, depth keys, then the operation. */
export const OP_IN = 5;
/** An annotation that changes nothing: a string key (the Redis bridge marks the frames it writes). Only inside a batch. */
export const OP_NOTE = 6;
/** Sets (f64 > 0) or removes (0) the absolute deadline (ms since the epoch) of an existing root key: key, f64. */
export const OP_EXPIRE = 7;
/** Deletes a root key because its deadline passed (published by a writer; listeners get an 'expire' change): key. */
export const OP_EXPIRED = 8;
/** Deletes a root key to keep the dict within its bounds (the writer chose it; listeners get an 'evict' change): key. */
export const OP_EVICTED = 9;
// 10-15 are reserved for per-key metadata of eviction

/** Whether an applied op is reported to listeners (EXPIRE and NOTE change no entry). */
export function isChange(op: number): boolean {
  return op !== OP_EXPIRE && op !== OP_NOTE;
}

/** Deepest nesting of dicts (and of IN paths) that is encoded or accepted. */
export const MAX_DEPTH = 64;

export type Path = readonly Key[];

/**
 * One operation: SET, DELETE or CLEAR (or NOTE inside a batch) at a path (null: the root). What a write
 * is before it is encoded and what a decoded frame yields (batches flattened); values are local copies.
 */
export interface Op {
  op: number;
  /** absent (undefined) for CLEAR */
  key: Key | undefined;
  /** SET: the value; EXPIRE: the deadline (ms since the epoch, 0: none) */
  value: unknown;
  path: Path | null;
}

/** A change to the dict, as delivered to 'change' listeners. */
export interface Change {
  type: 'set' | 'delete' | 'clear' | 'reload' | 'expire' | 'evict';
  /** the key set, deleted, expired or evicted (absent for clear and reload) */
  key?: Key;
  /** the new value (set only); nested dicts are given as frozen plain objects */
  value?: unknown;
  /** keys of the nested dict the change happened in (absent or empty: the root) */
  path?: Key[];
}

/** The change listeners see for an applied operation. */
export function changeOf(o: Op): Change {
  const c: Change =
    o.op === OP_SET
      ? { type: 'set', key: o.key!, value: o.value }
      : o.op === OP_DELETE
        ? { type: 'delete', key: o.key! }
        : o.op === OP_EXPIRED
          ? { type: 'expire', key: o.key! }
          : o.op === OP_EVICTED
            ? { type: 'evict', key: o.key! }
            : { type: 'clear' };
  if (o.path) c.path = [...o.path];
  return c;
}

export function checkKey(key: unknown): asserts key is Key {
  if (typeof key === 'number') return;
  if (typeof key === 'string') {
    if (!key.isWellFormed()) throw new TypeError('string keys must be well-formed UTF-16 (no lone surrogates)');
    return;
  }
  throw new TypeError(`UltraDict keys must be strings or numbers, got ${key === null ? 'null' : typeof key}`);
}

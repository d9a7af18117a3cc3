// Value serializers: the built-in msgpack (default), json and v8 ones, custom ones, and the check for unserializable values.

import { Packr } from 'msgpackr';
import { types } from 'node:util';
import * as v8 from 'node:v8';
import { SerializationError } from '../errors.js';

/** A serializer turns one value into bytes and back. Every process of a dict must use the same one. */
export interface Serializer {
  /** Recorded in shared memory; attaching with another name is a ParameterMismatchError. */
  readonly name: string;
  serialize(value: unknown): Uint8Array;
  deserialize(bytes: Uint8Array): unknown;
}

export type BuiltinSerializerName = 'msgpack' | 'json' | 'v8';
export type SerializerOption = BuiltinSerializerName | Serializer;

// records (shared shapes) for objects, Map/Set/Date/BigInt/typed arrays/Buffer/undefined preserved;
// no structuredClone: it doubles the cost of packing, and cyclic values are refused before packing
const packr = new Packr({ moreTypes: true, int64AsType: 'bigint', useRecords: true });

// msgpackr renames every key '__proto__' to '__proto_' when it decodes an object. A value with such a
// key is packed with its keys escaped ('__proto__' -> '\0', a key starting with '\0' gets one more) after
// a 0xc1 byte (never used by msgpack), and unescaped after unpacking. Other values are unchanged.
const ESCAPED = 0xc1;

const msgpack: Serializer = {
  name: 'msgpack',
  serialize(value) {
    if (!assertSerializable(value, 'msgpack')) return packr.pack(value);
    const body = packr.pack(escapeKeys(value));
    const out = Buffer.allocUnsafe(body.length + 1); // a Buffer, like packr.pack's result
    out[0] = ESCAPED;
    out.set(body, 1);
    return out;
  },
  deserialize(bytes) {
    // msgpack has one binary type: msgpackr decodes it as a Buffer from a Buffer source and as a
    // Uint8Array otherwise (a Uint8Array itself is an extension with moreTypes), so a Buffer source
    // keeps a Buffer a Buffer whatever the bytes came from (a frame, a dump, this process's encoder)
    const b = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    if (b[0] !== ESCAPED) return packr.unpack(b);
    return unescapeKeys(packr.unpack(b.subarray(1)));
  },
};

/** Objects and arrays that are walked into by escapeKeys/unescapeKeys (the rest are values as they are). */
function isLeaf(o: object): boolean {
  return ArrayBuffer.isView(o) || o instanceof ArrayBuffer || o instanceof Date || o instanceof RegExp || o instanceof Error;
}

function escapeKeys(v: unknown): unknown {
  if (v === null || typeof v !== 'object' || isLeaf(v)) return v;
  if (Array.isArray(v)) return v.map(escapeKeys);
  if (v instanceof Map) return new Map([...v].map(([k, x]) => [escapeKeys(k), escapeKeys(x)]));
  if (v instanceof Set) return new Set([...v].map(escapeKeys));
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(v)) {
    out[k === '__proto__' ? '\0' : k.charCodeAt(0) === 0 ? '\0' + k : k] = escapeKeys((v as Record<string, unknown>)[k]);
  }
  return out;
}

function unescapeKeys(v: unknown): unknown {
  if (v === null || typeof v !== 'object' || isLeaf(v)) return v;
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) v[i] = unescapeKeys(v[i]);
    return v;
  }
  if (v instanceof Map) return new Map([...v].map(([k, x]) => [unescapeKeys(k), unescapeKeys(x)]));
  if (v instanceof Set) return new Set([...v].map(unescapeKeys));
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(v)) {
    const x = unescapeKeys((v as Record<string, unknown>)[k]);
    if (k === '\0') Object.defineProperty(out, '__proto__', { value: x, writable: true, enumerable: true, configurable: true });
    else out[k.charCodeAt(0) === 0 ? k.slice(1) : k] = x;
  }
  return out;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const json: Serializer = {
  name: 'json',
  serialize(value) {
    assertSerializable(value, 'json');
    const s = JSON.stringify(value);
    if (s === undefined) throw new SerializationError(`value of type ${typeof value} has no JSON representation`);
    return encoder.encode(s);
  },
  deserialize(bytes) {
    return JSON.parse(decoder.decode(bytes));
  },
};

const v8s: Serializer = {
  name: 'v8',
  serialize(value) {
    try {
      return v8.serialize(value);
    } catch (e) {
      assertSerializable(value, 'v8'); // names the path of what v8 refuses, if it is one of ours
      throw new SerializationError(`value cannot be serialized with v8.serialize: ${(e as Error).message}`, { cause: e });
    }
  },
  deserialize(bytes) {
    return v8.deserialize(bytes);
  },
};

export const builtinSerializers: Record<BuiltinSerializerName, Serializer> = { msgpack, json, v8: v8s };

export function resolveSerializer(option: SerializerOption): Serializer {
  if (typeof option === 'string') {
    const s = builtinSerializers[option as BuiltinSerializerName];
    if (!s || !Object.hasOwn(builtinSerializers, option)) {
      throw new TypeError(`unknown serializer ${JSON.stringify(option)}: use 'msgpack', 'json', 'v8' or an object`);
    }
    return s;
  }
  if (
    option === null ||
    typeof option !== 'object' ||
    typeof option.serialize !== 'function' ||
    typeof option.deserialize !== 'function' ||
    typeof option.name !== 'string' ||
    option.name.length === 0 ||
    option.name.length > 60 ||
    !/^[\x20-\x7e]+$/.test(option.name)
  ) {
    throw new TypeError('serializer must be a name or { name (1-60 printable ASCII), serialize(value), deserialize(bytes) }');
  }
  if (Object.hasOwn(builtinSerializers, option.name)) {
    throw new TypeError(`a custom serializer may not use the built-in name ${JSON.stringify(option.name)}`);
  }
  return option;
}

/**
 * What structuredClone refuses and the built-in serializers would store as {} (msgpack, json) or
 * refuse without saying where (v8): the name of its type, or null. Only called for objects that are
 * not plain objects or arrays, so plain data pays nothing for it.
 */
function uncloneable(o: object): string | null {
  if (types.isPromise(o)) return 'Promise';
  if (types.isWeakMap(o)) return 'WeakMap';
  if (types.isWeakSet(o)) return 'WeakSet';
  if (types.isGeneratorObject(o)) return 'generator';
  if (types.isSymbolObject(o)) return 'Symbol object';
  const tag = Object.prototype.toString.call(o);
  if (tag === '[object WeakRef]') return 'WeakRef';
  if (tag === '[object FinalizationRegistry]') return 'FinalizationRegistry';
  return null;
}

/**
 * Throws SerializationError, naming the path, for what the built-in serializer would drop or mangle
 * silently: functions, symbols and what structuredClone refuses (Promise, WeakMap, WeakSet, WeakRef,
 * FinalizationRegistry, generators) anywhere, and for json also BigInt, Map, Set and typed arrays.
 * For v8 (which refuses these itself, without a path) it is called after v8 failed, to name the path.
 * Class instances are stored as plain objects of their own enumerable properties, as structuredClone
 * copies them.
 * (Symbol-keyed properties are ignored, as JSON.stringify does.) The path of the offending value is
 * only built when there is one: the walk itself allocates nothing but a stack of keys. Returns whether
 * an object in the value has an own property named '__proto__'.
 */
export function assertSerializable(value: unknown, kind: 'msgpack' | 'json' | 'v8'): boolean {
  const json = kind === 'json';
  let protoKey = false;
  const path: unknown[] = [];
  let seen: Set<object> | null = null;
  const where = (): string => {
    const shown = path.length > 12 ? [...path.slice(0, 12), '…'] : path;
    return 'value' + shown.map((k) => (typeof k === 'number' ? `[${k}]` : typeof k === 'string' ? `.${k}` : `<${String(k)}>`)).join('');
  };
  const fail = (what: string): never => {
    throw new SerializationError(`${what} (at ${where()})`);
  };
  const visit = (v: unknown, depth: number): void => {
    const t = typeof v;
    if (t !== 'object') {
      if (t === 'function' || t === 'symbol') fail(`cannot store a ${t}: values must be data, not code`);
      if (t === 'bigint' && json) fail("the json serializer cannot store a BigInt; use 'msgpack' or 'v8'");
      return;
    }
    if (v === null) return;
    const o = v as object;
    if (depth > 64) {
      // deep structures may be cyclic: only then pay for a set of visited objects (a cycle is walked
      // round until the set sees an object again)
      seen ??= new Set();
      if (seen.has(o)) {
        if (kind === 'v8') return; // v8 stores cycles
        fail(`the ${kind} serializer cannot store a cyclic structure; use 'v8'`);
      }
      seen.add(o);
      if (depth > 10_000) fail('nested too deeply');
    }
    if (Array.isArray(o)) {
      for (let i = 0; i < o.length; i++) {
        const x = o[i];
        if (typeof x === 'object' || typeof x === 'function' || typeof x === 'symbol' || (json && typeof x === 'bigint')) {
          path.push(i);
          visit(x, depth + 1);
          path.pop();
        }
      }
      return;
    }
    if (ArrayBuffer.isView(o) || o instanceof ArrayBuffer) {
      if (json) fail("the json serializer cannot store binary data; use 'msgpack' or 'v8'");
      return;
    }
    if (o instanceof Date || o instanceof RegExp) return;
    if (o instanceof Map) {
      if (json) fail("the json serializer cannot store a Map; use 'msgpack' or 'v8'");
      for (const [k, x] of o) {
        path.push(k);
        visit(k, depth + 1);
        visit(x, depth + 1);
        path.pop();
      }
      return;
    }
    if (o instanceof Set) {
      if (json) fail("the json serializer cannot store a Set; use 'msgpack' or 'v8'");
      for (const x of o) visit(x, depth + 1);
      return;
    }
    const proto = Object.getPrototypeOf(o);
    if (proto !== Object.prototype && proto !== null) {
      const what = uncloneable(o);
      if (what !== null) fail(`cannot store a ${what}: it is not data (structuredClone refuses it too)`);
    }
    if (json && typeof (o as { toJSON?: unknown }).toJSON === 'function') return;
    for (const k in o) {
      if (!Object.hasOwn(o, k)) continue;
      if (k === '__proto__') protoKey = true;
      const x = (o as Record<string, unknown>)[k];
      if (typeof x === 'object' || typeof x === 'function' || typeof x === 'symbol' || (json && typeof x === 'bigint')) {
        path.push(k);
        visit(x, depth + 1);
        path.pop();
      }
    }
  };
  visit(value, 0);
  return protoKey;
}

// Value serializers: the built-in msgpack (default), json and v8 ones, custom ones, and the check for unserializable values.

import { Packr } from 'msgpackr';
import * as v8 from 'node:v8';
import { SerializationError } from './errors.js';

/** A serializer turns one value into bytes and back. Every process of a dict must use the same one. */
export interface Serializer {
  /** Recorded in shared memory; attaching with another name is a ParameterMismatchError. */
  readonly name: string;
  serialize(value: unknown): Uint8Array;
  deserialize(bytes: Uint8Array): unknown;
}

export type BuiltinSerializerName = 'msgpack' | 'json' | 'v8';
export type SerializerOption = BuiltinSerializerName | Serializer;

const packr = new Packr({ structuredClone: true, moreTypes: true, int64AsType: 'bigint', useRecords: true });

const msgpack: Serializer = {
  name: 'msgpack',
  serialize(value) {
    assertSerializable(value, 'msgpack');
    return packr.pack(value);
  },
  deserialize(bytes) {
    return packr.unpack(bytes);
  },
};

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
 * Throws SerializationError for what the built-in serializer would drop or mangle silently:
 * functions and symbols anywhere (msgpack, json), and for json also BigInt, Map, Set and typed arrays.
 */
export function assertSerializable(value: unknown, kind: 'msgpack' | 'json'): void {
  const seen = new Set<object>();
  const visit = (v: unknown, path: string): void => {
    const t = typeof v;
    if (t === 'function' || t === 'symbol') {
      throw new SerializationError(`cannot store a ${t} (at ${path}): values must be data, not code`);
    }
    if (t === 'bigint' && kind === 'json') {
      throw new SerializationError(`the json serializer cannot store a BigInt (at ${path}); use 'msgpack' or 'v8'`);
    }
    if (t !== 'object' || v === null) return;
    const o = v as object;
    if (seen.has(o)) {
      if (kind === 'json') throw new SerializationError(`the json serializer cannot store a cyclic structure (at ${path})`);
      return;
    }
    seen.add(o);
    if (ArrayBuffer.isView(o) || o instanceof ArrayBuffer) {
      if (kind === 'json') throw new SerializationError(`the json serializer cannot store binary data (at ${path}); use 'msgpack' or 'v8'`);
      return;
    }
    if (o instanceof Date || o instanceof RegExp) return;
    if (o instanceof Map) {
      if (kind === 'json') throw new SerializationError(`the json serializer cannot store a Map (at ${path}); use 'msgpack' or 'v8'`);
      for (const [k, x] of o) {
        visit(k, `${path}<key>`);
        visit(x, `${path}.get(${String(k)})`);
      }
      return;
    }
    if (o instanceof Set) {
      if (kind === 'json') throw new SerializationError(`the json serializer cannot store a Set (at ${path}); use 'msgpack' or 'v8'`);
      for (const x of o) visit(x, `${path}<item>`);
      return;
    }
    if (Array.isArray(o)) {
      for (let i = 0; i < o.length; i++) visit(o[i], `${path}[${i}]`);
      return;
    }
    if (kind === 'json' && typeof (o as { toJSON?: unknown }).toJSON === 'function') return;
    for (const k of Object.keys(o)) visit((o as Record<string, unknown>)[k], `${path}.${k}`);
    if (Object.getOwnPropertySymbols(o).length > 0) {
      throw new SerializationError(`cannot store symbol-keyed properties (at ${path})`);
    }
  };
  visit(value, 'value');
}

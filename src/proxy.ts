// asObject(): a Proxy that turns property access into dict operations ("no setters or getters necessary").

import type { UltraDict } from './dict.js';

const proxies = new WeakMap<object, Record<string, any>>();

/**
 * Properties are the dict's string keys: get/set/delete/in/Object.keys/spread/JSON.stringify all act on
 * the shared dict; nested dicts (recurse) appear as proxies too. Number keys are not visible through it
 * (an object's property names are strings; use the dict itself for them).
 */
export function asObject(d: UltraDict<unknown>): Record<string, any> {
  const cached = proxies.get(d);
  if (cached !== undefined) return cached;
  const wrap = (v: unknown): unknown =>
    v !== null && typeof v === 'object' && typeof (v as UltraDict<unknown>).asObject === 'function' && (v as object).constructor === d.constructor
      ? (v as UltraDict<unknown>).asObject()
      : v;
  const p = new Proxy(Object.create(null) as Record<string, any>, {
    get(_t, prop) {
      if (typeof prop === 'symbol') return prop === Symbol.toStringTag ? 'UltraDict' : undefined;
      return wrap(d.get(prop));
    },
    set(_t, prop, value) {
      if (typeof prop === 'symbol') return false;
      d.set(prop, value);
      return true;
    },
    deleteProperty(_t, prop) {
      if (typeof prop === 'string') d.delete(prop);
      return true;
    },
    has(_t, prop) {
      return typeof prop === 'string' && d.has(prop);
    },
    ownKeys() {
      const keys: string[] = [];
      for (const k of d.keys()) if (typeof k === 'string') keys.push(k);
      return keys;
    },
    getOwnPropertyDescriptor(_t, prop) {
      if (typeof prop !== 'string' || !d.has(prop)) return undefined;
      return { value: wrap(d.get(prop)), writable: true, enumerable: true, configurable: true };
    },
    defineProperty(_t, prop, desc) {
      if (typeof prop === 'symbol' || !('value' in desc)) return false;
      d.set(prop, desc.value);
      return true;
    },
  });
  proxies.set(d, p);
  return p;
}

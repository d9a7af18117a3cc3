// What a process sees of one key through every read API at once (for the expiry tests and their fixture).

import type { UltraDict } from '../../src/index.js';

/** ttl() as JSON can carry it over IPC: Infinity as the string 'Infinity', undefined as null. */
export function ttlOf(t: number | undefined): number | string | null {
  return t === Infinity ? 'Infinity' : (t ?? null);
}

export function view(d: UltraDict<unknown>, key: string): Record<string, unknown> {
  return {
    get: d.get(key) ?? null,
    has: d.has(key),
    ttl: ttlOf(d.ttl(key)),
    size: d.size,
    keys: [...d.keys()].sort(),
    json: d.toJSON(),
    data: [...d.data.keys()].sort(),
  };
}

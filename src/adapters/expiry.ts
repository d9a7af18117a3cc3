// The expiry API of issue 15 (set/ttl/expire with { ttl }) as the adapters call it, and whether the running dict has it.

import type { Key, UltraDict } from '../dict.js';

/** The per-key expiry methods of an UltraDict with TTL support. */
export interface Expiring {
  set(key: Key, value: unknown, options?: { ttl?: number }): unknown;
  ttl(key: Key): number | undefined;
  expire(key: Key, ms: number): boolean;
}

/** The dict's expiry methods, or null if this build of ultradict has no expiry. */
export function expiryOf(dict: UltraDict<unknown>): Expiring | null {
  const d = dict as unknown as Partial<Expiring>;
  return typeof d.ttl === 'function' && typeof d.expire === 'function' ? (dict as unknown as Expiring) : null;
}

/** Writes key = value, expiring after ttl ms when a positive ttl is given and the dict supports expiry. */
export function setWithTtl(dict: UltraDict<unknown>, key: Key, value: unknown, ttl: number | undefined): void {
  const e = expiryOf(dict);
  if (e !== null && ttl !== undefined && ttl > 0) e.set(key, value, { ttl });
  else dict.set(key, value);
}

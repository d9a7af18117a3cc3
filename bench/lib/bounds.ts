// Whether this build of ultradict has the size bound of issue 15 (`maxKeys`, `maxBytes`, `evict`): the
// cache benchmarks (bench/cache.ts, bench/lru-quality.ts) pass it when it exists, and otherwise run an
// unbounded dict as a clearly labelled stand-in and do not write docs/.
import { UltraDict, type UltraDictOptions } from '../../src/index.js';

export type Evict = 'lru' | 'fifo';

/** Options of a dict bounded to maxKeys keys with the given policy. */
export function boundOptions(maxKeys: number, evict: Evict): UltraDictOptions {
  return { maxKeys, evict } as unknown as UltraDictOptions;
}

let known: boolean | null = null;

/** True if `new UltraDict({ maxKeys, evict })` is accepted (and bounds the dict). */
export function boundsSupported(): boolean {
  if (known !== null) return known;
  const name = `udbounds_${process.pid}_${Date.now()}`;
  let d: UltraDict<number> | null = null;
  try {
    d = new UltraDict<number>({ name, create: true, ...boundOptions(2, 'lru') });
    for (let i = 0; i < 4; i++) d.set(`k${i}`, i);
    known = d.size <= 2;
  } catch {
    known = false;
  } finally {
    try {
      d?.close();
      UltraDict.unlink(name);
    } catch {
      /* gone */
    }
  }
  return known;
}

/** The number of keys evicted so far, if stats() reports it (a field whose name contains "evict"). */
export function evictions(stats: object): number | null {
  for (const [k, v] of Object.entries(stats)) if (/evict/i.test(k) && typeof v === 'number') return v;
  return null;
}

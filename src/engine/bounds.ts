// The bounds of a dict (`maxKeys`, `maxBytes`) and its eviction policy: per root key its entry size and
// recency slot, the writer's choice of the keys to evict, and the recency marks reads leave in shared memory.
//
// Only a writer, under the lock, decides what to evict, and publishes it (EVICTED ops in its frame): every
// process applies the same evictions. The per-key bookkeeping here is kept by every process (any can
// become the writer) from the ops it applies; it is the same everywhere but for FIFO order after an undo.

import { OP_CLEAR, OP_EXPIRE, OP_SET, type Key, type Op } from '../codec/ops.js';
import type { Undo } from '../codec/tree.js';
import { EntryTooLargeError } from '../errors.js';
import { EVICT_FIFO, EVICT_LRU, MAX_RECENCY_SLOTS } from '../shm/control.js';

export type EvictPolicy = 'lru' | 'fifo';

export const POLICY_CODES: Readonly<Record<EvictPolicy, number>> = { lru: EVICT_LRU, fifo: EVICT_FIFO };

export function policyName(code: number): EvictPolicy | null {
  return code === EVICT_LRU ? 'lru' : code === EVICT_FIFO ? 'fifo' : null;
}

/**
 * Slots of the recency table of an 'lru' dict: about two per key the bounds allow (a power of two, from
 * 1024 to MAX_RECENCY_SLOTS). Keys share a slot by hash: then each counts as recent when either is used.
 */
export function recencySlotsFor(maxKeys: number, maxBytes: number): number {
  const want = 2 * (maxKeys > 0 ? maxKeys : Math.ceil(maxBytes / 64));
  let n = 1024;
  while (n < want && n < MAX_RECENCY_SLOTS) n *= 2;
  return n;
}

/** One read in READ_SAMPLE (a power of two) marks its key's recency ('lru'). */
const READ_SAMPLE = 4;

/** Keys the writer samples per eviction ('lru'), into a pool of the oldest seen so far (as Redis does). */
const SAMPLES = 5;
const POOL = 16;
/** Up to this many keys, every key is a candidate and every read marks: the LRU is exact. */
const EXACT_MAX = POOL + SAMPLES;

interface Entry {
  /** bytes of the encoded key and value */
  size: number;
  /** the key's slot in the recency table */
  slot: number;
  /** 'lru': its index in `keys`; 'fifo': its insertion number */
  i: number;
}

export class Bounds {
  /** bytes of the encoded keys and values of the entries known here */
  bytes = 0;
  private readonly meta = new Map<Key, Entry>();
  /** 'lru': every key, for sampling, and its recency slot */
  private readonly keys: Key[] = [];
  private keySlots = new Int32Array(1024);
  /** 'fifo': keys in insertion order with their insertion numbers; entries before `head` are consumed */
  private queue: Key[] = [];
  private queueSeq: number[] = [];
  private head = 0;
  private seq = 0;
  /** 'lru': candidates kept between evictions (the first poolSize), with their ages */
  private readonly pool: Key[] = new Array<Key>(POOL + SAMPLES + 1).fill(0);
  private readonly poolSlots = new Int32Array(POOL + SAMPLES + 1);
  private readonly ages = new Float64Array(POOL + SAMPLES + 1);
  private poolSize = 0;
  private rnd = (Math.random() * 0x7fffffff) | 1;
  private readonly mask: number;
  private readonly f64 = new Float64Array(1);
  private readonly f64u32 = new Uint32Array(this.f64.buffer);

  constructor(
    readonly maxKeys: number,
    readonly maxBytes: number,
    readonly policy: EvictPolicy,
    /** 'lru': the shared recency table; null for 'fifo' */
    private readonly recency: Uint32Array | null,
  ) {
    this.mask = recency === null ? 0 : recency.length - 1;
  }

  /**
   * A read of a root key ('lru'): in a dict of more than EXACT_MAX keys, one read in READ_SAMPLE, chosen
   * at random, marks the key as used now. Hashing the key costs more than the rest of a read; sampled, a
   * read stays at about 0.5x Map.get and a key read often is still marked soon after each use
   * (benchmarks.md: the hit ratio this costs). A small dict marks every read: its LRU is exact.
   */
  read(key: Key, tick: number): void {
    if (this.keys.length > EXACT_MAX) {
      let x = this.rnd;
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      this.rnd = x;
      if ((x & (READ_SAMPLE - 1)) !== 0) return;
    }
    this.touch(key, tick);
  }

  /**
   * Marks a use of a root key ('lru'): its recency slot gets `tick`. The slot is hashed from the key here
   * (cheaper than a lookup in the key map); a key that is absent only marks a slot nobody may need.
   */
  touch(key: Key, tick: number): void {
    const rec = this.recency!;
    const slot = this.slotOf(key);
    // stored only when it changes: hot keys read by many processes between two writes leave their cache line clean
    if (rec[slot] !== tick >>> 0) rec[slot] = tick;
  }

  /** Whether the dict is over its bounds with `keys` live root keys. */
  over(keys: number): boolean {
    return (this.maxKeys > 0 && keys > this.maxKeys) || (this.maxBytes > 0 && this.bytes > this.maxBytes);
  }

  /** Refuses (before anything changes) a write of an entry that alone is larger than maxBytes (`sizes`: its entries'). */
  checkEntries(sizes: readonly number[], dict: string): void {
    if (this.maxBytes === 0) return;
    for (const n of sizes) {
      if (n > this.maxBytes) {
        throw new EntryTooLargeError(`an entry of ${n} bytes can never fit in ${JSON.stringify(dict)} (maxBytes ${this.maxBytes}); nothing was written`);
      }
    }
  }

  /** The writer marks the root keys it writes as used now ('lru'). */
  touchWritten(ops: readonly Op[], tick: number): void {
    if (this.recency === null) return;
    for (const o of ops) if (o.path === null && o.op === OP_SET) this.touch(o.key!, tick);
  }

  /**
   * The next key to evict (undefined: none left): 'fifo' the oldest inserted; 'lru' the least recently
   * used of a sample (SAMPLES random keys plus a pool of the POOL oldest seen before) as of `tick`.
   */
  victim(tick: number): Key | undefined {
    return this.recency === null ? this.oldestInserted() : this.leastRecent(tick >>> 0);
  }

  private oldestInserted(): Key | undefined {
    const q = this.queue;
    while (this.head < q.length) {
      const k = q[this.head]!;
      if (this.meta.get(k)?.i === this.queueSeq[this.head]) return k;
      this.head++; // deleted or re-inserted since
    }
    return undefined;
  }

  private leastRecent(now: number): Key | undefined {
    const keys = this.keys;
    const n = keys.length;
    if (n === 0) return undefined;
    const pool = this.pool;
    const poolSlots = this.poolSlots;
    const ages = this.ages;
    const rec = this.recency!;
    const slots = this.keySlots;
    // candidates: the pool kept from earlier evictions and new random samples (a small dict: every key),
    // with their ages as of now; only the chosen one is looked up (a key's slot never changes)
    let w = this.poolSize;
    for (let j = 0; j < w; j++) ages[j] = (now - rec[poolSlots[j]!]!) >>> 0;
    if (n <= EXACT_MAX) {
      w = 0;
      for (let i = 0; i < n; i++) {
        pool[w] = keys[i]!;
        poolSlots[w] = slots[i]!;
        ages[w++] = (now - rec[slots[i]!]!) >>> 0;
      }
    } else {
      for (let s = 0; s < SAMPLES; s++) {
        const i = this.random() % n;
        const slot = slots[i]!;
        // (a key sampled twice takes two places; once evicted, its other place is found gone)
        pool[w] = keys[i]!;
        poolSlots[w] = slot;
        ages[w++] = (now - rec[slot]!) >>> 0;
      }
    }
    for (;;) {
      if (w === 0) return this.leastRecent(now); // every candidate was gone: sample again
      let best = 0;
      for (let j = 1; j < w; j++) if (ages[j]! > ages[best]!) best = j;
      const victim = pool[best]!;
      pool[best] = pool[--w]!;
      poolSlots[best] = poolSlots[w]!;
      ages[best] = ages[w]!;
      if (!this.meta.has(victim)) continue; // gone since it was sampled
      // the pool keeps the POOL oldest: the youngest go
      while (w > POOL) {
        let young = 0;
        for (let j = 1; j < w; j++) if (ages[j]! < ages[young]!) young = j;
        pool[young] = pool[--w]!;
        poolSlots[young] = poolSlots[w]!;
        ages[young] = ages[w]!;
      }
      this.poolSize = w;
      return victim;
    }
  }

  /**
   * The bounds side of a root-key op applied to the local copy: SET adds or resizes an entry (`size`:
   * its bytes), DELETE, EXPIRED and EVICTED drop it, CLEAR drops all. With `undo`, records how to
   * restore what it changed. (A key expired here but not yet published keeps its entry: it still
   * counts toward maxBytes until a writer publishes its delete.)
   */
  track(o: Op, size: number, undo: Undo[] | null, local: Map<Key, unknown>): void {
    if (o.op === OP_EXPIRE) return;
    if (o.op === OP_CLEAR) {
      if (undo !== null) {
        const saved = [...this.meta].map(([k, e]) => [k, e.size] as const);
        undo.push({ m: local, k: undefined, had: false, old: undefined, restore: () => {
          this.clear();
          for (const [k, s] of saved) this.add(k, s);
        } });
      }
      this.clear();
      return;
    }
    const k = o.key!;
    const e = this.meta.get(k);
    if (undo !== null) {
      const had = e !== undefined;
      const oldSize = e?.size ?? 0;
      undo.push({ m: local, k, had: false, old: undefined, restore: () => {
        const now = this.meta.get(k);
        if (!had) {
          if (now !== undefined) this.remove(k, now);
        } else if (now === undefined) this.add(k, oldSize);
        else this.resize(now, oldSize);
      } });
    }
    if (o.op === OP_SET) this.set(k, size, e);
    else if (e !== undefined) this.remove(k, e);
  }

  /** A SET of root key `k` applied without undo (the replay's fast path): adds or resizes its entry. */
  set(k: Key, size: number, e = this.meta.get(k)): void {
    if (e === undefined) this.add(k, size);
    else this.resize(e, size);
  }

  /** Replaces the bookkeeping with that of a loaded dump (`sizes`: each entry's, in the dump's order). */
  load(sizes: ReadonlyMap<Key, number>): void {
    this.clear();
    for (const [k, s] of sizes) this.add(k, s);
  }

  /** Drops a key whose EXPIRED delete this process published (it was removed from the local copy before). */
  forget(k: Key): void {
    const e = this.meta.get(k);
    if (e !== undefined) this.remove(k, e);
  }

  private add(k: Key, size: number): void {
    const e: Entry = { size, slot: this.recency === null ? 0 : this.slotOf(k), i: 0 };
    if (this.recency !== null) {
      e.i = this.keys.length;
      this.keys.push(k);
      if (e.i === this.keySlots.length) {
        const grown = new Int32Array(2 * e.i);
        grown.set(this.keySlots);
        this.keySlots = grown;
      }
      this.keySlots[e.i] = e.slot;
    } else {
      e.i = ++this.seq;
      this.queue.push(k);
      this.queueSeq.push(e.i);
    }
    this.meta.set(k, e);
    this.bytes += size;
  }

  private resize(e: Entry, size: number): void {
    this.bytes += size - e.size;
    e.size = size;
  }

  private remove(k: Key, e: Entry): void {
    this.meta.delete(k);
    this.bytes -= e.size;
    if (this.recency !== null) {
      const last = this.keys.pop()!;
      const n = this.keys.length;
      if (e.i < n) {
        this.keys[e.i] = last;
        this.keySlots[e.i] = this.keySlots[n]!;
        this.meta.get(last)!.i = e.i;
      }
    } else if (this.head > 1024 && this.head * 2 > this.queue.length) {
      // the consumed part of the queue is dropped once it is the larger half
      this.queue = this.queue.slice(this.head);
      this.queueSeq = this.queueSeq.slice(this.head);
      this.head = 0;
    }
  }

  private clear(): void {
    this.meta.clear();
    this.keys.length = 0;
    this.queue = [];
    this.queueSeq = [];
    this.head = 0;
    this.poolSize = 0;
    this.bytes = 0;
  }

  /** The recency slot of a key: a hash of its string (UTF-16 units) or number (float64 bits). */
  private slotOf(k: Key): number {
    let h = 0x811c9dc5;
    if (typeof k === 'string') {
      for (let i = 0; i < k.length; i++) h = Math.imul(h ^ k.charCodeAt(i), 0x01000193);
    } else {
      this.f64[0] = k;
      h = Math.imul(h ^ this.f64u32[0]!, 0x01000193);
      h = Math.imul(h ^ this.f64u32[1]!, 0x01000193);
      h ^= 0x5bd1e995; // numbers and strings of the same bits land apart
    }
    h ^= h >>> 15;
    h = Math.imul(h, 0x2c1b3c6d);
    h ^= h >>> 12;
    return (h >>> 0) & this.mask;
  }

  private random(): number {
    let x = this.rnd;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.rnd = x;
    return x & 0x7fffffff;
  }
}

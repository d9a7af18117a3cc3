// An exact LRU cache, the reference of the cache benchmarks (bench/lru-quality.ts, bench/cache.ts).

/**
 * The reference: an exact LRU. A Map from key to a slot, and a doubly linked list of the slots in order of
 * use (a hit moves its slot to the head; the tail is evicted and its slot reused), so a hit costs no Map
 * write. (The same on a Map alone, delete + set on every hit, is exact too but slows down badly at 100 k
 * keys as the Map's table fills with deleted entries.)
 */
export class ExactLru<V = number> {
  private readonly slotOf = new Map<string, number>();
  private readonly keyOf: string[] = [];
  private readonly valueOf: V[] = [];
  private readonly prev: Int32Array;
  private readonly next: Int32Array;
  private head = -1;
  private tail = -1;
  private evictedCount = 0;
  constructor(private readonly max: number) {
    this.prev = new Int32Array(max);
    this.next = new Int32Array(max);
  }
  private unlink(s: number): void {
    const p = this.prev[s]!;
    const n = this.next[s]!;
    if (p >= 0) this.next[p] = n;
    else this.head = n;
    if (n >= 0) this.prev[n] = p;
    else this.tail = p;
  }
  private pushHead(s: number): void {
    this.prev[s] = -1;
    this.next[s] = this.head;
    if (this.head >= 0) this.prev[this.head] = s;
    this.head = s;
    if (this.tail < 0) this.tail = s;
  }
  get(key: string): V | undefined {
    const s = this.slotOf.get(key);
    if (s === undefined) return undefined;
    if (s !== this.head) {
      this.unlink(s);
      this.pushHead(s);
    }
    return this.valueOf[s];
  }
  set(key: string, value: V): void {
    let s = this.slotOf.get(key);
    if (s !== undefined) this.unlink(s);
    else if (this.slotOf.size < this.max) {
      s = this.slotOf.size;
      this.slotOf.set(key, s);
    } else {
      s = this.tail; // the least recently used: evicted, its slot reused
      this.unlink(s);
      this.slotOf.delete(this.keyOf[s]!);
      this.slotOf.set(key, s);
      this.evictedCount++;
    }
    this.keyOf[s] = key;
    this.valueOf[s] = value;
    this.pushHead(s);
  }
  has(key: string): boolean {
    return this.slotOf.has(key);
  }
  size(): number {
    return this.slotOf.size;
  }
  evicted(): number {
    return this.evictedCount;
  }
  close(): void {
    this.slotOf.clear();
  }
}

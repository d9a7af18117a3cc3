// LRU quality benchmark (`npm run bench`, or alone: `npm run bench -- --only=lru`, or
// `npm run build:bench && node out/bench/lru-quality.js [--quick] [--out=DIR]`): one process.
//
// 1. Hit ratio on a Zipf(0.99) sequence over 1 M keys with a bound of 100 k keys (10 %), the same
//    seeded sequence for every cache, a warm-up then a measured phase: an exact LRU (a Map: delete + set
//    on a hit, the oldest evicted), ultradict `evict: 'lru'` and `evict: 'fifo'`, and lru-cache as a
//    sanity point (an exact LRU too). This is how Redis documents its approximated LRU: the hit ratio of
//    the approximation next to the theoretical LRU's under a power-law access pattern.
// 2. Which keys are evicted, after the graph of Redis's documentation: fill the cache to its bound,
//    access every key once (here in a shuffled order, so that FIFO and LRU differ), add 50 % more keys;
//    an exact LRU evicts exactly the older half of the accesses.
// 3. Read speed: `get` of present keys on a bounded dict, an unbounded dict and a Map.
//
// Writes the section between the lru-quality markers of benchmarks.md, only when this build of
// ultradict has the bound (`maxKeys`, `evict`); otherwise the unbounded dict is measured as a labelled
// stand-in and nothing is written to docs/.
import { existsSync, mkdirSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { execFileSync } from 'node:child_process';
import { LRUCache } from 'lru-cache';
import { UltraDict } from '../src/index.js';
import { boundOptions, boundsSupported, evictions, type Evict } from './lib/bounds.js';
import { shuffle } from './lib/data.js';
import { median, msSince, nowNs, percentile } from './lib/timing.js';
import { zipfSequence } from './lib/zipf.js';
import { ExactLru } from './lib/exact-lru.js';
import { LRU_END, LRU_START, spliceSection } from './report.js';

const S = 0.99;

/** A cache of number values under string keys, as the hit-ratio loop uses it. */
interface Cache {
  get(key: string): number | undefined;
  set(key: string, value: number): void;
  has(key: string): boolean;
  size(): number;
  /** keys evicted so far, if the cache reports it */
  evicted(): number | null;
  close(): void;
}

type Id = 'exact' | 'lru-cache' | 'ultradict-lru' | 'ultradict-fifo' | 'ultradict-unbounded';
const LABEL: Record<Id, string> = {
  exact: 'exact LRU (a `Map` of keys to slots of a doubly linked list in order of use)',
  'lru-cache': '`lru-cache` (`max`)',
  'ultradict-lru': "**ultradict `evict: 'lru'`**",
  'ultradict-fifo': "ultradict `evict: 'fifo'`",
  'ultradict-unbounded': 'ultradict without a bound (**stand-in**: this build has no `maxKeys`)',
};

let seq = 0;
function openCache(id: Id, bound: number): Cache {
  switch (id) {
    case 'exact':
      return new ExactLru(bound);
    case 'lru-cache': {
      let evictedCount = 0;
      const lc = new LRUCache<string, number>({ max: bound, dispose: (_v, _k, reason) => void (reason === 'evict' && evictedCount++) });
      return {
        get: (k) => lc.get(k),
        set: (k, v) => void lc.set(k, v),
        has: (k) => lc.has(k),
        size: () => lc.size,
        evicted: () => evictedCount,
        close: () => lc.clear(),
      };
    }
    default: {
      const evict: Evict | null = id === 'ultradict-lru' ? 'lru' : id === 'ultradict-fifo' ? 'fifo' : null;
      const d = new UltraDict<number>({ name: `udlruq_${process.pid}_${++seq}`, create: true, ...(evict ? boundOptions(bound, evict) : {}) });
      return {
        get: (k) => d.get(k),
        set: (k, v) => void d.set(k, v),
        has: (k) => d.has(k),
        size: () => d.size,
        evicted: () => evictions(d.stats()),
        close: () => d.close(),
      };
    }
  }
}

interface HitResult {
  warmHits: number;
  hits: number;
  ops: number;
  seconds: number;
  size: number;
  evicted: number | null;
}

/** Cache-aside over the sequence: get; on a miss, set. Hits are counted in the measured phase only. */
function hitRatio(id: Id, bound: number, keys: string[], ranks: Int32Array, warm: number): HitResult {
  const c = openCache(id, bound);
  try {
    const t0 = nowNs();
    let warmHits = 0;
    for (let i = 0; i < warm; i++) {
      const r = ranks[i]!;
      const k = keys[r]!;
      if (c.get(k) !== undefined) warmHits++;
      else c.set(k, r);
    }
    let hits = 0;
    for (let i = warm; i < ranks.length; i++) {
      const r = ranks[i]!;
      const k = keys[r]!;
      const v = c.get(k);
      if (v !== undefined) {
        if (v !== r) throw new Error(`${id}: ${k} read ${v}`);
        hits++;
      } else c.set(k, r);
    }
    return { warmHits, hits, ops: ranks.length - warm, seconds: msSince(t0) / 1000, size: c.size(), evicted: c.evicted() };
  } finally {
    c.close();
  }
}

interface OrderResult {
  evicted: number;
  olderHalf: number;
}

/**
 * After Redis's eviction graph: fill to the bound (bound - 1 keys, and one more key, `clock`), read each of
 * the bound - 1 keys once in a shuffled order, then write half the bound of new keys. Returns how many of
 * the keys read were evicted, and how many of those were in the older half of the reads (an exact LRU:
 * all of them; random eviction: half). With `writes`, every read is followed by a write of `clock`: an
 * 'lru' dict dates a read by the dict's change counter, which only writes advance, so reads with no write
 * between them are equally recent to it.
 */
function evictionOrder(id: Id, bound: number, keys: string[], writes: boolean): OrderResult {
  const c = openCache(id, bound);
  try {
    const n = bound - 1;
    for (let i = 0; i < n; i++) c.set(keys[i]!, i);
    c.set('clock', 0);
    const order = shuffle(Array.from({ length: n }, (_, i) => i), 7);
    for (let p = 0; p < n; p++) {
      const i = order[p]!;
      if (c.get(keys[i]!) !== i) throw new Error(`${id}: ${keys[i]} missing before the bound was passed`);
      if (writes) c.set('clock', p);
    }
    for (let i = bound; i < bound + bound / 2; i++) c.set(keys[i]!, i);
    let evicted = 0;
    let olderHalf = 0;
    for (let p = 0; p < n; p++) {
      if (!c.has(keys[order[p]!]!)) {
        evicted++;
        if (p < n / 2) olderHalf++;
      }
    }
    return { evicted, olderHalf };
  } finally {
    c.close();
  }
}

type ReadId = 'map' | 'unbounded' | 'lru' | 'fifo' | 'baseline';
const READ_LABEL: Record<ReadId, string> = {
  map: '`Map.get` (one process, not shared)',
  unbounded: 'ultradict `get`, no bound',
  lru: "ultradict `get`, `maxKeys` + `evict: 'lru'`",
  fifo: "ultradict `get`, `maxKeys` + `evict: 'fifo'`",
  baseline: 'ultradict `get`, no bound, the build given by `--baseline`',
};

/** A dict class of another build of ultradict (`--baseline=DIR`: a checkout with out/src/index.js built). */
interface DictClass {
  new (options: { name: string; create: boolean }): { update(items: Array<readonly [string, number]>): unknown; get(k: string): number | undefined; close(): void };
}
let Baseline: DictClass | null = null;

/**
 * get of present keys, the keys in a seeded shuffled order. The stores are measured in short batches
 * (about batchMs each, n calibrated per store), one batch of each store in turn (rotated), `iterations`
 * times: a load that comes and goes on a shared machine hits every store alike, and the ratio to Map.get
 * is taken within each turn.
 */
async function readSpeed(ids: ReadId[], nKeys: number, iterations: number, batchMs: number): Promise<Map<ReadId, { rates: number[]; ratios: number[] }>> {
  const keys = Array.from({ length: nKeys }, (_, i) => `k${i}`);
  const order = shuffle(Array.from({ length: nKeys }, (_, i) => i), 42);
  const out = new Map<ReadId, { rates: number[]; ratios: number[] }>(ids.map((id) => [id, { rates: [], ratios: [] }]));
  const closers: Array<() => void> = [];
  try {
    const runs = ids.map((id) => {
      let get: (k: string) => number | undefined;
      if (id === 'map') {
        const m = new Map<string, number>();
        for (let i = 0; i < nKeys; i++) m.set(keys[i]!, i);
        get = (k) => m.get(k);
      } else if (id === 'baseline') {
        const d = new Baseline!({ name: `udlruq_${process.pid}_${++seq}`, create: true });
        d.update(keys.map((k, i) => [k, i] as const));
        closers.push(() => d.close());
        get = (k) => d.get(k);
      } else {
        // the bound is twice the keys: present keys are read, nothing is evicted
        const d = new UltraDict<number>({ name: `udlruq_${process.pid}_${++seq}`, create: true, ...(id === 'unbounded' ? {} : boundOptions(2 * nKeys, id)) });
        d.update(keys.map((k, i) => [k, i] as const));
        closers.push(() => d.close());
        get = (k) => d.get(k);
      }
      return (n: number): number => {
        let found = 0;
        for (let i = 0; i < n; i++) if (get(keys[order[i % nKeys]!]!) !== undefined) found++;
        if (found !== n) throw new Error(`${id}: ${n - found} present keys not found`);
        return found;
      };
    });
    // calibration (and warm-up): n per store for a batch of about batchMs
    const ns = ids.map(() => 10_000);
    for (let j = 0; j < ids.length; j++) {
      const t0 = nowNs();
      for (;;) {
        const t = nowNs();
        runs[j]!(ns[j]!);
        const ms = msSince(t);
        if (ms >= batchMs * 0.8 && msSince(t0) > 200) break;
        ns[j] = Math.max(1000, Math.round((ns[j]! * batchMs) / Math.max(ms, 0.01)));
      }
    }
    for (let it = 0; it < iterations; it++) {
      const rates: number[] = [];
      for (let j = 0; j < ids.length; j++) {
        const k = (j + it) % ids.length;
        const t = nowNs();
        runs[k]!(ns[k]!);
        rates[k] = ns[k]! / (msSince(t) / 1000);
      }
      ids.forEach((id, k) => {
        out.get(id)!.rates.push(rates[k]!);
        out.get(id)!.ratios.push(rates[k]! / rates[0]!);
      });
    }
  } finally {
    for (const c of closers) c();
  }
  return out;
}

const pct = (x: number): string => `${(100 * x).toFixed(2)} %`;
const count = (x: number): string => x.toLocaleString('en-US');
function fmt(x: number): string {
  if (x >= 1e6) return `${(x / 1e6).toFixed(2)} M`;
  if (x >= 1e3) return `${(x / 1e3).toFixed(1)} k`;
  return x.toFixed(0);
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const quick = args.includes('--quick');
  const here = dirname(fileURLToPath(import.meta.url));
  const root = resolve(here, '..', '..');
  let outDir = resolve(args.find((a) => a.startsWith('--out='))?.slice(6) ?? join(root, quick ? '.bench-tmp' : 'docs'));
  const bounded = boundsSupported();
  if (!bounded) {
    console.log('lru-quality: this build of ultradict has no `maxKeys`/`evict`: measuring the unbounded dict as a stand-in; docs/ is not written');
    if (existsSync(join(root, 'docs')) && resolve(outDir) === resolve(root, 'docs')) outDir = join(root, '.bench-tmp');
  }
  const N = quick ? 100_000 : 1_000_000;
  const BOUND = N / 10;
  const WARM = quick ? 200_000 : 1_000_000;
  const MEASURED = quick ? 400_000 : 2_000_000;
  const t0 = nowNs();
  const keys = Array.from({ length: N + BOUND }, (_, i) => `k${i}`);
  const ranks = zipfSequence(N, S, WARM + MEASURED, 42);
  const distinct = new Set(ranks.subarray(WARM)).size;
  console.log(`lru-quality: Zipf(${S}) over ${fmt(N)} keys, bound ${fmt(BOUND)}, ${fmt(WARM)} + ${fmt(MEASURED)} gets (${msSince(t0).toFixed(0)} ms to draw)`);

  const ids: Id[] = bounded ? ['exact', 'ultradict-lru', 'ultradict-fifo', 'lru-cache'] : ['exact', 'ultradict-unbounded', 'lru-cache'];
  const hit = new Map<Id, HitResult>();
  for (const id of ids) {
    const r = hitRatio(id, BOUND, keys, ranks, WARM);
    hit.set(id, r);
    console.log(`lru-quality ${id}: hit ratio ${pct(r.hits / r.ops)} (warm-up ${pct(r.warmHits / WARM)}), ${r.size} keys at the end, evicted ${r.evicted ?? '?'}, ${r.seconds.toFixed(1)} s`);
  }
  const order = new Map<Id, [OrderResult, OrderResult]>();
  for (const id of ids) {
    const r = [evictionOrder(id, BOUND, keys, false), evictionOrder(id, BOUND, keys, true)] as [OrderResult, OrderResult];
    order.set(id, r);
    console.log(`lru-quality eviction order ${id}: ${r.map((x, i) => `${i ? 'a write between reads' : 'reads back to back'}: ${x.evicted} of ${BOUND - 1} read keys evicted, ${pct(x.olderHalf / Math.max(1, x.evicted))} of them from the older half of the reads`).join('; ')}`);
  }
  const READ_KEYS = 10_000;
  const ITERATIONS = quick ? 20 : 60;
  const BATCH_MS = 10;
  const baselineDir = args.find((a) => a.startsWith('--baseline='))?.slice(11);
  let baselineText = '';
  if (baselineDir) {
    const dir = resolve(baselineDir);
    Baseline = ((await import(pathToFileURL(join(dir, 'out', 'src', 'index.js')).href)) as { UltraDict: DictClass }).UltraDict;
    let commit = '?';
    try {
      commit = execFileSync('git', ['-C', dir, 'log', '-1', '--format=%h %s'], { encoding: 'utf8' }).trim().slice(0, 100);
    } catch {
      /* not a git checkout */
    }
    baselineText = commit;
    READ_LABEL.baseline = `ultradict \`get\`, no bound, build ${commit.split(' ')[0]} (\`--baseline\`)`;
  }
  const readIds: ReadId[] = [...(bounded ? (['map', 'unbounded', 'lru', 'fifo'] as const) : (['map', 'unbounded'] as const)), ...(Baseline ? (['baseline'] as const) : [])];
  const reads = await readSpeed(readIds, READ_KEYS, ITERATIONS, BATCH_MS);
  for (const id of readIds) {
    const r = reads.get(id)!;
    console.log(`lru-quality reads ${id}: ${fmt(median(r.rates))}/s, ${median(r.ratios).toFixed(2)}× Map.get (quartiles of the turns: ${percentile(r.ratios, 25).toFixed(2)} - ${percentile(r.ratios, 75).toFixed(2)})`);
  }

  const exact = hit.get('exact')!;
  const exactRatio = exact.hits / exact.ops;
  const L: string[] = [
    LRU_START,
    '## LRU quality of the bound',
    '',
    `Hit ratio of a cache bounded to ${count(BOUND)} keys (10 %) under a Zipf(${S}) sequence over ${count(N)} keys (rank r drawn with probability ∝ 1/r^${S}, seeded: the same sequence for every cache), used cache-aside in one process: \`get\`, and \`set\` on a miss. ${count(WARM)} gets of warm-up, then ${count(MEASURED)} measured gets (${count(distinct)} distinct keys among them). This is the comparison Redis's documentation makes for its approximated LRU (["Approximated LRU algorithm"](https://redis.io/docs/latest/develop/reference/eviction/)): the approximation's hit ratio next to the theoretical LRU's under a power-law access pattern. The exact LRU is a \`Map\` of keys to the slots of a doubly linked list kept in order of use (a hit moves its slot to the head, the tail is evicted); lru-cache, an exact LRU too, must give the same figures. Written by \`bench/lru-quality.ts\` (Node ${process.versions.node}).`,
    '',
    '| cache | hit ratio | × exact LRU | keys at the end | evicted |',
    '|---|---:|---:|---:|---:|',
    ...ids.map((id) => {
      const r = hit.get(id)!;
      const ratio = r.hits / r.ops;
      return `| ${LABEL[id]} | ${pct(ratio)} | ${(ratio / exactRatio).toFixed(3)}× | ${count(r.size)} | ${r.evicted === null ? '-' : count(r.evicted)} |`;
    }),
    '',
  ];
  if (bounded) {
    const u = hit.get('ultradict-lru')!;
    const q = u.hits / u.ops / exactRatio;
    L.push(`Target of issue 15, the hit ratio of \`'lru'\` within 5 % of an exact LRU's: ${q >= 0.95 ? '✅ met' : '❌ missed'} (${q.toFixed(3)}×).`, '');
  }
  L.push(
    `Which keys are evicted, after the graph of that documentation page: the cache is filled to its bound (${count(BOUND - 1)} keys and one more, \`clock\`), each of the ${count(BOUND - 1)} keys is read once (in a shuffled order rather than in insertion order, so that FIFO and LRU differ), then ${count(BOUND / 2)} new keys are written. An exact LRU evicts the older half of the reads; random eviction would take half of its victims from each half. ultradict's \`'lru'\` dates a read by the dict's change counter (as seen by the reader), which only writes advance: reads with no write between them are equally recent to it, so the test is run twice, with the reads back to back, and with a write of \`clock\` after every read.`,
    '',
    '| cache | read keys evicted | from the older half of the reads: back to back | with a write between reads |',
    '|---|---:|---:|---:|',
    ...ids.map((id) => {
      const [a, b] = order.get(id)!;
      return `| ${LABEL[id]} | ${count(a.evicted)}${b.evicted !== a.evicted ? ` / ${count(b.evicted)}` : ''} | ${a.evicted ? pct(a.olderHalf / a.evicted) : '-'} | ${b.evicted ? pct(b.olderHalf / b.evicted) : '-'} |`;
    }),
    '',
    `Read speed: \`get\` of ${count(READ_KEYS)} present keys (small integers, a seeded shuffled order) in one process; bounded dicts have \`maxKeys: ${2 * READ_KEYS}\` (nothing is evicted). Each store is timed in batches of about ${BATCH_MS} ms (batch size calibrated per store, after a warm-up), one batch of each store in turn, in a rotated order, ${ITERATIONS} turns; the ratio to \`Map.get\` is taken within each turn, and the table gives the medians (and the quartiles of the ratios).${baselineText ? ` The last row is another build of ultradict, given with \`--baseline\` (commit ${baselineText.split(' ')[0]}) and loaded in the same process from its checkout: reads without a bound before and after a change.` : ''}`,
    '',
    '| | gets/s | × `Map.get` | quartiles of × `Map.get` |',
    '|---|---:|---:|---:|',
    ...readIds.map((id) => {
      const r = reads.get(id)!;
      return `| ${READ_LABEL[id]} | ${fmt(median(r.rates))} | ${median(r.ratios).toFixed(2)}× | ${percentile(r.ratios, 25).toFixed(2)} – ${percentile(r.ratios, 75).toFixed(2)} |`;
    }),
    '',
  );
  if (bounded) {
    const l = median(reads.get('lru')!.ratios);
    const f = median(reads.get('fifo')!.ratios);
    L.push(`Target of issue 15, reads ≥ 0.4× \`Map.get\` with a bound set: ${Math.min(l, f) >= 0.4 ? '✅ met' : '❌ missed'} (\`'lru'\` ${l.toFixed(2)}×, \`'fifo'\` ${f.toFixed(2)}×; without a bound ${median(reads.get('unbounded')!.ratios).toFixed(2)}×${Baseline ? `, and ${median(reads.get('baseline')!.ratios).toFixed(2)}× for the \`--baseline\` build` : ''}).`, '');
  }
  L.push(`Machine: ${os.cpus().length} cores (${os.cpus()[0]?.model.trim() ?? '?'}), shared with other work, so the speeds are noisy; the hit ratios do not depend on it.`);
  L.push(LRU_END);
  mkdirSync(outDir, { recursive: true });
  spliceSection(join(outDir, 'benchmarks.md'), L.join('\n'), LRU_START, LRU_END);
  console.log(`wrote the lru-quality section of ${join(outDir, 'benchmarks.md')}${bounded ? '' : ' (stand-in: not docs/)'}`);
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);

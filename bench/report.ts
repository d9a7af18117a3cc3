// Writes docs/benchmarks.md and the SVG chart from the results of one run.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from './config.js';
import { CONTENDERS, PYTHON_FIGURES, BATCH } from './contenders/registry.js';
import type { MachineInfo } from './lib/machine.js';
import type { SerializerCost } from './lib/serializers.js';
import type { Measurement } from './lib/timing.js';
import type { SingleCaseResult } from './workloads/single.js';
import type { MultiPoint, Rate } from './workloads/multi.js';
import type { PropagationResult } from './workloads/propagation.js';
import type { GrowthResult } from './workloads/growth.js';

export type Outcome<T> = { ok: true; value: T; seconds: number } | { ok: false; error: string; seconds: number };

export interface RunResults {
  quick: boolean;
  partial: boolean;
  config: Config;
  machine: MachineInfo;
  servers: Record<'redis' | 'memcached', string>;
  contenders: string[];
  skipped: Record<string, string>;
  serializerCosts: SerializerCost[];
  w1: Record<string, Outcome<SingleCaseResult>>;
  w2: Record<string, Outcome<SingleCaseResult[]>>;
  w3readers: Record<string, Outcome<MultiPoint[]>>;
  w3writers: Record<string, Outcome<MultiPoint[]>>;
  w4: Record<string, Outcome<PropagationResult>>;
  w5: Record<string, Record<string, Outcome<GrowthResult>>>;
  /** shared-memory segments that were still there after their dict was closed (removed by the harness) */
  leaks: string[];
  shmLeftover: string[];
  seconds: number;
  /** load average when the run ended (the start is in machine.loadAvg) */
  loadAvgEnd?: number[];
}

/** The ultradict row every ratio refers to. */
export const REF = 'ultradict-msgpack';
const UD = ['ultradict-msgpack', 'ultradict-json', 'ultradict-v8'];

// ---------------------------------------------------------------------------------------------
// formatting

export function ops(x: number | null | undefined): string {
  if (x === null || x === undefined || !Number.isFinite(x)) return '—';
  if (x >= 1e6) return `${(x / 1e6).toFixed(x >= 1e8 ? 0 : x >= 1e7 ? 1 : 2)} M`;
  if (x >= 1e3) return `${(x / 1e3).toFixed(x >= 1e5 ? 0 : x >= 1e4 ? 1 : 2)} k`;
  return x.toFixed(0);
}
const range = (m: { min: number; max: number } | null | undefined): string => (m ? `${ops(m.min)} – ${ops(m.max)}` : '—');
export function ratio(a: number | null | undefined, b: number | null | undefined): string {
  if (!a || !b || !Number.isFinite(a) || !Number.isFinite(b)) return '—';
  const r = a / b;
  if (r >= 100) return `${r.toFixed(0)}×`;
  if (r >= 10) return `${r.toFixed(1)}×`;
  if (r >= 1) return `${r.toFixed(2)}×`;
  return `${r.toPrecision(2)}×`;
}
const ns = (opsPerSec: number | null | undefined): string => {
  if (!opsPerSec) return '—';
  const t = 1e9 / opsPerSec;
  if (t >= 1e6) return `${(t / 1e6).toFixed(2)} ms`;
  if (t >= 1e4) return `${(t / 1e3).toFixed(1)} µs`;
  return `${t.toFixed(t < 100 ? 1 : 0)} ns`;
};
const nsText = (t: number): string => (t >= 1e6 ? `${(t / 1e6).toFixed(2)} ms` : t >= 1e4 ? `${(t / 1e3).toFixed(1)} µs` : `${t.toFixed(0)} ns`);
const us = (x: number): string => (Number.isFinite(x) ? (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2)) : '—');
const bytes = (b: number | null | undefined): string => {
  if (b === null || b === undefined || !Number.isFinite(b)) return '—';
  const a = Math.abs(b);
  if (a >= 2 ** 30) return `${(b / 2 ** 30).toFixed(2)} GiB`;
  if (a >= 2 ** 20) return `${(b / 2 ** 20).toFixed(1)} MiB`;
  if (a >= 2 ** 10) return `${(b / 2 ** 10).toFixed(0)} KiB`;
  return `${b} B`;
};
const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const cell = (s: string): string => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
const label = (id: string): string => CONTENDERS.find((c) => c.id === id)?.label ?? id;
const sizeName = (n: number): string => (n >= 1e6 ? `${n / 1e6} M` : n >= 1e3 ? `${n / 1e3} K` : String(n));
const caseName = (c: { kind: string; bytes: number }): string =>
  c.kind === 'int' ? 'small integer' : `${c.kind} ${c.bytes >= 1000 ? `${c.bytes / 1000} KB` : `${c.bytes} B`}`;

function table(head: string[], rows: string[][], numeric = true): string {
  const lines = [`| ${head.join(' | ')} |`, `| ${head.map((_, i) => (i === 0 || !numeric ? '---' : '---:')).join(' | ')} |`];
  for (const r of rows) lines.push(`| ${r.map(cell).join(' | ')} |`);
  return lines.join('\n');
}

function val<T>(o: Outcome<T> | undefined): T | null {
  return o && o.ok ? o.value : null;
}

// ---------------------------------------------------------------------------------------------
// targets

interface Verdict {
  met: boolean | null;
  text: string;
}
interface TargetRow {
  target: string;
  per: Record<string, Verdict>;
  /** explanation when at least one serializer missed the target */
  why: string | null;
}

const atLeast = (measured: number | null, goal: number, unit: (x: number) => string): Verdict => {
  if (measured === null || !Number.isFinite(measured)) return { met: null, text: 'not measured' };
  if (measured >= goal) return { met: true, text: `met: ${unit(measured)}` };
  return { met: false, text: `missed: ${unit(measured)}, ${((1 - measured / goal) * 100).toFixed(0)}% short of ${unit(goal)}` };
};
const atMost = (measured: number | null, goal: number, unit: (x: number) => string): Verdict => {
  if (measured === null || !Number.isFinite(measured)) return { met: null, text: 'not measured' };
  if (measured <= goal) return { met: true, text: `met: ${unit(measured)}` };
  return { met: false, text: `missed: ${unit(measured)}, ${((measured / goal - 1) * 100).toFixed(0)}% over ${unit(goal)}` };
};
const times = (x: number): string => (x >= 100 ? `${x.toFixed(0)}×` : x >= 10 ? `${x.toFixed(1)}×` : `${x.toFixed(2)}×`);
const short = (u: string): string => u.replace('ultradict-', '');

function evaluateTargets(r: RunResults): { rows: TargetRow[]; uds: string[] } {
  const uds = UD.filter((u) => r.contenders.includes(u));
  const w1 = (id: string): SingleCaseResult | null => val(r.w1[id]);
  const reads = (id: string): number | null => w1(id)?.reads?.median ?? null;
  const writes = (id: string): number | null => w1(id)?.writes.median ?? null;
  const div = (a: number | null, b: number | null): number | null => (a !== null && b !== null && b > 0 ? a / b : null);
  const rows: TargetRow[] = [];
  /** `why` gets the serializers that missed and returns the explanation */
  const add = (target: string, f: (ud: string) => Verdict, why: (missed: string[]) => string): void => {
    const row: TargetRow = { target, per: {}, why: null };
    for (const u of uds) row.per[u] = f(u);
    const missed = uds.filter((u) => row.per[u]!.met === false);
    if (missed.length) row.why = why(missed);
    rows.push(row);
  };
  const each = (missed: string[], f: (u: string) => string): string => missed.map((u) => `${short(u)} ${f(u)}`).join('; ');
  const serCost = (u: string): string => {
    const s = r.serializerCosts.find((x) => x.value === 'small integer');
    const key = short(u) as 'msgpack' | 'json' | 'v8';
    return s ? nsText(s[key]) : '?';
  };
  add('reads with nothing new ≥ 0.5× `Map.get` (w1)', (u) => atLeast(div(reads(u), reads('map')), 0.5, times),
    (m) => `a read costs ${each(m, (u) => ns(reads(u)))}, against ${ns(reads('map'))} for \`Map.get\` on the same keys. Every read first checks that nothing new was published (an \`Atomics.load\` of the change counter in shared memory) and goes through \`UltraDict.get\` before the lookup in the local Map, which is the whole cost of the ceiling.`);
  add('reads ≥ 100× Redis (w1, Redis awaited)', (u) => atLeast(div(reads(u), reads('redis')), 100, times),
    (m) => `reads: ${each(m, (u) => ns(reads(u)))}; Redis ${ns(reads('redis'))} per awaited GET.`);
  add('reads faster than lmdb `getSync` (w1)', (u) => atLeast(div(reads(u), reads('lmdb')), 1, times),
    (m) => `reads: ${each(m, (u) => ns(reads(u)))}; lmdb ${ns(reads('lmdb'))} per get.`);
  add('writes of small values ≥ 2 M ops/s (w1)', (u) => atLeast(writes(u), 2e6, (x) => `${ops(x)}/s`),
    (m) => `a write costs ${each(m, (u) => `${ns(writes(u))} (serializing [key, value] alone: ${serCost(u)})`)}. A write takes the cross-process lock, serializes, checksums and copies the frame into the shared stream, publishes it, releases the lock and updates the local Map.`);
  add('writes ≥ 100× Redis (w1, Redis awaited)', (u) => atLeast(div(writes(u), writes('redis')), 100, times),
    (m) => `writes: ${each(m, (u) => ns(writes(u)))}; Redis ${ns(writes('redis'))} per awaited SET (a loopback round trip).`);
  add('writes ≥ 5× lmdb `putSync` (w1)', (u) => atLeast(div(writes(u), writes('lmdb')), 5, times),
    (m) => `writes: ${each(m, (u) => ns(writes(u)))}; lmdb putSync ${ns(writes('lmdb'))} (noSync: a commit in memory, no fsync).`);
  add('writes ≥ 10× better-sqlite3 (w1, one transaction per write)', (u) => atLeast(div(writes(u), writes('sqlite')), 10, times),
    (m) => `writes: ${each(m, (u) => ns(writes(u)))}; better-sqlite3 ${ns(writes('sqlite'))} (WAL, synchronous=NORMAL: no fsync per commit).`);
  const cores = r.machine.cores;
  const nw = (u: string): { at: MultiPoint; last: MultiPoint } | null => {
    const pts = val(r.w3writers[u]);
    if (!pts) return null;
    const within = pts.filter((p) => p.n <= cores);
    const past = pts.filter((p) => p.n > cores);
    if (!within.length || !past.length) return null;
    return { at: within[within.length - 1]!, last: past[past.length - 1]! };
  };
  add(`N writers: aggregate increments/s does not collapse past the core count (w3; criterion used here: the largest N ≥ 0.5× N = ${cores}, the core count)`,
    (u) => {
      if (!val(r.w3writers[u])) return { met: null, text: 'not measured' };
      const x = nw(u);
      if (!x) return { met: null, text: `not measured past ${cores} writers (quick run)` };
      const v = atLeast(x.last.main.median / x.at.main.median, 0.5, times);
      return { ...v, text: `${v.text} (N=${x.last.n}: ${ops(x.last.main.median)}/s, N=${x.at.n}: ${ops(x.at.main.median)}/s)` };
    },
    (m) => `every writer keeps a full copy, so every increment is applied by all N processes: the work per increment grows with N whatever the lock does. On top of that, with more writers than the ${cores} cores the scheduler preempts processes at any point, also while they hold the lock, and the others wait until the holder runs again (releases wake at most one waiter per millisecond, so a hand-over does not cost a context switch per write, and a waiter starved for 200 ms gets the lock handed over) (${each(m, (u) => { const x = nw(u); return x ? `${ops(x.at.main.median)}/s at N=${x.at.n}, ${ops(x.last.main.median)}/s at N=${x.last.n}` : '?'; })}). For scale, one writer alone does ${each(m, (u) => ops(val(r.w3writers[u])?.[0]?.main.median))} increments/s. The totals stay exact (see the w3 table).`);
  const w4 = (u: string): PropagationResult | null => val(r.w4[u]);
  add('propagation delay median < 5 µs, polling reader (w4)', (u) => atMost(w4(u)?.medianUs ?? null, 5, (x) => `${us(x)} µs`),
    (m) => `the delay runs from just before \`set()\` in the writer to the moment the spinning reader's \`get()\` returns the new value, so it contains a whole write (${each(m, (u) => ns(writes(u)))} per write in w1) and the reader's decoding of the frame. The medians of the ${r.config.reps} repetitions range over ${each(m, (u) => { const v = w4(u); return v ? `${us(Math.min(...v.repMediansUs))} – ${us(Math.max(...v.repMediansUs))} µs` : '?'; })}: on ${cores} cores the writer, the spinning reader and the harness process that relays the acknowledgements compete for the CPUs, and any other load on the machine (load average ${r.machine.loadAvg[0]} at the start of the run, ${r.loadAvgEnd?.[0] ?? '?'} at the end) lands directly in the delay.`);
  add("change-event delay median < 500 µs, a 'change' listener in another process (w4, issue 3; msgpack column)",
    (u) => (u === REF ? atMost(w4('ultradict-events')?.medianUs ?? null, 500, (x) => `${us(x)} µs`) : { met: null, text: '—' }),
    () => `the listener's delay includes the futex wake-up of the native watcher thread, the thread-safe call into the listening process's event loop, and the sync that decodes the frame; on ${cores} shared cores the listener's process must also be scheduled (load average ${r.machine.loadAvg[0]} at the start of the run).`);
  const sizes = r.config.w5Sizes;
  const small = Math.min(...sizes);
  const large = Math.max(...sizes);
  const g = (u: string, size: number): GrowthResult | null => val(r.w5[u]?.[String(size)]);
  const dumps = (u: string, size: number): string => {
    const info = g(u, size)?.info as { dumps?: number; lastDumpBytes?: number } | undefined;
    return info && typeof info.dumps === 'number' ? `${info.dumps} dump(s), last ${bytes(info.lastDumpBytes ?? NaN)}` : '?';
  };
  add(`write cost with ${sizeName(large)} keys within 2× of ${sizeName(small)} keys (w5)`,
    (u) => {
      const a = g(u, small)?.writes.median ?? null;
      const b = g(u, large)?.writes.median ?? null;
      const v = atMost(a !== null && b !== null ? a / b : null, 2, times);
      return large < 1e6 && v.met !== null ? { ...v, text: `${v.text} (quick run: ${sizeName(large)}, not 1 M)` } : v;
    },
    (m) => `per write with ${sizeName(small)} → ${sizeName(large)} keys: ${each(m, (u) => `${ns(g(u, small)?.writes.median)} → ${ns(g(u, large)?.writes.median)}`)}; a plain Map goes ${ns(g('map', small)?.writes.median)} → ${ns(g('map', large)?.writes.median)} on the same keys, so part of the growth is the local Map itself (cache misses in a bigger hash table). The rest is the shared part: when the stream is full a new generation starts with a full dump of the dict, whose cost grows with the dict (${each(m, (u) => `${dumps(u, large)} at ${sizeName(large)}`)}; see the stats below the w5 table).`);
  add(`attach to a dict of ${sizeName(large)} keys in under 1 s (w5)`, (u) => {
      const v = atMost(g(u, large)?.attach?.openMs ?? null, 1000, (x) => `${x.toFixed(0)} ms`);
      return large < 1e6 && v.met !== null ? { ...v, text: `${v.text} (quick run: ${sizeName(large)}, not 1 M)` } : v;
    },
    (m) => `attaching copies the whole dict into the attaching process: it decodes the last full dump into a new Map of ${sizeName(large)} entries and applies the stream written since (${each(m, (u) => `${bytes(g(u, large)?.storage)} of shared memory, ${bytes(g(u, large)?.attach?.rss)} of RSS in the attached process`)}). That is about ${each(m, (u) => { const a = g(u, large)?.attach?.openMs; return a ? `${((a * 1e6) / large).toFixed(0)} ns` : '?'; })} per entry here.`);
  return { rows, uds };
}

// ---------------------------------------------------------------------------------------------
// SVG chart: workload 1, reads and writes per contender, log scale

export function chartSvg(r: RunResults): string {
  interface Bar { label: string; reads: number | null; writes: number | null; quoted: boolean }
  const bars: Bar[] = [];
  for (const c of CONTENDERS) {
    const v = val(r.w1[c.id]);
    if (!v) continue;
    bars.push({ label: c.label, reads: v.reads?.median ?? null, writes: v.writes.median, quoted: false });
  }
  for (const p of PYTHON_FIGURES) bars.push({ label: `${p.label} *`, reads: p.reads, writes: p.writes, quoted: true });
  const left = 300;
  const right = 90;
  const plotW = 560;
  const rowH = 34;
  const top = 58;
  const width = left + plotW + right;
  const height = top + bars.length * rowH + 60;
  const all = bars.flatMap((b) => [b.reads, b.writes]).filter((x): x is number => x !== null && x > 0);
  const lo = Math.floor(Math.log10(Math.min(...all, 1e3)));
  const hi = Math.ceil(Math.log10(Math.max(...all, 1e6)));
  const x = (v: number): number => left + ((Math.log10(v) - lo) / (hi - lo)) * plotW;
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif" font-size="12">`);
  out.push(`<rect width="100%" height="100%" fill="#ffffff"/>`);
  out.push(`<text x="${width / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">10,000 keys, small integer values, one process: operations per second (log scale)</text>`);
  out.push(`<rect x="${left}" y="32" width="12" height="12" fill="#2b6cb0"/><text x="${left + 18}" y="42">reads</text>`);
  out.push(`<rect x="${left + 80}" y="32" width="12" height="12" fill="#dd6b20"/><text x="${left + 98}" y="42">writes</text>`);
  out.push(`<text x="${left + 160}" y="42" fill="#555">* quoted from the Python library's README (Python 3.9, another machine)</text>`);
  for (let d = lo; d <= hi; d++) {
    const gx = x(10 ** d);
    out.push(`<line x1="${gx.toFixed(1)}" y1="${top - 6}" x2="${gx.toFixed(1)}" y2="${top + bars.length * rowH}" stroke="#ddd"/>`);
    const txt = d >= 6 ? `${10 ** (d - 6)} M` : d >= 3 ? `${10 ** (d - 3)} k` : String(10 ** d);
    out.push(`<text x="${gx.toFixed(1)}" y="${top + bars.length * rowH + 16}" text-anchor="middle" fill="#444">${txt}</text>`);
  }
  bars.forEach((b, i) => {
    const y = top + i * rowH;
    if (b.quoted && (i === 0 || !bars[i - 1]!.quoted)) {
      out.push(`<line x1="10" y1="${y - 2}" x2="${width - 10}" y2="${y - 2}" stroke="#999" stroke-dasharray="4 3"/>`);
    }
    out.push(`<text x="${left - 8}" y="${y + rowH / 2 + 4}" text-anchor="end" fill="${b.quoted ? '#666' : '#000'}">${esc(b.label)}</text>`);
    const draw = (v: number | null, dy: number, color: string): void => {
      if (v === null || v <= 0) {
        out.push(`<text x="${left + 4}" y="${y + dy + 10}" fill="#999" font-size="10">n/a</text>`);
        return;
      }
      const w = Math.max(1, x(v) - left);
      out.push(`<rect x="${left}" y="${y + dy}" width="${w.toFixed(1)}" height="13" fill="${color}"${b.quoted ? ' fill-opacity="0.45"' : ''}/>`);
      out.push(`<text x="${(left + w + 4).toFixed(1)}" y="${y + dy + 10}" font-size="10" fill="#333">${ops(v)}/s</text>`);
    };
    draw(b.reads, 3, '#2b6cb0');
    draw(b.writes, 17, '#dd6b20');
  });
  out.push(`<text x="${width / 2}" y="${height - 14}" text-anchor="middle" fill="#444">operations per second, median of ${r.config.reps} repetitions; generated by npm run bench on ${esc(r.machine.date.slice(0, 10))}</text>`);
  out.push('</svg>');
  return out.join('\n') + '\n';
}

// ---------------------------------------------------------------------------------------------
// markdown

function singleRows(get: (id: string) => SingleCaseResult | null, r: RunResults, errors: (id: string) => string | null): string[][] {
  const rows: string[][] = [];
  const map = get('map');
  const ref = get(REF);
  for (const c of CONTENDERS) {
    if (!r.contenders.includes(c.id) && !r.skipped[c.id]) continue;
    const err = errors(c.id);
    const v = get(c.id);
    if (!v) {
      rows.push([c.label, err ? `error: ${err.slice(0, 120)}` : r.skipped[c.id] ? `skipped: ${r.skipped[c.id]}` : 'not run', '', '', '', '', '', '', '']);
      continue;
    }
    const rd: Measurement | null = v.reads;
    rows.push([
      c.id === REF ? `**${c.label}**` : c.label,
      rd ? ops(rd.median) : '—', range(rd), ratio(rd?.median, map?.reads?.median), ratio(rd?.median, ref?.reads?.median),
      ops(v.writes.median), range(v.writes), ratio(v.writes.median, map?.writes.median), ratio(v.writes.median, ref?.writes.median),
    ]);
  }
  return rows;
}

const SINGLE_HEAD = ['contender', 'reads/s', 'min – max', '× Map', '× ultradict', 'writes/s', 'min – max', '× Map', '× ultradict'];

function rateCell(x: Rate | undefined): string {
  return x ? `${ops(x.median)} (${ops(x.min)} – ${ops(x.max)})` : '—';
}

export function markdown(r: RunResults): string {
  const m = r.machine;
  const cfg = r.config;
  const L: string[] = [];
  const errorOf = <T>(o: Outcome<T> | undefined): string | null => (o && !o.ok ? o.error : null);
  L.push('# Benchmarks');
  L.push('');
  L.push(`Generated by \`npm run bench${r.quick ? ' -- --quick' : ''}\` on ${m.date}; every figure below comes from this one run on this one machine, except the rows marked as quoted from the Python library. Do not edit by hand: run the harness again.`);
  if (r.quick) L.push('', `> **Quick run**: shorter measurements, ${cfg.w2Cases.length} value cases, N ≤ ${Math.max(...cfg.w3Ns)}, at most ${sizeName(Math.max(...cfg.w5Sizes))} keys${cfg.reducedSet ? `, workloads 2-5 only for ${cfg.reducedSet.map(label).join(', ')}` : ''}. Use the full run (\`npm run bench\`) for published figures.`);
  if (r.partial) L.push('', '> **Partial run** (`--only`): some contenders or workloads were not measured.');
  L.push('');
  L.push('## Machine');
  L.push('');
  L.push(table(['machine', ''], [
    ['CPU', m.cpuModel],
    ['cores', String(m.cores)],
    ['RAM', `${m.ramGiB} GiB`],
    ['OS', m.os],
    ['Node.js', `${m.node} (V8 ${m.v8})`],
    ['load average (1, 5, 15 min)', `${m.loadAvg.join(', ')} at the start, ${r.loadAvgEnd?.join(', ') ?? '?'} at the end`],
    ['date', m.date],
    ['duration of the run', `${r.seconds.toFixed(0)} s`],
  ], false));
  const endLoad = r.loadAvgEnd?.[0] ?? 0;
  if (m.loadAvg[0]! >= 0.5 || endLoad >= m.cores + 0.5) {
    // the last workload runs one measuring process: a 1-minute load well above the core count at the
    // end means other processes were running too
    L.push('');
    L.push(`> **The machine was not idle during this run** (1-minute load average ${m.loadAvg[0]} before the harness started anything, ${endLoad} at the end, when the harness itself keeps about one core busy): other processes competed for the ${m.cores} cores, so the figures are noisier and lower than on an idle machine, the multi-process and latency ones most. Compare the min – max ranges before drawing conclusions.`);
  }
  L.push('');
  L.push(`Software: ${Object.entries(m.versions).map(([k, v]) => `${k} ${v}`).join(', ')}.`);
  L.push('');
  L.push(`- Redis: ${r.servers.redis}.`);
  L.push(`- memcached: ${r.servers.memcached}.`);
  for (const [id, why] of Object.entries(r.skipped)) L.push(`- **${label(id)} skipped**: ${why}.`);
  L.push('');
  L.push('## How it is measured');
  L.push('');
  L.push(`- Every contender gets the same keys (\`k0\`, \`k1\`, …), the same values, the same access order (a seeded shuffle) and the same number of repetitions (${cfg.reps}); tables give the median and the min – max of the repetitions.`);
  L.push(`- Batch timing with \`process.hrtime.bigint()\`: a batch of n operations is timed and divided by n. n is calibrated per contender so that one repetition takes about ${cfg.w1TargetMs} ms (workload 1), ${cfg.w2TargetMs} ms (workload 2) or ${cfg.w5TargetMs} ms (workload 5); the calibration batches and full batches for at least ${cfg.warmupMs} ms (${cfg.warmupMs / 4} ms in workload 5) are the warm-up. Every read is checked to have found a value, and the value read back after loading is compared with the value written.`);
  L.push('- Every contender runs in fresh processes for each workload: a job host forked by the harness forks the measuring processes (`child_process.fork`), which load only that contender. Workloads 1 and 2 of a contender share one measuring process (workload 1 first, then each value case on a fresh store); the two parts of workload 3 share their processes; every size of workload 5 has its own. For the manager contender, the job host is the manager: it holds the Map and answers its children\'s IPC requests. Every child and server has a time limit; the harness kills what is left at the end, also on errors and signals.');
  L.push(`- Batched contenders send ${BATCH} operations per round trip or transaction and count each operation. Sequential ones await every operation.`);
  L.push('- Durability is the same as ultradict\'s (survives the crash of a process, not of the machine): Redis without persistence, lmdb with `noSync: true`, SQLite in WAL mode with `synchronous=NORMAL`. Values are JSON text where the store keeps bytes or text (Redis, memcached, SQLite, the manager\'s IPC); lmdb uses its own msgpack encoding.');
  L.push('- Servers listen on 127.0.0.1 only, with their default settings otherwise (memcached with 4 GiB of memory so the 1 M-key workload is not evicted).');
  L.push('');
  L.push(table(['contender', 'how it is used'], CONTENDERS.map((c) => [c.label, c.how]), false));
  L.push('');

  // targets
  const { rows: targets, uds } = evaluateTargets(r);
  L.push('## Targets of issue 4');
  L.push('');
  if (uds.length === 0) {
    L.push('ultradict was not measured in this run, so no target could be checked.');
  } else {
    L.push(table(['target', ...uds.map(label)], targets.map((t) => [t.target, ...uds.map((u) => {
      const v = t.per[u]!;
      return v.met === null ? v.text : v.met ? `✅ ${v.text}` : `❌ ${v.text}`;
    })])));
    const missed = targets.filter((t) => t.why !== null);
    if (missed.length) {
      L.push('');
      L.push('### Why the missed targets are missed');
      L.push('');
      L.push('Explanations derived from the measurements of this run (the figures are in the tables below).');
      L.push('');
      for (const t of missed) L.push(`- **${t.target}**: ${t.why}`);
    }
  }
  L.push('');

  // workload 1
  L.push(`## 1. ${cfg.w1Keys.toLocaleString('en-US')} keys, small integer values, one process`);
  L.push('');
  L.push('The Python README\'s benchmark: the keys are preloaded, then reads (nothing new has been published meanwhile) and writes of small integers over all keys in a shuffled order. "× ultradict" is relative to ultradict with msgpack.');
  L.push('');
  L.push('![workload 1 chart](bench-chart.svg)');
  L.push('');
  L.push(table(SINGLE_HEAD, singleRows((id) => val(r.w1[id]), r, (id) => errorOf(r.w1[id]))));
  L.push('');
  L.push('Quoted, not measured here: the Python UltraDict README\'s figures (Python 3.9.2, Debian 11, another machine, 1,000,000 operations each). "× Map" is relative to the Python dict of that run.');
  L.push('');
  const pyDict = PYTHON_FIGURES[0]!;
  L.push(table(['quoted row (another machine, Python 3.9, from its README)', 'reads/s', 'writes/s', '× Python dict (reads)', '× Python dict (writes)'],
    PYTHON_FIGURES.map((p) => [p.label, ops(p.reads), ops(p.writes), ratio(p.reads, pyDict.reads), ratio(p.writes, pyDict.writes)])));
  L.push('');

  // workload 2
  L.push('## 2. Value sizes');
  L.push('');
  L.push(`Strings of 100 B, 1 KB and 100 KB, and objects whose JSON text has that size (a record with a list of small records). ${cfg.w2Cases[0]?.keys ?? ''} keys for 100 B and 1 KB values, ${cfg.w2Cases[cfg.w2Cases.length - 1]?.keys ?? ''} keys for 100 KB values; writes cycle through 7 distinct values per case.`);
  for (let i = 0; i < cfg.w2Cases.length; i++) {
    const c = cfg.w2Cases[i]!;
    L.push('');
    L.push(`### ${caseName(c)} (${c.keys.toLocaleString('en-US')} keys)`);
    L.push('');
    L.push(table(SINGLE_HEAD, singleRows((id) => val(r.w2[id])?.[i] ?? null, r, (id) => errorOf(r.w2[id]))));
  }
  L.push('');

  // workload 3
  const w3ids = CONTENDERS.filter((c) => r.w3readers[c.id] || r.w3writers[c.id]).map((c) => c.id);
  L.push('## 3. Several processes at once');
  L.push('');
  L.push(`Aggregate operations per second of all processes together, median (min – max) of ${cfg.reps} repetitions of ${cfg.w3DurationMs} ms; all processes start at the same instant. This machine has ${m.cores} cores: past N = ${m.cores - 1} readers (or ${m.cores} writers) the processes share cores.`);
  L.push('');
  L.push('### 1 writer + N readers: reads/s of the N readers together');
  L.push('');
  L.push('lmdb readers call `resetReadTxn()` every 64 reads, so that they see the writer\'s data as it goes (lmdb-js otherwise keeps reading one snapshot); the other stores are current on every read.');
  L.push('');
  L.push(table(['contender', ...cfg.w3Ns.map((n) => `N = ${n}`)], w3ids.map((id) => {
    const pts = val(r.w3readers[id]);
    const err = errorOf(r.w3readers[id]);
    return [label(id), ...cfg.w3Ns.map((n) => (pts ? rateCell(pts.find((p) => p.n === n)?.main) : err ? `error: ${err.slice(0, 80)}` : '—'))];
  })));
  L.push('');
  L.push('Writes/s of the single writer meanwhile:');
  L.push('');
  L.push(table(['contender', ...cfg.w3Ns.map((n) => `N = ${n}`)], w3ids.map((id) => {
    const pts = val(r.w3readers[id]);
    return [label(id), ...cfg.w3Ns.map((n) => rateCell(pts?.find((p) => p.n === n)?.writer))];
  })));
  L.push('');
  L.push('### N writers incrementing one counter: increments/s of all writers together');
  L.push('');
  L.push('ultradict: `dict.withLock(() => dict.set(\'n\', (dict.get(\'n\') ?? 0) + 1))`; Redis: `INCR` (pipelined: 100 `INCR` per pipeline); memcached: `increment`; lmdb: `get` + `putSync` in `transactionSync`; SQLite: SELECT + UPSERT in a `BEGIN IMMEDIATE` transaction; manager: an `incr` request the manager applies. After every repetition the counter is read and compared with the sum of the increments the writers counted.');
  L.push('');
  L.push(table(['contender', ...cfg.w3Ns.map((n) => `N = ${n}`), 'exact totals'], w3ids.map((id) => {
    const pts = val(r.w3writers[id]);
    const err = errorOf(r.w3writers[id]);
    const exact = pts ? (pts.every((p) => p.exact) ? 'yes' : `NO: ${pts.filter((p) => !p.exact).map((p) => `N=${p.n}: ${p.detail ?? ''}`).join('; ')}`) : '—';
    return [label(id), ...cfg.w3Ns.map((n) => (pts ? rateCell(pts.find((p) => p.n === n)?.main) : err ? `error: ${err.slice(0, 80)}` : '—')), exact];
  })));
  L.push('');

  // workload 4
  L.push('## 4. Propagation delay');
  L.push('');
  L.push(`Process A writes the current \`process.hrtime\` (a monotonic clock shared by all processes) into a key; process B polls that key in a loop (awaited calls for the async clients; for lmdb, \`resetReadTxn()\` before each read, or it would never see the write) and records the time when the new value appears minus the value. A writes again only after B has reported. ${cfg.reps} repetitions × ${cfg.w4SamplesPerRep} writes. Change events (issue 3) do not exist yet, so only the polling reader is measured.`);
  L.push('');
  L.push(table(['contender', 'median µs', 'p99 µs', 'min µs', 'max µs', 'median of each repetition, min – max µs', 'samples'],
    CONTENDERS.filter((c) => r.w4[c.id]).map((c) => {
      const v = val(r.w4[c.id]);
      if (!v) return [c.label, `error: ${errorOf(r.w4[c.id])}`, '', '', '', '', ''];
      return [c.label, us(v.medianUs), us(v.p99Us), us(v.minUs), us(v.maxUs),
        `${us(Math.min(...v.repMediansUs))} – ${us(Math.max(...v.repMediansUs))}`, String(v.samples)];
    })));
  L.push('');

  // workload 5
  L.push('## 5. Growth');
  L.push('');
  L.push(`The store is loaded with ${cfg.w5Sizes.map(sizeName).join(', ')} keys (small integers, bulk load: \`update()\` batches of 10,000 for ultradict, MSET, transactions), then writes and reads of ${cfg.w5Sample.toLocaleString('en-US')} distinct keys spread over the whole key space are measured. At the largest size another process opens the store and reads one key ("attach"). Memory: RSS growth of the creating process (which also keeps whatever heap V8 grew while building the load batches) and of the attached process, after a full GC; "outside the processes": shared memory allocated in /dev/shm (ultradict), the server's \`used_memory\` (Redis) or \`bytes\` (memcached), the file size (lmdb, SQLite), the manager process's RSS growth (manager).`);
  L.push('');
  const w5rows: string[][] = [];
  for (const c of CONTENDERS) {
    const bySize = r.w5[c.id];
    if (!bySize) continue;
    const base = val(bySize[String(Math.min(...cfg.w5Sizes))]);
    for (const size of cfg.w5Sizes) {
      const o = bySize[String(size)];
      const v = val(o);
      if (!v) {
        w5rows.push([c.label, sizeName(size), `error: ${errorOf(o) ?? 'not run'}`, '', '', '', '', '', '', '', '', '']);
        continue;
      }
      w5rows.push([
        c.label, sizeName(size),
        `${ops(v.writes.median)} (${range(v.writes)})`, ns(v.writes.median),
        base ? ratio(base.writes.median, v.writes.median) : '—',
        v.reads ? `${ops(v.reads.median)} (${range(v.reads)})` : '—', ns(v.reads?.median),
        `${(v.loadMs / 1000).toFixed(2)} s`, bytes(v.ownerRss), v.attach ? bytes(v.attach.rss) : '—', bytes(v.storage),
        v.attach ? `${v.attach.openMs.toFixed(1)} ms` : '—',
      ]);
    }
  }
  L.push(table(['contender', 'keys', 'writes/s (min – max)', 'per write', `write cost vs ${sizeName(Math.min(...cfg.w5Sizes))}`, 'reads/s (min – max)', 'per read', 'load', 'RSS creator', 'RSS attached', 'outside the processes', 'attach'], w5rows));
  L.push('');
  const statsRows = UD.filter((u) => r.w5[u]).flatMap((u) => cfg.w5Sizes.map((s) => [u, s, val(r.w5[u]![String(s)])?.info] as const)).filter(([, , i]) => i !== undefined);
  if (statsRows.length) {
    L.push('<details><summary>ultradict <code>stats()</code> of the creating process at the end of each growth job</summary>');
    L.push('');
    L.push('```');
    for (const [u, s, info] of statsRows) L.push(`${u} ${sizeName(s)}: ${JSON.stringify(info)}`);
    L.push('```');
    L.push('');
    L.push('</details>');
    L.push('');
  }

  // serializers
  L.push('## Serializer cost alone');
  L.push('');
  L.push('Time to serialize `[key, value]` in this process (msgpackr `Packr.pack`, `JSON.stringify`, `v8.serialize`), for reading the write costs above.');
  L.push('');
  L.push(table(['value', 'msgpack', 'json', 'v8'], r.serializerCosts.map((s) => [s.value, nsText(s.msgpack), nsText(s.json), nsText(s.v8)])));
  L.push('');

  // hygiene
  L.push('## Clean-up');
  L.push('');
  L.push(r.leaks.length
    ? `- **${r.leaks.length} shared-memory segment(s) were still in /dev/shm after their dict had been closed by its creator** and were removed by the harness: ${r.leaks.slice(0, 10).map((f) => `\`${f}\``).join(', ')}${r.leaks.length > 10 ? ', …' : ''}.`
    : '- Every dict left /dev/shm as it found it (checked after every job).');
  if (r.shmLeftover.length) L.push(`- Left over at the end of the run (removed): ${r.shmLeftover.join(', ')}.`);
  L.push('- The servers started by the harness were stopped, and the temporary directory (lmdb, SQLite files) removed.');
  const errs: string[] = [];
  const collect = (w: string, rec: Record<string, Outcome<unknown>>): void => {
    for (const [id, o] of Object.entries(rec)) if (!o.ok) errs.push(`- ${w}, ${label(id)}: ${o.error}`);
  };
  collect('workload 1', r.w1);
  collect('workload 2', r.w2);
  collect('workload 3 (readers)', r.w3readers);
  collect('workload 3 (writers)', r.w3writers);
  collect('workload 4', r.w4);
  for (const [id, bySize] of Object.entries(r.w5)) {
    for (const [size, o] of Object.entries(bySize)) if (!o.ok) errs.push(`- workload 5 (${sizeName(Number(size))} keys), ${label(id)}: ${o.error}`);
  }
  if (errs.length) {
    L.push('');
    L.push('## Errors');
    L.push('');
    L.push(...errs);
  }
  L.push('');
  return L.join('\n');
}

export function writeReport(r: RunResults, dir: string): string[] {
  const md = join(dir, 'benchmarks.md');
  const svg = join(dir, 'bench-chart.svg');
  writeFileSync(svg, chartSvg(r));
  // the replication section comes from bench/replication.ts, the rate-limit one from bench/rate-limit.ts,
  // the cache and LRU-quality ones from bench/cache.ts and bench/lru-quality.ts, the Node.js lines one from
  // tools/bench-lines.mjs: keep them
  const before = existsSync(md) ? readFileSync(md, 'utf8') : '';
  writeFileSync(md, markdown(r));
  for (const [start, end] of [[START, END], [RL_START, RL_END], [CACHE_START, CACHE_END], [LRU_START, LRU_END], [LINES_START, LINES_END]] as const) {
    const i = before.indexOf(start);
    const j = before.indexOf(end);
    if (i >= 0 && j > i) spliceSection(md, before.slice(i, j + end.length), start, end);
  }
  return [md, svg];
}


export const START = '<!-- replication:start -->';
export const END = '<!-- replication:end -->';
export const RL_START = '<!-- rate-limit:start -->';
export const RL_END = '<!-- rate-limit:end -->';
export const CACHE_START = '<!-- cache:start -->';
export const CACHE_END = '<!-- cache:end -->';
export const LRU_START = '<!-- lru-quality:start -->';
export const LRU_END = '<!-- lru-quality:end -->';
const LINES_START = '<!-- node-lines:start -->';
const LINES_END = '<!-- node-lines:end -->';

/** Replaces (or appends) a marked section (by default the replication one) of a benchmarks.md. */
export function spliceSection(file: string, section: string, start = START, end = END): void {
  const old = existsSync(file) ? readFileSync(file, 'utf8') : '# Benchmarks\n';
  const i = old.indexOf(start);
  const j = old.indexOf(end);
  const next = i >= 0 && j > i ? old.slice(0, i) + section + old.slice(j + end.length) : `${old.trimEnd()}\n\n${section}\n`;
  writeFileSync(file, next);
}

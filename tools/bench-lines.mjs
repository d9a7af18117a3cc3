// Writes the "Node.js lines" section of docs/benchmarks.md: two raw results of `npm run bench` (one per Node
// line, same machine, same options) side by side, so that a new line's regression cannot hide.
//
//   node tools/bench-lines.mjs BASE.json OTHER.json [docs/benchmarks.md]
//
// BASE and OTHER are .bench-tmp/results-*.json files, e.g. from
//   npm run bench -- --only=map,ultradict-msgpack,w1,w2,w3,w4   (once with each Node on the PATH)
import { existsSync, readFileSync, writeFileSync } from 'node:fs';

const START = '<!-- node-lines:start -->';
const END = '<!-- node-lines:end -->';
const [baseFile, otherFile, mdFile = 'docs/benchmarks.md'] = process.argv.slice(2);
if (!baseFile || !otherFile) {
  console.error('usage: node tools/bench-lines.mjs BASE.json OTHER.json [docs/benchmarks.md]');
  process.exit(2);
}
const base = JSON.parse(readFileSync(baseFile, 'utf8'));
const other = JSON.parse(readFileSync(otherFile, 'utf8'));
const UD = 'ultradict-msgpack';
const major = (r) => r.machine.node.replace(/^v/, '').split('.')[0];
const A = `Node ${major(base)}`;
const B = `Node ${major(other)}`;

const fmt = (x) => (x == null || !Number.isFinite(x) ? '–' : x >= 100 ? Math.round(x).toLocaleString('en-US') : x.toFixed(x >= 10 ? 1 : 2));
const ok = (o) => (o && o.ok ? o.value : null);
const rows = [];
const ratioOf = (a, b, higherBetter) => (a && b ? `${(b / a).toFixed(2)}×${higherBetter ? '' : ' (time)'}` : '–');
/**
 * One row: base and other as medians, or as [median, best of the repetitions] (then the best is shown too:
 * on a loaded machine the best repetition is the closer estimate of what the line can do).
 */
function row(what, a, b, higherBetter = true) {
  const [am, ab] = Array.isArray(a) ? a : [a, null];
  const [bm, bb] = Array.isArray(b) ? b : [b, null];
  const cell = (m, best) => (best == null ? fmt(m) : `${fmt(m)} (${fmt(best)})`);
  const ratio = ab == null || bb == null ? ratioOf(am, bm, higherBetter) : `${ratioOf(am, bm, higherBetter)} (${ratioOf(ab, bb, higherBetter)})`;
  rows.push(`| ${what} | ${cell(am, ab)} | ${cell(bm, bb)} | ${ratio} |`);
}
const mb = (m) => (m ? [m.median, m.max] : [null, null]);

// workload 1: one process, 10,000 keys
const w1 = (r, id) => ok(r.w1[id]);
for (const [label, f] of [
  ['reads/s, ultradict', (r) => mb(w1(r, UD)?.reads)],
  ['reads/s, Map', (r) => mb(w1(r, 'map')?.reads)],
  ['reads, ultradict ÷ Map', (r) => (w1(r, UD)?.reads?.median ?? NaN) / (w1(r, 'map')?.reads?.median ?? NaN)],
  ['writes/s, ultradict', (r) => mb(w1(r, UD)?.writes)],
]) {
  row(`1. 10,000 small ints: ${label}`, f(base), f(other));
}
// workload 2: value sizes
const cases = ok(base.w2[UD]) ?? [];
for (const c of cases) {
  const match = (r) => (ok(r.w2[UD]) ?? []).find((x) => x.kind === c.kind && x.bytes === c.bytes);
  const mapMatch = (r) => (ok(r.w2.map) ?? []).find((x) => x.kind === c.kind && x.bytes === c.bytes);
  const what = `2. ${c.kind} ${c.bytes >= 1000 ? `${c.bytes / 1000} KB` : `${c.bytes} B`}`;
  row(`${what}: reads ÷ Map`, (match(base)?.reads?.median ?? NaN) / (mapMatch(base)?.reads?.median ?? NaN), (match(other)?.reads?.median ?? NaN) / (mapMatch(other)?.reads?.median ?? NaN));
  row(`${what}: writes/s`, mb(match(base)?.writes), mb(match(other)?.writes));
}
// workload 3: several processes
for (const p of ok(base.w3readers[UD]) ?? []) {
  const q = (ok(other.w3readers[UD]) ?? []).find((x) => x.n === p.n);
  row(`3. 1 writer + ${p.n} readers: reads/s of the readers`, mb(p.main), mb(q?.main));
  row(`3. 1 writer + ${p.n} readers: writes/s of the writer`, mb(p.writer), mb(q?.writer));
}
for (const p of ok(base.w3writers[UD]) ?? []) {
  const q = (ok(other.w3writers[UD]) ?? []).find((x) => x.n === p.n);
  row(`3. ${p.n} writers incrementing one counter: increments/s`, mb(p.main), mb(q?.main));
}
// workload 4: cross-process visibility
const w4a = ok(base.w4[UD]);
const w4b = ok(other.w4[UD]);
row('4. write in A until B sees it: median µs (best repetition)', [w4a?.medianUs, w4a && Math.min(...w4a.repMediansUs)], [w4b?.medianUs, w4b && Math.min(...w4b.repMediansUs)], false);
row('4. write in A until B sees it: p99 µs', w4a?.p99Us, w4b?.p99Us, false);

const load = (r) => `${r.machine.loadAvg.map((x) => x.toFixed(2)).join(', ')} at the start${r.loadAvgEnd ? `, ${r.loadAvgEnd.map((x) => x.toFixed(2)).join(', ')} at the end` : ''}`;
const section = `${START}
## Node.js lines: ${B} next to ${A}

The same workloads, same options, same machine, one run per line, by \`npm run bench -- --only=map,ultradict-msgpack,w1,w2,w3,w4\`
with each Node.js first on the PATH (and the addon built for it), then \`node tools/bench-lines.mjs\`. Medians of
the 5 repetitions, with the best repetition in parentheses; the last column is ${B} ÷ ${A} (for delays, lower is
better).

| | ${A} (${base.machine.node}) | ${B} (${other.machine.node}) | ${B} ÷ ${A} |
| --- | ---: | ---: | ---: |
${rows.join('\n')}

- ${A}: ${base.machine.date}, load average ${load(base)}${base.quick ? ' (quick run)' : ''}.
- ${B}: ${other.machine.date}, load average ${load(other)}${other.quick ? ' (quick run)' : ''}.
${Math.max(base.machine.loadAvg[0], other.machine.loadAvg[0]) > base.machine.cores ? `- The machine was busy with other work during these runs (load average above its ${base.machine.cores} cores): single figures swing
  by tens of percent between repetitions, so read the best repetitions, and only a consistent gap as a difference.
` : ''}- On ${B} the addon wraps the shared memory through Node-API's \`node_api_create_external_sharedarraybuffer\`
  (exported by Node 22 and later); on Node 20 it uses V8 directly. Reads and writes do not go through the
  addon after that: they are JS on a SharedArrayBuffer, so the difference is the JS engine's.
${END}`;

const md = existsSync(mdFile) ? readFileSync(mdFile, 'utf8') : '# Benchmarks\n';
const i = md.indexOf(START);
const j = md.indexOf(END);
const next = i >= 0 && j > i ? md.slice(0, i) + section + md.slice(j + END.length) : `${md.trimEnd()}\n\n${section}\n`;
writeFileSync(mdFile, next);
console.log(`wrote the Node.js lines section of ${mdFile}`);

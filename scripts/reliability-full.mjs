// Runs every full reliability suite (see docs/reliability.md), one process each, and prints the summary table.
// Figures go to out/reliability/results.json. Environment variables of the suites (ULTRADICT_*) pass through.
import { spawn } from 'node:child_process';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';

const suites = process.argv.length > 2 ? process.argv.slice(2) : ['kill', 'model', 'fuzz', 'limits', 'gc', 'replication', 'security'];
const before = new Set(readdirSync('/dev/shm').filter((f) => f.startsWith('ud.')));
const results = [];

function run(cmd, args) {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    p.stdout.on('data', (b) => {
      out += b;
      process.stdout.write(b);
    });
    p.on('exit', (code, signal) => resolve({ code: code ?? signal, out }));
  });
}

for (const s of suites) {
  const t = Date.now();
  console.log(`\n=== ${s} ===`);
  if (s === 'security') {
    const r = await run(process.execPath, ['--test', 'out/test/reliability-security.test.js', 'out/test/reliability-regressions.test.js']);
    const num = (k) => Number((r.out.match(new RegExp(`^# ${k} (\\d+)`, 'm')) ?? [])[1] ?? 0);
    results.push({ suite: 'security', trials: num('tests'), inputs: num('tests'), failures: num('fail') + (r.code === 0 ? 0 : 1), lostWrites: 0, seconds: (Date.now() - t) / 1000, details: { skipped: num('skipped') }, problems: [] });
    continue;
  }
  const r = await run(process.execPath, ['out/test/reliability/run.js', s]);
  const line = r.out.split('\n').find((l) => l.startsWith('RESULT '));
  if (line) results.push(JSON.parse(line.slice(7)));
  else results.push({ suite: s, trials: 0, inputs: 0, failures: 1, lostWrites: 0, seconds: (Date.now() - t) / 1000, details: {}, problems: [`exited with ${r.code}`] });
}
mkdirSync('out/reliability', { recursive: true });
writeFileSync('out/reliability/results.json', JSON.stringify(results, null, 2));
console.log('\n| suite | trials | inputs | failures | lost writes | seconds |\n|---|---:|---:|---:|---:|---:|');
for (const r of results) console.log(`| ${r.suite} | ${r.trials} | ${r.inputs} | ${r.failures} | ${r.lostWrites} | ${Math.round(r.seconds)} |`);
for (const r of results) for (const p of r.problems ?? []) console.log(`PROBLEM ${r.suite}: ${p}`);
// only the suites' own names (other test runs may share this machine's /dev/shm)
const mine = /^ud\.(km\d|model\d|gc|leak|cyc|foreign|none|fz|full|deadslot|lockword|neggen|initwait|unreadable|priv|shared|mode)/;
const leaked = readdirSync('/dev/shm').filter((f) => mine.test(f) && !before.has(f));
if (leaked.length > 0) console.log(`\nsegments left in /dev/shm: ${leaked.join(' ')}`);
process.exit(results.some((r) => r.failures > 0 || r.lostWrites > 0) || leaked.length > 0 ? 1 : 0);

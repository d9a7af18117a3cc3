// Runs test files with node:test, two at a time, in the order given (node --test sorts them by name from
// Node 22 on), with the default (spec) report; at the end, the time of each file, longest first.
//   node scripts/test-files.mjs <timeout ms per file> <file>...        (used by run-tests.mjs)
import { run } from 'node:test';
import { spec } from 'node:test/reporters';
import { relative } from 'node:path';
import { pipeline } from 'node:stream/promises';

const [timeout, ...files] = process.argv.slice(2);
const stream = run({ files, concurrency: 2, timeout: Number(timeout) });
let failed = false;
const ms = new Map();
const perFile = (d) => {
  if (d.nesting !== 0 || d.file === undefined) return;
  const f = relative(process.cwd(), d.file);
  ms.set(f, (ms.get(f) ?? 0) + (d.details?.duration_ms ?? 0));
};
stream.on('test:pass', perFile);
stream.on('test:fail', (d) => {
  perFile(d);
  if (!d.todo) failed = true;
});
await pipeline(stream, typeof spec === 'function' && spec.prototype ? new spec() : spec, process.stdout, { end: false });
// a file runs its top-level tests one after another: their sum is the file's time, without its start-up
const rows = [...ms].sort((a, b) => b[1] - a[1]);
console.log('\ntime per test file (the sum of its tests; two files run at a time):');
for (const [f, t] of rows) console.log(`  ${f.padEnd(40)} ${(t / 1000).toFixed(1).padStart(8)} s`);
process.exitCode = failed ? 1 : 0;

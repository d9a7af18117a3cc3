// Demo: several processes share one dict. Four workers each add 10,000 to a shared counter under the
// lock and publish their progress; the parent watches live, then checks that no update was lost.
import { fork } from 'node:child_process';
import { UltraDict } from 'ultradict';

const WORKERS = 4;
const INCREMENTS = 10_000;

if (process.argv[2] === 'worker') {
  const id = process.argv[3];
  const dict = new UltraDict({ name: process.argv[4], create: false });
  for (let i = 1; i <= INCREMENTS; i++) {
    dict.withLock(() => dict.set('counter', dict.get('counter') + 1));
    if (i % 1000 === 0) dict.set(`progress:${id}`, i);
  }
  dict.set(`done:${id}`, { pid: process.pid, at: new Date() });
  dict.close();
} else {
  const name = `demo_${process.pid}`;
  const dict = new UltraDict({ counter: 0 }, { name });
  console.log(`created dict "${name}"; starting ${WORKERS} worker processes`);
  const started = performance.now();
  const children = Array.from({ length: WORKERS }, (_, i) =>
    fork(new URL(import.meta.url).pathname, ['worker', String(i), name]),
  );
  const exits = children.map((c) => new Promise((resolve) => c.on('exit', resolve)));
  const timer = setInterval(() => {
    const progress = Array.from({ length: WORKERS }, (_, i) => dict.get(`progress:${i}`) ?? 0);
    console.log(`  counter = ${String(dict.get('counter')).padStart(6)}   per worker: ${progress.join(' / ')}`);
  }, 100);
  const codes = await Promise.all(exits);
  clearInterval(timer);
  const ms = performance.now() - started;
  const expected = WORKERS * INCREMENTS;
  const total = dict.get('counter');
  const done = Array.from({ length: WORKERS }, (_, i) => dict.get(`done:${i}`));
  console.log(`workers finished in ${ms.toFixed(0)} ms: ${done.map((d) => d.pid).join(', ')}`);
  console.log(`counter = ${total}, expected ${expected}: ${total === expected ? 'OK, no lost update' : 'LOST UPDATES'}`);
  console.log(`stats: ${JSON.stringify(dict.stats(), null, 0)}`);
  dict.close();
  process.exit(total === expected && codes.every((c) => c === 0) ? 0 : 1);
}

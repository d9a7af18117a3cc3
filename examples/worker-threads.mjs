// Example: a pool of worker threads shares a job queue, progress and results through one ultradict.
//
//   npm run build && node examples/worker-threads.mjs        (THREADS=4 JOBS=100)
//
// Each thread claims the next job with an atomic increment, counts the primes in its range of 10,000
// numbers and stores the result; the main thread follows the progress through change events and checks
// that every job was done exactly once.
import { isMainThread, Worker, workerData } from 'node:worker_threads';
import { UltraDict } from 'ultradict';

const THREADS = Number(process.env.THREADS ?? 4);
const JOBS = Number(process.env.JOBS ?? 100);
const RANGE = 10_000;

function countPrimes(from, to) {
  let n = 0;
  for (let x = Math.max(from, 2); x < to; x++) {
    let prime = true;
    for (let f = 2; f * f <= x; f++) {
      if (x % f === 0) {
        prime = false;
        break;
      }
    }
    if (prime) n++;
  }
  return n;
}

if (isMainThread) {
  const jobs = new UltraDict({ next: 0, done: 0 }, { name: `threads_example_${process.pid}` });
  const finished = new Promise((resolve) => {
    jobs.on('change', (c) => {
      if (c.type === 'reload') resolve(); // fell behind and reloaded the whole dict: no more detail
      if (c.key !== 'done') return;
      if (c.value % (JOBS / 4) === 0) console.log(`progress: ${c.value}/${JOBS} jobs`);
      if (c.value === JOBS) resolve();
    });
  });
  const threads = Array.from({ length: THREADS }, (_, id) => new Worker(new URL(import.meta.url), { workerData: { name: jobs.name, id } }));
  await Promise.all(threads.map((t) => new Promise((resolve, reject) => t.on('exit', resolve).on('error', reject))));
  jobs.refresh(); // applies what is left now; its change events follow in a microtask
  await finished;

  const perThread = new Array(THREADS).fill(0);
  let primes = 0;
  for (let job = 0; job < JOBS; job++) {
    const r = jobs.get(`result:${job}`);
    if (r === undefined) throw new Error(`job ${job} has no result`);
    perThread[r.by]++;
    primes += r.primes;
  }
  const ok = jobs.get('done') === JOBS && primes === countPrimes(0, JOBS * RANGE);
  console.log(`${THREADS} threads did ${jobs.get('done')} jobs (per thread: ${perThread.join(' / ')})`);
  console.log(`primes below ${JOBS * RANGE}: ${primes} ${ok ? '(checked: every job done exactly once)' : '(WRONG)'}`);
  jobs.close();
  process.exitCode = ok ? 0 : 1;
} else {
  const jobs = new UltraDict({ name: workerData.name, create: false });
  for (;;) {
    const job = jobs.increment('next') - 1; // atomic: no two threads get the same job
    if (job >= JOBS) break;
    const primes = countPrimes(job * RANGE, (job + 1) * RANGE);
    jobs.transaction(() => {
      jobs.set(`result:${job}`, { primes, by: workerData.id });
      jobs.increment('done');
    });
  }
  jobs.close();
}

// The example apps in examples/, run as a user would: the cluster HTTP server on loopback, the cluster cache,
// worker threads, the demo.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import http from 'node:http';
import { join } from 'node:path';
import { UltraDict } from '../src/index.js';
import { scaled, shmEntries, waitFor } from './lib/helpers.js';
import { ROOT as root } from './lib/paths.js';


interface Proc {
  output: () => string;
  exited: Promise<number | null>;
  kill: (sig: NodeJS.Signals) => void;
  pid: number;
}

function start(script: string, env: Record<string, string>, timeoutMs = 60_000): Proc {
  const p = spawn(process.execPath, [join(root, 'examples', script)], { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  p.stdout.on('data', (b: Buffer) => (out += b.toString()));
  p.stderr.on('data', (b: Buffer) => (out += b.toString()));
  const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
  const exited = new Promise<number | null>((resolve) => p.on('exit', (code) => (clearTimeout(timer), resolve(code))));
  return { output: () => out, exited, kill: (s) => p.kill(s), pid: p.pid! };
}

function request(port: number, path: string, client?: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    // agent: false = a new connection per request, so the cluster spreads them over its workers
    const req = http.get({ host: '127.0.0.1', port, path, agent: false, headers: client ? { 'x-client-id': client } : {}, timeout: scaled(10_000) }, (res) => {
      let body = '';
      res.on('data', (b: Buffer) => (body += b.toString()));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`request ${path} timed out`)));
    req.on('error', reject);
  });
}

test('cluster server: hit counts are exact across workers and the shared rate limiter rejects beyond its limit', async () => {
  const LIMIT = 5;
  const app = start('cluster-server.mjs', { PORT: '0', HOST: '127.0.0.1', WORKERS: '2', RATE_LIMIT: String(LIMIT), RATE_WINDOW_MS: '600000' });
  try {
    await waitFor(() => /listening on http:\/\/127\.0\.0\.1:\d+/.test(app.output()) || app.output().includes('Error'), 'the server to listen');
    const m = /listening on http:\/\/127\.0\.0\.1:(\d+) with 2 workers; dict "([\w-]+)"/.exec(app.output());
    assert.ok(m, app.output());
    const port = Number(m[1]);
    const name = m[2]!;

    // 30 distinct clients once each, and one greedy client 12 times, all at once
    const FREE = 30;
    const GREEDY = 12;
    const burst = (prefix: string): Promise<Array<{ status: number; body: string }>> =>
      Promise.all([
        ...Array.from({ length: FREE }, (_, i) => request(port, '/', `${prefix}client-${i}`)),
        ...Array.from({ length: GREEDY }, () => request(port, '/', `${prefix}greedy`)),
      ]);
    const results = await burst('');
    assert.equal(results.filter((r) => r.status === 200).length, FREE + LIMIT);
    assert.equal(results.filter((r) => r.status === 429).length, GREEDY - LIMIT);
    const pids = new Set(results.filter((r) => r.status === 200).map((r) => Number(/\(pid (\d+)\)/.exec(r.body)![1])));
    assert.equal(pids.size, 2, 'both workers served requests');

    // a worker is SIGKILLed between requests: the primary replaces it, and no count is lost
    process.kill([...pids][0]!, 'SIGKILL');
    await waitFor(() => app.output().includes('starting another'), 'the primary to replace the worker');
    const again = await burst('second-');
    assert.equal(again.filter((r) => r.status === 200).length, FREE + LIMIT);
    assert.equal(again.filter((r) => r.status === 429).length, GREEDY - LIMIT);

    const total = 2 * (FREE + GREEDY);
    const stats = JSON.parse((await request(port, '/stats')).body) as Record<string, unknown>;
    assert.equal(stats.hits, total, 'no hit lost across workers');
    assert.equal(stats.limited, 2 * (GREEDY - LIMIT));
    const perWorker = Object.entries(stats).filter(([k]) => k.startsWith('worker:'));
    assert.equal(perWorker.reduce((s, [, v]) => s + (v as number), 0), total);
    assert.equal(stats['rate:greedy'], LIMIT, 'the window counter of the greedy client');

    // another process (this one) sees the same numbers through the dict
    const d = new UltraDict({ name, create: false, autoUnlink: false });
    assert.equal(d.get('hits'), total);
    d.close();

    app.kill('SIGTERM');
    assert.equal(await app.exited, 0, app.output());
    assert.match(app.output(), new RegExp(`all workers stopped: ${total} hits, ${2 * (GREEDY - LIMIT)} rate-limited`));
    assert.deepEqual(shmEntries(name), [], 'the dict is gone from /dev/shm');
  } finally {
    app.kill('SIGKILL');
  }
});

test('worker_threads example: every job done exactly once, progress from change events', async () => {
  const app = start('worker-threads.mjs', { THREADS: '3', JOBS: '40' });
  assert.equal(await app.exited, 0, app.output());
  const out = app.output();
  assert.match(out, /3 threads did 40 jobs \(per thread: \d+ \/ \d+ \/ \d+\)/);
  assert.match(out, /primes below 400000: 33860 \(checked: every job done exactly once\)/);
  assert.deepEqual(out.match(/^progress: .*$/gm), ['progress: 10/40 jobs', 'progress: 20/40 jobs', 'progress: 30/40 jobs', 'progress: 40/40 jobs']);
  assert.deepEqual(shmEntries(`threads_example_${app.pid}`), []);
});

test('cluster cache example: 4 workers fetching the same products call the upstream once per product', async () => {
  const app = start('cluster-cache.mjs', { WORKERS: '4', PRODUCTS: '20' });
  assert.equal(await app.exited, 0, app.output());
  assert.match(app.output(), /4 workers served 80 lookups of 20 products/);
  assert.match(app.output(), /upstream calls: 20 \(one per product/);
  assert.deepEqual(shmEntries(`cache_example_${app.pid}`), []);
});

test('the demo (npm run demo) loses no update', async () => {
  const app = start('demo.mjs', {});
  assert.equal(await app.exited, 0, app.output());
  assert.match(app.output(), /OK, no lost update/);
});

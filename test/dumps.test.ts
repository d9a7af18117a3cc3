// Full dumps and generations: values larger than the buffer, the fixed dump area, amortisation, big dicts.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FullDumpMemoryFullError, UltraDict } from '../src/index.js';
import { Child, runChild, uniqueName } from './lib/helpers.js';

test('a 1 MB value with a 10 KB buffer reaches every process', async () => {
  const name = uniqueName('big');
  using d = new UltraDict<string>({ name, bufferSize: 10_000 });
  using e = new UltraDict<string>({ name });
  d.set('small', 'x');
  const big = 'b'.repeat(1 << 20);
  d.set('big', big);
  assert.equal(e.get('big'), big);
  const msgs = await runChild('child', { op: 'get', name, key: 'big' });
  assert.equal((msgs.find((m) => m.type === 'value')!.value as string).length, 1 << 20);
  assert.ok(d.stats().dumps >= 1);
  assert.ok(d.stats().streamBytesSize >= 1 << 20);
});

test('100k writes then delete all', () => {
  const name = uniqueName('many');
  using d = new UltraDict<number>({ name, bufferSize: 1 << 16 });
  using e = new UltraDict<number>({ name });
  for (let i = 0; i < 100_000; i++) d.set(i, i);
  assert.equal(e.size, 100_000);
  assert.equal(e.get(99_999), 99_999);
  for (let i = 0; i < 100_000; i++) d.delete(i);
  assert.equal(e.size, 0);
  assert.equal(d.size, 0);
});

test('dumps are amortised: the stream grows with the dict, dump bytes stay a fraction of written bytes', () => {
  using d = new UltraDict<number>({ name: uniqueName('amort'), bufferSize: 1024 });
  let dumpBytes = 0;
  let dumps = 0;
  const frame = 32; // bytes per small SET frame (key k<i>, f64 value, header, padding)
  for (let i = 0; i < 100_000; i++) {
    d.set(`k${i}`, i);
    const s = d.stats();
    if (s.dumps !== dumps) {
      dumps = s.dumps;
      dumpBytes += s.lastDumpBytes;
      assert.ok(s.streamBytesSize >= 2 * s.lastDumpBytes, 'a new stream is at least twice the dump');
    }
  }
  const written = 100_000 * frame;
  assert.ok(dumpBytes <= written, `dump bytes ${dumpBytes} vs written ${written}`);
  // a large dict: one small write never triggers a dump of the whole dict on its own
  const before = d.stats().dumps;
  for (let i = 0; i < 1000; i++) d.set('hot', i);
  assert.ok(d.stats().dumps - before <= 1);
});

test('dump() forces a new generation; lagging and fresh readers load it', () => {
  const name = uniqueName('force');
  using d = new UltraDict<number>({ name });
  using lagging = new UltraDict<number>({ name });
  d.update({ a: 1, b: 2 });
  d.dump();
  d.set('c', 3);
  d.dump();
  d.dump();
  assert.equal(d.stats().generation, 3);
  assert.deepEqual(lagging.toJSON(), { a: 1, b: 2, c: 3 });
  const fresh = new UltraDict<number>({ name });
  assert.deepEqual(fresh.toJSON(), { a: 1, b: 2, c: 3 });
  fresh.close();
});

test('fixed dump area: a dump that does not fit throws FullDumpMemoryFullError and the write is rolled back everywhere', async () => {
  const name = uniqueName('fixed');
  using d = new UltraDict<string>({ name, bufferSize: 1024, fullDumpSize: 4096 });
  using e = new UltraDict<string>({ name });
  for (let i = 0; i < 20; i++) d.set(`k${i}`, 'v'.repeat(100)); // 20 x ~110 B: fits
  assert.equal(e.size, 20);
  assert.ok(d.stats().dumps >= 1, 'dumps went to the fixed area');
  let err: unknown;
  for (let i = 20; i < 100 && err === undefined; i++) {
    try {
      d.set(`k${i}`, 'v'.repeat(100));
    } catch (x) {
      err = x;
      assert.equal(d.has(`k${i}`), false, 'rolled back locally');
      assert.equal(e.has(`k${i}`), false, 'never published');
    }
  }
  assert.ok(err instanceof FullDumpMemoryFullError);
  assert.equal(d.size, e.size);
  // with a full stream every write needs a dump, also a delete: clearing makes room again
  for (let i = 0; i < 5; i++) {
    try {
      d.delete(`k${i}`);
    } catch (x) {
      assert.ok(x instanceof FullDumpMemoryFullError);
    }
    assert.equal(e.has(`k${i}`), d.has(`k${i}`));
  }
  d.clear();
  assert.equal(e.size, 0);
  d.set('after', 'ok');
  assert.equal(e.get('after'), 'ok');
  const msgs = await runChild('child', { op: 'get', name, key: 'after' });
  assert.equal(msgs.find((m) => m.type === 'value')!.value, 'ok');
  assert.throws(() => new UltraDict({ 'k': 'v'.repeat(5000) }, { fullDumpSize: 1024 }), FullDumpMemoryFullError);
});

test('thousands of dumps forced by a tiny buffer under concurrent readers and writers: exact final state', async () => {
  const name = uniqueName('churn');
  using d = new UltraDict<number>({ name, bufferSize: 1024 });
  const writers = Array.from({ length: 3 }, (_, i) => new Child('child', { op: 'incr', name, key: `n${i % 2}`, n: 1500 }));
  const reader = new Child('child', { op: 'reader', name, ids: [], ms: 1500 });
  let last = 0;
  while (writers.some((w) => w.proc.exitCode === null)) {
    const v = (d.get('n0') ?? 0) + (d.get('n1') ?? 0);
    assert.ok(v >= last, 'counters never go back');
    last = v;
    await new Promise((r) => setImmediate(r));
  }
  await Promise.all(writers.map((w) => w.done()));
  await reader.done();
  assert.equal(d.get('n0'), 3000);
  assert.equal(d.get('n1'), 1500);
  assert.ok(d.stats().dumps > 100, `dumps: ${d.stats().dumps}`);
});

test('batches are never seen half-applied by a reader in another process', async () => {
  const name = uniqueName('atomic');
  using d = new UltraDict<number>({ name, bufferSize: 2048 });
  const w = new Child('child', { op: 'writer', name, id: 7 });
  await w.message('ready');
  const r = new Child('child', { op: 'reader', name, ids: [7], ms: 1500 });
  const done = await r.message('done', 30_000);
  await w.kill9();
  assert.ok((done.reads as number) > 1000, `reads ${done.reads}`);
  assert.equal(d.get('a7'), d.get('b7'));
});

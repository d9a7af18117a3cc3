// Issue 3 features across real processes: compute/increment/transaction, nested dicts, the object view, change events.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import { spawn } from 'node:child_process';
import { NotFoundError, SerializationError, UltraDict, type Change } from '../src/index.js';
import { Child, runChild, scaled, shmEntries, uniqueName, waitFor } from './lib/helpers.js';
import { ROOT as root } from './lib/paths.js';

test('compute and increment are atomic read-modify-writes', async () => {
  const name = uniqueName('rmw');
  using d = new UltraDict<any>({ name });
  assert.equal(d.increment('n'), 1);
  assert.equal(d.increment('n', 5), 6);
  assert.equal(d.increment('n', -2), 4);
  d.set('s', 'text');
  assert.throws(() => d.increment('s'), TypeError);
  assert.equal(d.compute('list', (old) => [...(old ?? []), 1]).length, 1);
  assert.deepEqual(d.compute('list', (old) => [...old, 2]), [1, 2]);
  assert.equal(d.compute('list', () => undefined), undefined);
  assert.equal(d.has('list'), false);
  assert.throws(() => d.compute('x', () => {
    throw new Error('no');
  }), /no/);
  assert.equal(d.has('x'), false);
  const kids = Array.from({ length: 3 }, () => new Child('child', { op: 'incr', name, key: 'c', n: 1000 }));
  for (let i = 0; i < 1000; i++) d.increment('c');
  await Promise.all(kids.map((k) => k.done()));
  assert.equal(d.get('c'), 4000);
});

test('transaction: one batch, rolled back on exception (locally too), nested transactions join', () => {
  const name = uniqueName('tx');
  using d = new UltraDict<any>({ name });
  using e = new UltraDict<any>({ name });
  d.set('keep', 1);
  const r = d.transaction(() => {
    d.set('a', 1);
    d.set('b', 2);
    d.delete('keep');
    assert.equal(d.get('a'), 1, 'reads inside see the transaction');
    assert.equal(d.has('keep'), false);
    return 'result';
  });
  assert.equal(r, 'result');
  assert.deepEqual(e.toJSON(), { a: 1, b: 2 });
  const before = d.stats().streamBytesUsed;
  assert.throws(
    () =>
      d.transaction(() => {
        d.set('a', 100);
        d.clear();
        d.set('c', 3);
        d.update({ x: 1, y: 2 });
        throw new Error('abort');
      }),
    /abort/,
  );
  assert.deepEqual(d.toJSON(), { a: 1, b: 2 }, 'rolled back locally');
  assert.deepEqual(e.toJSON(), { a: 1, b: 2 }, 'nothing published');
  assert.equal(d.stats().streamBytesUsed, before);
  // a failing inner transaction rolls back to where it started; the outer one goes on
  d.transaction(() => {
    d.set('outer', 1);
    assert.throws(() =>
      d.transaction(() => {
        d.set('inner', 1);
        throw new Error('inner');
      }),
    );
    d.transaction(() => d.set('inner2', 2));
  });
  assert.deepEqual(e.toJSON(), { a: 1, b: 2, outer: 1, inner2: 2 });
  // serialization errors inside a transaction leave it usable and change nothing
  d.transaction(() => {
    d.set('ok', 1);
    assert.throws(() => d.set('bad', () => 1), SerializationError);
  });
  assert.equal(e.get('ok'), 1);
  assert.equal(e.has('bad'), false);
  assert.throws(() => d.transaction(async () => d.set('async', 1)), TypeError);
  assert.equal(d.has('async'), false);
  assert.equal(d.lock.held, false);
});

test('a transaction that forces a generation switch (dump) is still one batch', () => {
  const name = uniqueName('txdump');
  using d = new UltraDict<string>({ name, bufferSize: 1024 });
  using e = new UltraDict<string>({ name });
  d.transaction(() => {
    for (let i = 0; i < 50; i++) d.set(`k${i}`, 'v'.repeat(100));
  });
  assert.equal(e.size, 50);
  assert.ok(d.stats().generation >= 1);
});

test('transactions seen from another process are never half-applied', async () => {
  const name = uniqueName('txatomic');
  using d = new UltraDict<number>({ name, bufferSize: 4096 });
  const w = new Child('child', { op: 'txWriter', name, id: 9, ms: 1500 });
  await w.message('ready');
  const r = new Child('child', { op: 'reader', name, ids: [9], ms: 1200 });
  const done = await r.message('done', 30_000);
  await w.done();
  assert.ok((done.reads as number) > 500, `reads: ${done.reads}`);
  assert.equal(d.get('a9'), d.get('b9'));
});

test('nested dicts (recurse): views, visible across processes, plain values stay plain', async () => {
  const name = uniqueName('nest');
  using d = new UltraDict<any>({ name, recurse: true });
  d.set('nested', { counter: 0, deeper: { x: 1 } });
  const nested = d.get('nested');
  assert.ok(nested instanceof UltraDict);
  assert.deepEqual(nested.path, ['nested']);
  assert.equal(nested.get('counter'), 0);
  assert.ok(nested.get('deeper') instanceof UltraDict);
  nested.set('counter', 1);
  nested.get('deeper').set('y', 2);
  d.set('arr', [1, { a: 1 }]);
  assert.ok(Array.isArray(d.get('arr')), 'arrays stay plain values');
  class Point {
    constructor(public x = 1) {}
  }
  d.set('inst', new Point());
  assert.ok(!(d.get('inst') instanceof UltraDict), 'class instances stay plain values');
  const msgs = await runChild('child', { op: 'get', name, key: 'nested' });
  const stats = msgs.find((m) => m.type === 'value')!;
  assert.deepEqual(stats.value, { counter: 1, deeper: { x: 1, y: 2 } }, 'the child sees the nested contents (sent as JSON)');
  const other = new UltraDict<any>({ name });
  assert.equal(other.stats().recurse, true, 'attachers inherit recurse');
  assert.equal(other.get('nested').get('deeper').get('y'), 2);
  other.get('nested').get('deeper').set('z', 3);
  assert.equal(nested.get('deeper').get('z'), 3);
  assert.equal(JSON.stringify(d), JSON.stringify({ nested: { counter: 1, deeper: { x: 1, y: 2, z: 3 } }, arr: [1, { a: 1 }], inst: { x: 1 } }));
  // a stale view of a deleted nested dict: reads are empty, writes fail clearly
  const deeper = nested.get('deeper');
  other.get('nested').delete('deeper');
  assert.equal(deeper.size, 0);
  assert.equal(deeper.get('y'), undefined);
  assert.throws(() => deeper.set('w', 1), NotFoundError);
  other.close();
});

test('re-assigning or deleting nested dicts frees everything: the segment count does not change', () => {
  const name = uniqueName('nestfree');
  const d = new UltraDict<any>({ name, recurse: true });
  try {
    d.set('a', { b: { c: { d: 1 } } });
    const before = shmEntries(name).length;
    for (let i = 0; i < 50; i++) {
      d.set('a', { b: { c: { d: i } }, more: { x: i } });
      d.get('a').set('tmp', { y: i });
      d.get('a').delete('tmp');
    }
    d.delete('a');
    assert.equal(shmEntries(name).length, before, 'nested dicts live in the root segments');
    assert.equal(d.size, 0);
  } finally {
    d.close();
  }
  assert.deepEqual(shmEntries(name), []);
});

test('4 processes increment a nested counter under withLock: exact total', async () => {
  const name = uniqueName('nestincr');
  using d = new UltraDict<any>({ name, recurse: true, bufferSize: 4096 });
  const kids = Array.from({ length: 4 }, () => new Child('child', { op: 'nestedIncr', name, n: 500 }));
  await Promise.all(kids.map((k) => k.done()));
  assert.equal(d.get('nested').get('counter'), 2000);
});

test('several processes creating the same nested key at once lose nothing (nested())', async () => {
  const name = uniqueName('nestrace');
  using d = new UltraDict<any>({ name, recurse: true });
  const at = Date.now() + 400;
  const kids = Array.from({ length: 4 }, (_, id) => new Child('child', { op: 'nestedCreate', name, id, n: 50, at }));
  await Promise.all(kids.map((k) => k.done()));
  assert.equal(d.get('shared').size, 200);
  assert.throws(() => new UltraDict({ name, recurse: false }), /recurse/);
  assert.throws(() => new UltraDict({ recurseRegister: 'x' } as never), /not needed/);
});

test('asObject(): property access acts on the shared dict', async () => {
  const name = uniqueName('obj');
  using d = new UltraDict<any>({ name, recurse: true });
  const o = d.asObject();
  o.x = 1;
  assert.equal(d.get('x'), 1);
  assert.equal(o.x, 1);
  assert.equal('x' in o, true);
  assert.equal('nope' in o, false);
  o.nested = { counter: 0 };
  o.nested.counter += 1;
  o.nested.counter += 1;
  assert.equal(d.get('nested').get('counter'), 2);
  assert.deepEqual(Object.keys(o), ['x', 'nested']);
  assert.deepEqual({ ...o }.x, 1);
  assert.equal(JSON.stringify(o), '{"x":1,"nested":{"counter":2}}');
  delete o.x;
  assert.equal(d.has('x'), false);
  const msgs = await runChild('child', { op: 'get', name, key: 'nested' });
  assert.equal((msgs.find((m) => m.type === 'value')!.stats as { keys: number }).keys, 1);
  // values read back cannot be mutated in place (no silent divergence)
  d.set('cfg', [1, 2]);
  assert.throws(() => o.cfg.push(3), TypeError);
});

test('change events: 10,000 writes from another process give 10,000 events, in order', async () => {
  const name = uniqueName('events');
  using d = new UltraDict<number>({ name });
  const seen: Change[] = [];
  d.on('change', (c) => seen.push(c));
  assert.equal(d.stats().listeners, 1);
  const w = new Child('child', { op: 'writeN', name, n: 10_000, key: 'k' });
  await w.done();
  await waitFor(() => seen.filter((c) => c.type === 'set').length >= 10_000 || seen.some((c) => c.type === 'reload'), '10,000 events');
  const sets = seen.filter((c) => c.type === 'set');
  assert.equal(seen.filter((c) => c.type === 'reload').length, 0, 'a listener that keeps up never needs a reload');
  assert.equal(sets.length, 10_000);
  assert.ok(sets.every((c, i) => c.key === 'k' && c.value === i), 'in order');
});

test('change events across constant generation switches: every change, or a reload where a stream was missed', async () => {
  const name = uniqueName('events3');
  using d = new UltraDict<number>({ name, bufferSize: 2048 });
  const seen: Change[] = [];
  d.on('change', (c) => seen.push(c));
  const w = new Child('child', { op: 'writeN', name, n: 5000, key: 'k' });
  await w.done();
  await waitFor(() => seen.length > 0 && (seen.at(-1)!.value === 4999 || (seen.at(-1)!.type === 'reload' && d.get('k') === 4999)), 'the last change');
  const reloads = seen.filter((c) => c.type === 'reload').length;
  const sets = seen.filter((c) => c.type === 'set');
  let last = -1;
  for (const c of seen) {
    if (c.type === 'set') {
      assert.ok((c.value as number) > last, 'sets stay in order');
      last = c.value as number;
    }
  }
  assert.ok(reloads > 0 || sets.length === 5000, `sets ${sets.length}, reloads ${reloads}`);
  assert.ok(d.stats().dumps > 10);
});

test('another process listening receives every change; own writes are events too', async () => {
  const name = uniqueName('events2');
  using d = new UltraDict<number>({ name });
  const l = new Child('child', { op: 'listen', name, n: 3000 });
  await l.message('ready');
  await waitFor(() => d.stats().listeners === 1, 'the listener to register');
  for (let i = 0; i < 3000; i++) d.set('k', i);
  const r = await l.message('count');
  assert.equal(r.count, 3000);
  assert.equal(r.ordered, true);
  await l.done();
  await waitFor(() => d.stats().listeners === 0, 'the listener count to drop');
  const own: Change[] = [];
  d.on('change', (c) => own.push(c));
  d.set('mine', 1);
  d.delete('mine');
  d.update({ p: 1, q: 2 });
  d.clear();
  await waitFor(() => own.length === 5, 'own events');
  assert.deepEqual(own.map((c) => c.type), ['set', 'delete', 'set', 'set', 'clear']);
});

test('a reader that missed a whole generation gets one reload event', async () => {
  const name = uniqueName('reload');
  using e = new UltraDict<number>({ name });
  const got: Change[] = [];
  // e has no listener while another process switches two generations: then it listens and syncs
  const w = new Child('child', { op: 'attachWait', name });
  await w.message('ready');
  await runChild('child', { op: 'set', name, key: 'a', value: 1 });
  await runChild('child', { op: 'dump', name });
  await runChild('child', { op: 'dump', name });
  e.on('change', (c) => got.push(c));
  e.refresh();
  await waitFor(() => got.length > 0, 'reload event');
  assert.deepEqual(got, [{ type: 'reload' }]);
  assert.equal(e.get('a'), 1);
  w.send('close');
  await w.done();
});

test('watch() async iterator and waitForChange()', async () => {
  const name = uniqueName('watch');
  using d = new UltraDict<number>({ name });
  assert.equal(await d.waitForChange({ timeout: 30 }), null);
  const ac = new AbortController();
  const got: Change[] = [];
  const iter = (async () => {
    for await (const c of d.watch({ signal: ac.signal })) {
      got.push(c);
      if (got.length === 3) ac.abort();
    }
  })();
  const w = new Child('child', { op: 'writeN', name, n: 3, key: 'w' });
  await assert.rejects(iter, { name: 'AbortError' });
  await w.done();
  assert.deepEqual(got.map((c) => c.value), [0, 1, 2]);
  const p = d.waitForChange({ timeout: scaled(10_000) });
  await runChild('child', { op: 'set', name, key: 'x', value: 42 });
  assert.deepEqual(await p, { type: 'set', key: 'x', value: 42 });
  assert.equal(d.stats().listeners, 0, 'no listener left');
});

test('listeners do not keep the process alive unless ref() is called', async () => {
  const script = (ref: boolean): string => `
    import { UltraDict } from 'ultradict';
    const d = new UltraDict({ name: process.argv[1] });
    d.on('change', () => {});
    ${ref ? 'd.ref(); setTimeout(() => d.unref(), 300);' : ''}
    process.stdout.write('listening\\n');`;
  for (const ref of [false, true]) {
    const name = uniqueName('unref');
    const p = spawn(process.execPath, ['--input-type=module', '-e', script(ref), name], { cwd: root });
    const exited = new Promise<number | null>((r) => p.on('exit', (c) => r(c)));
    const timer = setTimeout(() => p.kill('SIGKILL'), scaled(20_000));
    assert.equal(await exited, 0, ref ? 'unref() lets it exit' : 'exits on its own while listening');
    clearTimeout(timer);
    assert.deepEqual(shmEntries(name), []);
  }
});

test('a worker thread that terminates while listening shuts down cleanly', async () => {
  const name = uniqueName('wlisten');
  using d = new UltraDict<number>({ name });
  const src = `
    const { workerData, parentPort } = require('node:worker_threads');
    import(workerData.url).then(({ UltraDict }) => {
      const d = new UltraDict({ name: workerData.name, create: false });
      let n = 0;
      d.on('change', () => { n++; parentPort.postMessage(n); });
      d.ref();
      parentPort.postMessage('listening');
    });`;
  const w = new Worker(src, { eval: true, workerData: { url: new URL('../src/index.js', import.meta.url).href, name } });
  const msgs: unknown[] = [];
  w.on('message', (m) => msgs.push(m));
  await waitFor(() => msgs.includes('listening'), 'worker listening');
  d.set('a', 1);
  await waitFor(() => msgs.includes(1), 'event in the worker');
  const code = await w.terminate();
  assert.equal(typeof code, 'number');
  // the terminated thread's listener is taken out of the shared count by the addon's teardown hook
  assert.equal(d.stats().listeners, 0);
  d.set('b', 2); // still works
  assert.equal(d.get('b'), 2);
});

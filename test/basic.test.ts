// Map semantics of one UltraDict and of two handles in one process; options, names and errors.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  AlreadyClosedError,
  AlreadyExistsError,
  InvalidNameError,
  NotFoundError,
  ParameterMismatchError,
  SerializationError,
  UltraDict,
  UltraDictError,
} from '../src/index.js';
import { runChild, shmEntries, uniqueName } from './lib/helpers.js';

test('behaves like a Map', () => {
  using d = new UltraDict<unknown>({ name: uniqueName() });
  assert.equal(d.set('a', 1), d);
  d.set(1, 'one').set('1', 'string one');
  assert.equal(d.get('a'), 1);
  assert.equal(d.get(1), 'one');
  assert.equal(d.get('1'), 'string one');
  assert.equal(d.size, 3);
  assert.equal(d.has('a'), true);
  assert.equal(d.has('zz'), false);
  assert.deepEqual([...d.keys()], ['a', 1, '1']);
  assert.deepEqual([...d.values()], [1, 'one', 'string one']);
  assert.deepEqual([...d], [['a', 1], [1, 'one'], ['1', 'string one']]);
  assert.deepEqual([...d.entries()], [...d]);
  const seen: unknown[] = [];
  d.forEach((v, k, m) => {
    assert.equal(m, d);
    seen.push([k, v]);
  });
  assert.deepEqual(seen, [...d]);
  assert.equal(Object.prototype.toString.call(d), '[object UltraDict]');
  assert.equal(JSON.stringify(d), JSON.stringify({ a: 1, '1': 'string one' }));
  assert.equal(d.delete('a'), true);
  assert.equal(d.delete('a'), false);
  assert.equal(d.size, 2);
  d.set(NaN, 'nan').set(-0, 'zero');
  assert.equal(d.get(NaN), 'nan');
  assert.equal(d.get(0), 'zero');
  d.clear();
  assert.equal(d.size, 0);
  assert.deepEqual([...d], []);
});

test('iteration is over a consistent snapshot', () => {
  using d = new UltraDict<number>({ name: uniqueName() });
  using e = new UltraDict<number>({ name: d.name });
  d.update([['a', 1], ['b', 2], ['c', 3]]);
  const keys: unknown[] = [];
  for (const [k] of d) {
    keys.push(k);
    e.set(`new-${k}`, 0); // another handle writes during the iteration
    d.get('a'); // which this handle picks up
  }
  assert.deepEqual(keys, ['a', 'b', 'c']);
  assert.equal(d.size, 6);
});

test('keys must be strings or numbers', () => {
  using d = new UltraDict({ name: uniqueName() });
  for (const bad of [null, undefined, {}, [], true, 1n, Symbol('s')]) {
    assert.throws(() => d.set(bad as never, 1), TypeError);
    assert.throws(() => d.delete(bad as never), TypeError);
  }
  assert.throws(() => d.set('\ud800', 1), TypeError);
  assert.equal(d.size, 0);
});

test('initial items: object, Map, iterable; they go in as one dump, not one frame each', () => {
  const big = Object.fromEntries(Array.from({ length: 20_000 }, (_, i) => [`k${i}`, i]));
  const d = new UltraDict(big, { name: uniqueName() });
  try {
    assert.equal(d.size, 20_000);
    assert.equal(d.get('k19999'), 19_999);
    assert.equal(d.stats().streamBytesUsed, 0);
    assert.equal(d.stats().dumps, 1);
  } finally {
    d.close();
  }
  const m = new UltraDict(new Map<string | number, string>([[1, 'x'], ['y', 'z']]), { name: uniqueName() });
  assert.deepEqual([...m], [[1, 'x'], ['y', 'z']]);
  m.close();
  const it = new UltraDict([['p', 1]] as const, {});
  assert.equal(it.get('p'), 1);
  assert.match(it.name, /^ud_[0-9a-f]{12}$/);
  it.close();
  // initial items are written only by the creator; an attacher does not overwrite
  const n = uniqueName();
  const c = new UltraDict({ x: 1 }, { name: n });
  c.set('x', 2);
  const a = new UltraDict({ x: 100 }, { name: n });
  assert.equal(a.get('x'), 2);
  a.close();
  c.close();
});

test('update() is one batch', () => {
  using d = new UltraDict({ name: uniqueName() });
  d.update({ a: 1, b: 2 });
  d.update(new Map([['c', 3]]));
  d.update([['d', 4]]);
  assert.deepEqual(d.toJSON(), { a: 1, b: 2, c: 3, d: 4 });
  const before = d.stats().streamBytesUsed;
  d.update([]);
  assert.equal(d.stats().streamBytesUsed, before);
  assert.throws(() => d.update([['ok', 1], [{} as never, 2]]), TypeError);
  assert.equal(d.has('ok'), false, 'a failed batch writes nothing');
});

test('options are validated; unknown options are errors, never keys', () => {
  assert.throws(() => new UltraDict({ size: 500000 } as never), /unknown option "size"/);
  assert.throws(() => new UltraDict({ bufferSize: 10 }), TypeError);
  assert.throws(() => new UltraDict({ bufferSize: 1.5 }), TypeError);
  assert.throws(() => new UltraDict({ mode: 0o1777 }), TypeError);
  assert.throws(() => new UltraDict({ lockTimeout: -1 }), TypeError);
  assert.throws(() => new UltraDict({ serializer: 'pickle' as never }), TypeError);
  assert.throws(() => new UltraDict({ create: 'yes' as never }), TypeError);
  assert.throws(() => new UltraDict(42 as never, {}), TypeError);
});

test('names are validated and cannot escape the shm namespace', () => {
  for (const bad of ['', '../x', 'a/b', '/abs', 'a\0b', 'x'.repeat(101), 'sp ace', 'dot.ted', 'ü']) {
    assert.throws(() => new UltraDict({ name: bad }), InvalidNameError, JSON.stringify(bad));
    assert.throws(() => UltraDict.exists(bad), InvalidNameError);
    assert.throws(() => UltraDict.unlink(bad), InvalidNameError);
  }
  assert.throws(() => new UltraDict({ name: 5 as never }), InvalidNameError);
});

test('create: true twice, create: false on a missing name', () => {
  const name = uniqueName();
  assert.throws(() => new UltraDict({ name, create: false }), NotFoundError);
  assert.equal(UltraDict.exists(name), false);
  const d = new UltraDict({ name, create: true });
  assert.equal(UltraDict.exists(name), true);
  assert.throws(() => new UltraDict({ name, create: true }), AlreadyExistsError);
  const e = new UltraDict({ name, create: false });
  e.close();
  d.close();
  assert.equal(UltraDict.exists(name), false);
  assert.throws(() => new UltraDict({ name, create: false }), NotFoundError);
});

test('an attacher inherits the options; explicit different ones are a ParameterMismatchError', () => {
  const name = uniqueName();
  using d = new UltraDict({ name, bufferSize: 4096, serializer: 'json' });
  const e = new UltraDict({ name });
  assert.equal(e.stats().bufferSize, 4096);
  assert.equal(e.stats().serializer, 'json');
  e.close();
  assert.throws(() => new UltraDict({ name, serializer: 'msgpack' }), ParameterMismatchError);
  assert.throws(() => new UltraDict({ name, bufferSize: 8192 }), ParameterMismatchError);
  assert.throws(() => new UltraDict({ name, mode: 0o644 }), ParameterMismatchError);
  const f = new UltraDict({ name, serializer: 'json', bufferSize: 4096 });
  f.close();
});

test('two handles in one process see each other', () => {
  const name = uniqueName();
  using a = new UltraDict<number>({ name });
  using b = new UltraDict<number>({ name });
  a.set('x', 1);
  assert.equal(b.get('x'), 1);
  b.set('y', 2);
  assert.equal(a.get('y'), 2);
  assert.equal(a.size, 2);
  assert.equal(b.size, 2);
  // the lock is re-entrant per thread, across handles
  a.withLock(() => b.withLock(() => b.set('z', 3)));
  assert.equal(a.get('z'), 3);
});

test('values read back are frozen copies, so mutation cannot silently diverge', () => {
  using d = new UltraDict<any>({ name: uniqueName() });
  const v = { cfg: { x: 1 }, list: [1, 2] };
  d.set('v', v);
  v.cfg.x = 99; // the caller's object is not the stored one
  const got = d.get('v');
  assert.equal(got.cfg.x, 1);
  assert.throws(() => {
    got.cfg.x = 2;
  }, TypeError);
  assert.throws(() => got.list.push(3), TypeError);
});

test('unserializable values are a SerializationError and change nothing', () => {
  for (const serializer of ['msgpack', 'json', 'v8'] as const) {
    using d = new UltraDict<any>({ name: uniqueName(), serializer });
    d.set('keep', 1);
    const used = d.stats().streamBytesUsed;
    for (const bad of [() => 1, Symbol('s'), { f() {} }, [1, () => 2], new Map([['k', () => 1]])]) {
      assert.throws(() => d.set('bad', bad), SerializationError, `${serializer}: ${String(bad)}`);
      assert.throws(() => d.update({ ok: 1, bad }), SerializationError);
    }
    assert.equal(d.has('bad'), false);
    assert.equal(d.has('ok'), false);
    assert.equal(d.stats().streamBytesUsed, used);
    assert.ok(new SerializationError('x') instanceof UltraDictError);
  }
});

test('the msgpack default carries JSON types, undefined, Date, Map, Set, BigInt, typed arrays, Buffers', () => {
  const name = uniqueName();
  using d = new UltraDict<any>({ name });
  using e = new UltraDict<any>({ name });
  const value = {
    n: 1.5,
    s: 'ß✓',
    b: true,
    nil: null,
    u: undefined,
    arr: [1, 'x', null],
    date: new Date(1700000000000),
    map: new Map<unknown, unknown>([[1, 'a'], ['k', { z: 1 }]]),
    set: new Set([1, 2, 3]),
    big: 12345678901234567890n,
    f32: new Float32Array([1.5, 2.5]),
    u8: new Uint8Array([1, 2, 3]),
    buf: Buffer.from('hello'),
    nested: { deep: { er: [1, { x: 2 }] } },
  };
  d.set('v', value);
  d.set('u', undefined);
  d.set('bigint', -5n);
  const got = e.get('v');
  assert.deepEqual(got.date, value.date);
  assert.deepEqual(got.map, value.map);
  assert.deepEqual(got.set, value.set);
  assert.equal(got.big, value.big);
  assert.deepEqual([...got.f32], [1.5, 2.5]);
  assert.ok(got.f32 instanceof Float32Array);
  assert.deepEqual([...got.u8], [1, 2, 3]);
  assert.equal(Buffer.from(got.buf).toString(), 'hello');
  assert.equal('u' in got, true);
  assert.equal(got.u, undefined);
  assert.deepEqual(got.nested, value.nested);
  assert.equal(e.has('u'), true);
  assert.equal(e.get('u'), undefined);
  assert.equal(e.get('bigint'), -5n);
});

test('json and v8 serializers, and a custom one', () => {
  const j = new UltraDict<any>({ name: uniqueName(), serializer: 'json' });
  j.set('o', { a: [1, 2], d: new Date(0) });
  assert.deepEqual(j.get('o'), { a: [1, 2], d: '1970-01-01T00:00:00.000Z' });
  assert.throws(() => j.set('m', new Map()), SerializationError);
  assert.throws(() => j.set('b', { x: 1n }), SerializationError);
  j.close();
  const v = new UltraDict<any>({ name: uniqueName(), serializer: 'v8' });
  v.set('o', { m: new Map([[1, 2]]), r: /x/g });
  assert.deepEqual(v.get('o').m, new Map([[1, 2]]));
  const cyclic: any = { a: 1 };
  cyclic.self = cyclic;
  v.set('cyclic', cyclic); // v8 keeps cycles
  assert.equal(v.get('cyclic').self, v.get('cyclic'));
  v.close();
  for (const serializer of ['msgpack', 'json'] as const) {
    const m = new UltraDict<any>({ name: uniqueName(), serializer });
    assert.throws(() => m.set('cyclic', cyclic), /cyclic structure/);
    assert.equal(m.size, 0);
    m.close();
  }
  const upper = {
    name: 'upper-json',
    serialize: (x: unknown) => Buffer.from(JSON.stringify(x).toUpperCase()),
    deserialize: (b: Uint8Array) => JSON.parse(Buffer.from(b).toString()),
  };
  const name = uniqueName();
  const c = new UltraDict<any>({ name, serializer: upper });
  c.set('o', { a: 'x' });
  assert.deepEqual(c.get('o'), { A: 'X' });
  assert.throws(() => new UltraDict({ name }), ParameterMismatchError, 'custom serializers must be passed');
  const c2 = new UltraDict<any>({ name, serializer: upper });
  assert.deepEqual(c2.get('o'), { A: 'X' });
  c2.close();
  c.close();
  assert.throws(() => new UltraDict({ serializer: { name: 'json', serialize: () => new Uint8Array(), deserialize: () => 1 } }), TypeError);
  const broken = new UltraDict({ serializer: { name: 'broken', serialize: () => 'nope' as never, deserialize: () => 1 } });
  assert.throws(() => broken.set('k', {}), SerializationError);
  assert.equal(broken.size, 0);
  broken.close();
});

test('a closed dict throws AlreadyClosedError from every method; close is idempotent', () => {
  const d = new UltraDict({ name: uniqueName() });
  d.set('a', 1);
  d.close();
  d.close();
  assert.equal(d.closed, true);
  const calls: Array<() => unknown> = [
    () => d.get('a'),
    () => d.set('a', 2),
    () => d.has('a'),
    () => d.delete('a'),
    () => d.clear(),
    () => d.size,
    () => [...d],
    () => d.keys(),
    () => d.values(),
    () => d.entries(),
    () => d.forEach(() => {}),
    () => d.update({ x: 1 }),
    () => d.refresh(),
    () => d.dump(),
    () => d.stats(),
    () => d.data,
    () => d.withLock(() => 1),
    () => d.lock.acquire(),
    () => d.unlink(),
    () => JSON.stringify(d),
  ];
  for (const c of calls) assert.throws(c, AlreadyClosedError);
});

test('using / Symbol.dispose closes the dict; segments go with the creator', () => {
  const name = uniqueName();
  {
    using d = new UltraDict({ name });
    d.set('a', 1);
    assert.ok(shmEntries(name).length >= 2);
  }
  assert.deepEqual(shmEntries(name), []);
  assert.equal(UltraDict.exists(name), false);
});

test('withLock returns the result, releases on throw, rejects async functions', () => {
  using d = new UltraDict<number>({ name: uniqueName() });
  assert.equal(d.withLock(() => 42), 42);
  assert.throws(() => d.withLock(() => {
    throw new Error('boom');
  }), /boom/);
  assert.equal(d.lock.held, false);
  assert.throws(() => d.withLock(async () => 1), TypeError);
  assert.equal(d.lock.held, false);
  const h = d.lock.acquire({ timeout: 100 });
  assert.equal(d.lock.held, true);
  const h2 = d.lock.acquire();
  h2.release();
  assert.equal(d.lock.held, true);
  h.release();
  h.release(); // idempotent per handle
  assert.equal(d.lock.held, false);
  {
    using _h = d.lock.acquire();
    assert.equal(d.lock.held, true);
  }
  assert.equal(d.lock.held, false);
});

test('refresh() counts applied operations; data is the unrefreshed local copy', async () => {
  const name = uniqueName();
  using b = new UltraDict<number>({ name });
  await runChild('child', { op: 'writeN', name, key: 'x', n: 3 }); // another process writes
  assert.equal(b.data.has('x'), false);
  assert.equal(b.refresh(), 3);
  assert.equal(b.data.get('x'), 2);
  assert.equal(b.refresh(), 0);
});

test('unlink(): new processes cannot attach, attached ones keep working, last one out frees it', () => {
  const name = uniqueName();
  const a = new UltraDict<number>({ name, autoUnlink: false });
  const b = new UltraDict<number>({ name });
  a.set('x', 1);
  a.unlink();
  assert.equal(UltraDict.exists(name), false);
  b.set('y', 2);
  assert.equal(a.get('y'), 2);
  // a new dict may be created under the name; it is a different one
  const c = new UltraDict<number>({ name });
  assert.equal(c.size, 0);
  c.close();
  a.close();
  assert.ok(shmEntries(name).length > 0, 'b still attached');
  b.close();
  assert.deepEqual(shmEntries(name), []);
});

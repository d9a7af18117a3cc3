// Issue 14: what a new user hit (binary values, argument checks, aborts, listener warnings, error
// messages, values structuredClone refuses, options of every function) and Node's conventions.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AbortError, SerializationError, UltraDict, UltraDictError, gc, type Change } from '../src/index.js';
import { Child, runChild, uniqueName, waitFor } from './lib/helpers.js';
import { RedisServer, redisSkip } from './lib/redis-server.js';
import type { Bridge as BridgeType, RedisDict as RedisDictType } from '../src/redis/index.js';

const binaries = (): Record<string, unknown> => ({
  Buffer: Buffer.from('buf'),
  Uint8Array: new Uint8Array([1, 2]),
  Int8Array: new Int8Array([-1]),
  Uint8ClampedArray: new Uint8ClampedArray([3]),
  Int16Array: new Int16Array([-2]),
  Uint16Array: new Uint16Array([2]),
  Int32Array: new Int32Array([-3]),
  Uint32Array: new Uint32Array([3]),
  Float32Array: new Float32Array([1.5]),
  Float64Array: new Float64Array([2.5]),
  BigInt64Array: new BigInt64Array([-4n]),
  BigUint64Array: new BigUint64Array([4n]),
  DataView: new DataView(new ArrayBuffer(2)),
  ArrayBuffer: new ArrayBuffer(3),
});

const typesOf = (d: Iterable<[unknown, unknown]>): Record<string, string> =>
  Object.fromEntries([...d].map(([k, v]) => [String(k), (v as object).constructor.name]));

for (const serializer of ['msgpack', 'v8'] as const) {
  test(`${serializer}: a Buffer comes back as a Buffer and every typed array as its own type: same handle, another handle, another process, after a dump`, async () => {
    const name = uniqueName('bin');
    using a = new UltraDict(binaries(), { name, serializer });
    const expected = Object.fromEntries(Object.keys(binaries()).map((k) => [k, k]));
    assert.deepEqual(typesOf(a), expected, 'creator');
    using b = new UltraDict({ name, serializer });
    assert.deepEqual(typesOf(b), expected, 'another handle (attached: from the dump)');
    for (const [k, v] of Object.entries(binaries())) a.set(k, v);
    assert.deepEqual(typesOf(a), expected, 'the writer after set');
    assert.deepEqual(typesOf(b), expected, 'another handle, from the stream');
    assert.deepEqual(Buffer.from(b.get('Buffer') as Buffer).toString(), 'buf');
    const [fromChild] = await runChild('value-types', { name, serializer });
    assert.deepEqual(fromChild!.types, expected, 'another process');
    a.dump();
    using c = new UltraDict({ name, serializer });
    assert.deepEqual(typesOf(c), expected, 'after a dump');
  });
}

test('a bad signal is a TypeError saying what was expected, before any listener is added', async () => {
  using d = new UltraDict({ name: uniqueName('sig') });
  for (const signal of [5, 'x', {}, null]) {
    assert.throws(() => d.waitForChange({ signal: signal as never }), (e: Error) => e instanceof TypeError && /signal must be an AbortSignal/.test(e.message));
    assert.throws(() => d.watch({ signal: signal as never }), (e: Error) => e instanceof TypeError && /signal must be an AbortSignal/.test(e.message));
  }
  assert.throws(() => d.waitForChange({ timeout: -1 }), /timeout must be a number of ms >= 0/);
  assert.throws(() => d.waitForChange({ timeot: 5 } as never), /unknown option "timeot"/);
  assert.throws(() => d.watch({ sigal: 5 } as never), /unknown option "sigal"/);
  assert.throws(() => d.waitForChange(5 as never), /options must be a plain object/);
  assert.equal(d.listenerCount('change'), 0);
  assert.equal(d.listenerCount('close'), 0);
  assert.equal(d.stats().listeners, 0);
  d.close(); // used to throw "signal?.removeEventListener is not a function"
});

test('aborting waitForChange rejects with an AbortError whose cause is signal.reason; an aborted signal rejects at once', async () => {
  using d = new UltraDict({ name: uniqueName('abort') });
  const ac = new AbortController();
  const p = d.waitForChange({ signal: ac.signal });
  const reason = new Error('stop');
  ac.abort(reason);
  await assert.rejects(p, (e: Error) => e instanceof AbortError && e instanceof UltraDictError && e.name === 'AbortError' && (e as AbortError).code === 'ABORT_ERR' && e.cause === reason);
  await assert.rejects(d.waitForChange({ signal: AbortSignal.abort('why') }), (e: Error) => e.name === 'AbortError' && e.cause === 'why');
  assert.equal(d.listenerCount('change'), 0);
  // a timeout still resolves null, and so does close
  assert.equal(await d.waitForChange({ timeout: 1 }), null);
  const q = d.waitForChange();
  d.close();
  assert.equal(await q, null);
});

test('aborting a watch() loop rejects with an AbortError; closing the dict ends it', async () => {
  using d = new UltraDict({ name: uniqueName('watch') });
  const ac = new AbortController();
  const seen: Change[] = [];
  const loop = (async () => {
    for await (const c of d.watch({ signal: ac.signal })) {
      seen.push(c);
      ac.abort('enough');
    }
  })();
  d.set('a', 1);
  await assert.rejects(loop, (e: Error) => e.name === 'AbortError' && e.cause === 'enough');
  assert.equal(seen.length, 1);
  const it = d.watch({ signal: AbortSignal.abort(7) });
  await assert.rejects(it.next(), (e: Error) => e.name === 'AbortError' && e.cause === 7);
  const ended = (async () => {
    for await (const _ of d.watch()) void _;
    return 'ended';
  })();
  await new Promise((r) => setImmediate(r));
  d.close();
  assert.equal(await ended, 'ended');
});

test('many concurrent waitForChange and watch calls, also on one signal, print no MaxListenersExceededWarning', async () => {
  using d = new UltraDict({ name: uniqueName('many') });
  const warnings: Error[] = [];
  const onWarning = (w: Error): void => {
    warnings.push(w);
  };
  process.on('warning', onWarning);
  try {
    const ac = new AbortController(); // one signal shared by every wait: one 'abort' listener too
    const waits = Array.from({ length: 50 }, (_, i) => d.waitForChange(i % 2 ? { signal: ac.signal } : {}));
    const watches = Array.from({ length: 20 }, (_, i) => d.watch(i % 2 ? { signal: ac.signal } : {})[Symbol.asyncIterator]());
    const firsts = watches.map((w) => w.next());
    d.set('x', 1);
    const got = await Promise.all(waits);
    assert.ok(got.every((c) => c?.type === 'set' && c.key === 'x'));
    for (const f of await Promise.all(firsts)) assert.equal((f.value as Change).key, 'x');
    await Promise.all(watches.map((w) => w.return(undefined)));
    await new Promise((r) => setImmediate(r));
  } finally {
    process.off('warning', onWarning);
  }
  assert.deepEqual(warnings.map((w) => w.name), []);
  assert.equal(d.listenerCount('change'), 0);
});

test('error messages point the right way', async () => {
  const name = uniqueName('msg');
  assert.throws(() => new UltraDict([1, 2, 3] as never, { name }), (e: Error) => e instanceof TypeError && /initial items: item \[0\] must be a \[key, value\] pair, got number 1/.test(e.message));
  assert.equal(UltraDict.exists(name), false);
  using d = new UltraDict({ name });
  assert.throws(() => d.compute('k', (async () => 1) as never), (e: Error) => e instanceof TypeError && /^compute\(key, fn\)/.test(e.message) && !/transaction/.test(e.message));
  assert.equal(d.has('k'), false);
  assert.throws(() => d.update([['a', 1], 'b'] as never), /update items: item \[1\] must be a \[key, value\] pair/);
  assert.equal(d.has('a'), false);
  d.set('x', 1);
  assert.throws(() => d.forEach(5 as never), (e: Error) => e instanceof TypeError && /^forEach\(fn\): fn must be a function, got number 5$/.test(e.message));
});

test('gc() rejects unknown options and bad values', () => {
  assert.throws(() => gc({ grace: 5 } as never), (e: Error) => e instanceof TypeError && /gc: unknown option "grace" \(known: graceMs, includeDetached\)/.test(e.message));
  assert.throws(() => gc({ graceMs: -1 }), /gc: option graceMs must be a number of ms >= 0/);
  assert.throws(() => gc({ includeDetached: 'yes' } as never), /gc: option includeDetached must be a boolean/);
  assert.throws(() => gc(5 as never), /gc: options must be a plain object/);
});

for (const serializer of ['msgpack', 'v8', 'json'] as const) {
  test(`${serializer}: values structuredClone refuses are refused with a SerializationError naming the path`, () => {
    using d = new UltraDict({ name: uniqueName('clone'), serializer });
    const cases: [unknown, RegExp][] = [
      [{ a: [1, Promise.resolve(1)] }, /Promise.*value\.a\[1\]/],
      [{ w: new WeakMap() }, /WeakMap.*value\.w/],
      [[new WeakSet()], /WeakSet.*value\[0\]/],
      [{ r: new WeakRef({}) }, /WeakRef.*value\.r/],
    ];
    for (const [v, re] of cases) {
      assert.throws(() => structuredClone(v), 'structuredClone refuses it too');
      assert.throws(() => d.set('k', v), (e: Error) => e instanceof SerializationError && re.test(e.message), String(re));
      assert.equal(d.has('k'), false);
    }
  });
}

test('class instances are stored as plain objects of their own enumerable properties, as structuredClone does', () => {
  class Point {
    constructor(
      readonly x: number,
      readonly y: number,
    ) {}
    norm(): number {
      return Math.hypot(this.x, this.y);
    }
  }
  using d = new UltraDict({ name: uniqueName('cls') });
  d.set('p', new Point(3, 4));
  const clone = structuredClone(new Point(3, 4));
  assert.equal(Object.getPrototypeOf(clone), Object.prototype);
  assert.deepEqual(d.get('p'), { x: 3, y: 4 });
  assert.equal(Object.getPrototypeOf(d.get('p')), Object.prototype);
});

test("'change' listeners keep working through the typed on/once/off", async () => {
  using d = new UltraDict<number>({ name: uniqueName('ev') });
  const got = once(d, 'change');
  d.set('a', 1);
  const [c] = (await got) as [Change];
  assert.equal(c.type, 'set');
});

test('RedisDict.open and Bridge.start reject unknown options before connecting', async () => {
  const { RedisDict, Bridge } = await import('../src/redis/index.js');
  await assert.rejects(RedisDict.open({ name: 'x', redis: 'redis://127.0.0.1:1', conectTimeout: 5 } as never), /RedisDict\.open: unknown option "conectTimeout"/);
  const name = uniqueName('bropt');
  await assert.rejects(Bridge.start({ name, redis: 'redis://127.0.0.1:1', strem: 's' } as never), /Bridge\.start: unknown option "strem"/);
  assert.equal(UltraDict.exists(name), false);
});

test('await using closes a RedisDict and a Bridge (Symbol.asyncDispose)', { skip: redisSkip() }, async () => {
  const { RedisDict, Bridge } = await import('../src/redis/index.js');
  await using server = await RedisServer.start();
  const name = uniqueName('dispose');
  let rd: RedisDictType<unknown> | undefined;
  let br: BridgeType | undefined;
  {
    await using d = await RedisDict.open({ name, redis: server.url });
    await using b = await Bridge.start({ name, redis: server.url, id: 'disposer' });
    rd = d;
    br = b;
    d.set('a', 1);
    assert.equal(d.closed || b.closed, false);
  }
  assert.equal(rd!.closed, true);
  assert.equal(br!.closed, true);
  assert.equal(br!.dict.closed, true);
});

test('the README works from the npm page: links are anchors or go into the repository, to files that exist; package.json says where', () => {
  const root = fileURLToPath(new URL('../..', import.meta.url));
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { repository: { url: string }; homepage: string; bugs: { url: string } };
  const repo = /^git\+(https:\/\/github\.com\/[\w.-]+\/[\w.-]+)\.git$/.exec(pkg.repository.url)?.[1];
  assert.ok(repo, `repository.url ${pkg.repository.url}`);
  assert.equal(pkg.homepage, `${repo}#readme`);
  assert.equal(pkg.bugs.url, `${repo}/issues`);
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  assert.match(readme, /^# ultradict\n\n[^\n]+\n[^#]*\n## Install\n/, 'the README starts with install');
  assert.match(readme, /\n## Develop\n[\s\S]*npm install && npm run demo[\s\S]*npm test/, 'the contributor commands are in "Develop"');
  const anchors = new Set([...readme.matchAll(/^#+ (.+)$/gm)].map((m) => m[1]!.toLowerCase().replace(/[^\w\- ]/g, '').replace(/ /g, '-')));
  for (const m of readme.matchAll(/\]\(([^)\s]+)\)/g)) {
    const target = m[1]!;
    if (target.startsWith('#')) {
      assert.ok(anchors.has(target.slice(1)), `README anchor ${target} has no heading`);
      continue;
    }
    assert.match(target, /^https:\/\//, `README links to ${target}: relative links break on the npm page`);
    const inRepo = new RegExp(`^${repo}/(?:blob|tree)/main/([^#]+)`).exec(target);
    if (inRepo) assert.ok(existsSync(join(root, inRepo[1]!)), `README links to ${target}, which does not exist`);
  }
});

test('require() of the package from CommonJS prints no warning on Node 20.20 (as the docs say)', { skip: !/^20\.(2\d|[3-9]\d)\./.test(process.versions.node) && 'the docs state it for Node 20.20' }, () => {
  const dist = fileURLToPath(new URL('../../dist/index.js', import.meta.url));
  const r = spawnSync(process.execPath, ['-e', `const { UltraDict } = require(${JSON.stringify(dist)}); console.log(typeof UltraDict)`], { encoding: 'utf8' });
  assert.equal(r.stdout.trim(), 'function');
  assert.doesNotMatch(r.stderr, /Warning/);
});

test('keys: writes throw a TypeError for other keys; get and has answer as a Map does (as the docs say)', () => {
  using d = new UltraDict({ name: uniqueName('keys') });
  for (const k of [{}, null, Symbol('s'), true, 1n]) {
    assert.throws(() => d.set(k as never, 1), TypeError);
    assert.throws(() => d.delete(k as never), TypeError);
    assert.throws(() => d.increment(k as never), TypeError);
    assert.equal(d.get(k as never), undefined);
    assert.equal(d.has(k as never), false);
  }
});

test('getOrInsert/getOrInsertComputed (ES2026 Map): the value present, else the one inserted; atomic across processes', async () => {
  const name = uniqueName('goi');
  using d = new UltraDict<unknown>({ name });
  assert.equal(d.getOrInsert('a', 1), 1);
  assert.equal(d.getOrInsert('a', 2), 1);
  assert.equal(d.getOrInsertComputed('b', (k) => `${k}!`), 'b!');
  assert.equal(d.getOrInsertComputed('b', () => assert.fail('not called for a present key')), 'b!');
  assert.deepEqual(d.getOrInsert('o', { x: [1] }), { x: [1] });
  assert.throws(() => d.getOrInsertComputed('c', 5 as never), TypeError);
  assert.throws(() => d.getOrInsertComputed('c', () => Promise.resolve(1)), TypeError);
  assert.throws(() => d.getOrInsertComputed('c', () => { throw new Error('loader failed'); }), /loader failed/);
  assert.equal(d.has('c'), false, 'a loader that throws or returns a Promise inserts nothing');
  // 4 processes race for the same 30 keys: each key is inserted once, and all of them see that value
  const n = 30;
  const kids = [1, 2, 3, 4].map((id) => new Child('child', { op: 'getOrInsert', name, n, id }));
  await Promise.all(kids.map((c) => c.message('ready')));
  for (const c of kids) c.send('go');
  const results = await Promise.all(kids.map(async (c) => (await c.message('done')).got as string[]));
  await Promise.all(kids.map((c) => c.done()));
  for (let i = 0; i < n; i++) {
    const winner = d.get(`k${i}`);
    assert.ok(['1', '2', '3', '4'].includes(winner as string));
    for (const r of results) assert.equal(r[i], winner, `every process got the inserted value of k${i}`);
    assert.equal(d.get(`run${i}`), 1, `the loader of k${i} ran once on the machine`);
  }
});

test('RedisDict.getOrInsert/getOrInsertComputed: the value present, else the one set (on the local copy, like set)', { skip: redisSkip() }, async () => {
  const { RedisDict } = await import('../src/redis/index.js');
  const server = await RedisServer.start();
  try {
    const name = uniqueName('goir');
    await using a = await RedisDict.open<unknown>({ name, redis: server.url });
    await using b = await RedisDict.open<unknown>({ name, redis: server.url });
    assert.equal(a.getOrInsert('x', 1), 1);
    assert.equal(a.getOrInsert('x', 2), 1);
    assert.equal(a.getOrInsertComputed('y', (k) => `${k}!`), 'y!');
    assert.throws(() => a.getOrInsertComputed('z', null as never), TypeError);
    await a.flush();
    await waitFor(() => b.get('y') === 'y!', 'the inserted value reaches the other copy');
    assert.equal(b.getOrInsertComputed('x', () => assert.fail('present: not called')), 1);
  } finally {
    await server.close();
  }
});

// Local adversaries and key names (issue 11, findings 7, 8, 9, 11), with real processes and real users:
// segment owners and permissions checked on attach and on every data segment, files planted at
// segment names, gc() racing attach, and keys/properties named __proto__ with every serializer.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { ForeignSegmentError, gc, UltraDict } from '../src/index.js';
import { Control, STATE_ABANDONED, STATE_INITIALIZING } from '../src/shm/control.js';
import { controlSegment } from '../src/shm/names.js';
import { Stream } from '../src/shm/stream.js';
import { Trust } from '../src/shm/trust.js';
import { fixture, scaled, uniqueName } from './lib/helpers.js';
import { CLI } from './lib/paths.js';
import { Remote } from './lib/remote.js';
import { privateShmUnavailable, runInPrivateShm } from './reliability/lib.js';

const isRoot = process.getuid?.() === 0;
const needsRoot = { skip: !isRoot && 'needs root to run processes as other users' };
const NOBODY = { uid: 65534, gid: 65534 };
/** a user with no access to anything of the dicts (plants files) */
const STRANGER = { uid: 4242, gid: 4242 };

const cli = (...args: string[]): { code: number | null; stdout: string; stderr: string } => {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: scaled(30_000) });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
};

const files = (name: string): string[] => readdirSync('/dev/shm').filter((f) => f === `ud.${name}` || f.startsWith(`ud.${name}.`));

test('the owner option: validated like the other options', () => {
  for (const bad of [-1, 1.5, 2 ** 32, 'me', 'ANY', null, {}, NaN]) {
    assert.throws(() => new UltraDict({ name: uniqueName('ownopt'), owner: bad as never }), TypeError, String(bad));
  }
  const own = process.geteuid!();
  for (const good of [own, 'any'] as const) {
    using d = new UltraDict({ name: uniqueName('ownopt'), owner: good });
    d.set('a', 1);
    using e = new UltraDict({ name: d.name, create: false, owner: good });
    assert.equal(e.get('a'), 1);
  }
});

test("finding 7: another user's dict is refused with ForeignSegmentError unless the owner option trusts that user", needsRoot, async () => {
  const name = uniqueName('foreign');
  const other = await Remote.start(NOBODY);
  try {
    await other.ok('open', { opts: { name, mode: 0o666 } });
    await other.ok('set', { key: 'k', value: 'from nobody' });
    for (const opts of [{ name }, { name, create: false }, { name, create: false, mode: 0o666 }]) {
      assert.throws(
        () => new UltraDict(opts),
        (e: unknown) =>
          e instanceof ForeignSegmentError &&
          e.code === 'ULTRADICT_FOREIGN_SEGMENT' &&
          e.file === `/ud.${name}` &&
          e.uid === NOBODY.uid &&
          /owned by uid 65534, not by uid 0/.test(e.message) &&
          /owner: 65534/.test(e.message),
        JSON.stringify(opts),
      );
    }
    for (const owner of [NOBODY.uid, 'any'] as const) {
      using d = new UltraDict<unknown>({ name, create: false, owner });
      assert.equal(d.get('k'), 'from nobody');
      d.set(`root-${owner}`, 1);
    }
    assert.deepEqual(await other.ok('get', { key: 'root-65534' }), 1);
    assert.deepEqual(await other.ok('get', { key: 'root-any' }), 1);
    // the CLI too: refused unless --owner trusts the user
    const refused = cli('get', name, 'k');
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /owned by uid 65534/);
    for (const o of ['65534', 'any']) assert.equal(cli('get', name, 'k', '--owner', o).stdout, '"from nobody"\n');
    for (const bad of ['-1', 'me', '4294967295', '1.5']) assert.equal(cli('get', name, 'k', '--owner', bad).code, 2, bad);
    await other.ok('close');
  } finally {
    await other.exit();
  }
});

test('finding 7: a 0600 dict whose files were made 0666 is refused, also when its owner is trusted', needsRoot, async () => {
  const name = uniqueName('chmod');
  const user = await Remote.start(NOBODY);
  try {
    await user.ok('open', { opts: { name, bufferSize: 1024 } });
    await user.ok('set', { key: 'k', value: 1 });
    for (const f of files(name)) chmodSync(`/dev/shm/${f}`, 0o666);
    // root, attaching with mode 0o600 to write a secret: refused (not its dict) ...
    assert.throws(() => new UltraDict({ name, create: false, mode: 0o600 }), (e: unknown) => e instanceof ForeignSegmentError && /owned by uid 65534/.test(e.message));
    // ... and, trusting the owner, refused because the permissions are not the dict's
    assert.throws(
      () => new UltraDict({ name, create: false, mode: 0o600, owner: NOBODY.uid }),
      (e: unknown) => e instanceof ForeignSegmentError && e.mode === 0o666 && /permissions 0o666 .* created with mode 0o600/.test(e.message),
    );
    await user.ok('close');
  } finally {
    await user.exit();
  }
});

test('finding 7: every later open of a data segment is checked (a stream made 0666 after attaching)', async () => {
  const name = uniqueName('later');
  using d = new UltraDict<unknown>({ name, bufferSize: 1024 });
  d.set('a', 0);
  const reader = await Remote.start();
  try {
    await reader.ok('open', { opts: { name, create: false } });
    assert.equal(await reader.ok('get', { key: 'a' }), 0);
    const before = new Set(files(name));
    d.set('big', 'x'.repeat(3000)); // a new generation: new stream and dump segments
    const fresh = files(name).filter((f) => !before.has(f));
    assert.ok(fresh.length >= 1, 'a new generation was written');
    for (const f of fresh) chmodSync(`/dev/shm/${f}`, 0o644);
    const r = await reader.call('get', { key: 'big' });
    assert.equal(r.ok, false);
    assert.equal(r.error, 'ForeignSegmentError', r.message);
    assert.match(r.message!, /permissions 0o644/);
    for (const f of fresh) chmodSync(`/dev/shm/${f}`, 0o600);
    assert.equal(await reader.ok('get', { key: 'big' }), 'x'.repeat(3000), 'the reader carries on once the file is right again');
    await reader.ok('close');
  } finally {
    await reader.exit();
  }
});

for (const [label, opts] of [
  ['a dump segment per generation', { bufferSize: 1024 }],
  ['a fixed dump area', { bufferSize: 1024, fullDumpSize: 64 * 1024 }],
] as const) {
  test(`finding 8: files another user plants at segment names never block writes, and close() does not throw (${label})`, needsRoot, async () => {
    const name = uniqueName('planted');
    const owner = await Remote.start(NOBODY); // not root: it cannot remove the planted files
    const planted: string[] = [];
    try {
      const { tag } = (await owner.ok('open', { opts: { name, ...opts } })) as { tag: string };
      // everything /dev/shm shows: the tag, and the random parts of the current names
      const parts = new Set(((await owner.ok('files')) as string[]).map((f) => f.split('.').slice(4).join('.')).filter((p) => p !== ''));
      const prefix = `ud.${name}.${tag}`;
      for (let g = 0; g <= 40; g++) {
        planted.push(`${prefix}.s${g}`, `${prefix}.d${g}`);
        for (const p of parts) planted.push(`${prefix}.s${g}.${p}`, `${prefix}.d${g}.${p}`);
      }
      planted.push(`${prefix}.dump`, `${prefix}.ctl`, ...[...parts].map((p) => `${prefix}.dump.${p}`));
      const existing = new Set(readdirSync('/dev/shm'));
      const toPlant = planted.filter((f) => !existing.has(f));
      const r = spawnSync('sh', ['-c', 'cd /dev/shm && for f; do : > "$f"; done', 'sh', ...toPlant], { ...STRANGER, encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      // the owner writes on: many generation switches, every write acknowledged
      const gen = (await owner.ok('fill', { key: 'k', n: 60, size: 300 })) as number;
      assert.equal(gen, 60);
      {
        using d = new UltraDict<unknown>({ name, create: false, owner: NOBODY.uid });
        assert.equal(d.size, 60);
        for (let i = 0; i < 60; i++) assert.equal(d.get(`k${i}`), 'v'.repeat(300) + i);
      }
      const closed = await owner.call('close');
      assert.equal(closed.ok, true, `close: ${closed.error}: ${closed.message}`);
      // the dict's own segments are gone; the planted files (not ours to remove) are left
      assert.deepEqual(files(name).filter((f) => !toPlant.includes(f)), []);
    } finally {
      await owner.exit();
      for (const f of planted) rmSync(`/dev/shm/${f}`, { force: true });
    }
  });
}

test('finding 8: a file planted at the name of a superseded generation counts as missing, not as an error', needsRoot, () => {
  using d = new UltraDict<unknown>({ name: uniqueName('stale'), bufferSize: 1024 });
  d.set('a', 1);
  d.dump();
  d.dump(); // generation 2 is published; the names of 0 and 1 are free again
  // the dict's control block, with the checks a handle of this process makes on data segments
  const ctrl = Control.open(controlSegment(d.name))!;
  ctrl.checkWith(new Trust(undefined, ctrl.mode, ctrl.ownerUid));
  const planted = `/dev/shm/ud.${d.name}.${ctrl.tag}.planted`;
  writeFileSync(planted, Buffer.alloc(4096), { mode: 0o600 });
  chownSync(planted, STRANGER.uid, STRANGER.gid);
  try {
    const seg = planted.slice('/dev/shm'.length);
    // a reader that looked up generation 0 and finds a stranger's file there: missing (it re-reads the generation)
    assert.equal(Stream.open(seg, ctrl.idLo, ctrl.idHi, 0, ctrl.guard(0)), null);
    // the published generation's segment failing its checks is an error
    assert.throws(() => Stream.open(seg, ctrl.idLo, ctrl.idHi, 2, ctrl.guard(2)), ForeignSegmentError);
    assert.equal(d.get('a'), 1);
  } finally {
    rmSync(planted, { force: true });
    ctrl.seg.unmap();
  }
});

test('finding 9, its cause: a header half written by a live creator is waited for, never taken for a dead creator (attach, gc)', () => {
  const name = uniqueName('half');
  const seg = controlSegment(name);
  const ctrl = Control.create(seg, { bufferSize: 4096, fullDumpSize: 0, serializer: 'msgpack', mode: 0o600 });
  try {
    // as if this creator were stalled right after writing its pid (FORMAT.md: thread id at 36, start
    // time at 40, magic at 0, written later): before the fix an attacher took it for dead (a thread id
    // 0 is no live thread) and removed the name under the creator, whose data gc then removed as orphans
    ctrl.dv.setUint32(36, 0, true);
    ctrl.dv.setFloat64(40, 0, true);
    Atomics.store(ctrl.i32, 0, 0);
    assert.throws(() => new UltraDict({ name, create: false, lockTimeout: 200 }), { name: 'LockTimeoutError', message: new RegExp(`pid ${process.pid}`) });
    // gc() too: even once the file is old (a header without a pid counted as dead after a second)
    const old = new Date(Date.now() - 60_000);
    utimesSync(`/dev/shm${seg}`, old, old);
    gc({ graceMs: 0, includeDetached: true });
    const still = Control.open(seg);
    assert.ok(still !== null, 'the name is still the creator\'s');
    assert.equal(still.state, STATE_INITIALIZING);
    still.seg.unmap();
    // once the creator's process is gone, the next attacher claims and removes it
    const dead = spawnSync(process.execPath, ['-e', 'console.log(process.pid)'], { encoding: 'utf8' });
    ctrl.dv.setUint32(32, Number(dead.stdout.trim()), true);
    assert.throws(() => new UltraDict({ name, create: false, lockTimeout: 2000 }), { name: 'NotFoundError' });
    assert.equal(Control.open(seg), null);
    // a creator taken for dead cannot then mark the dict ready over it
    assert.equal(ctrl.state, STATE_ABANDONED);
    assert.equal(ctrl.setReady(), false);
    assert.equal(ctrl.state, STATE_ABANDONED);
  } finally {
    ctrl.seg.unmap();
    UltraDict.unlink(name);
  }
});

test('finding 9: attach loops racing gc() loops (private /dev/shm): every attach succeeds, gc never removes an attached dict', { skip: privateShmUnavailable() ?? false }, async () => {
  const cmd = { role: 'driver', name: uniqueName('gcrace'), attachers: 3, gcs: 2, attaches: 150 };
  const { code, out, err } = await runInPrivateShm('64m', fixture('trust-gc-race'), [JSON.stringify(cmd)]);
  assert.equal(code, 0, err);
  const line = out.split('\n').find((l) => l.startsWith('RACE '));
  assert.ok(line, `no result: ${out} ${err}`);
  const r = JSON.parse(line.slice(5)) as { attaches: number; failures: string[]; removedUnder: number; lost: number; removals: number };
  assert.deepEqual(r.failures.slice(0, 5), [], `${r.failures.length} attaches failed`);
  assert.equal(r.attaches, 450);
  assert.equal(r.removedUnder, 0, 'gc() removed a dict while a process was attached to it');
  assert.equal(r.lost, 0);
  assert.ok(r.removals > 0, 'gc() removed the dict between attaches (the race was exercised)');
});

for (const serializer of ['msgpack', 'json', 'v8'] as const) {
  test(`finding 11: a key and properties named __proto__ round-trip between processes (${serializer})`, async () => {
    const name = uniqueName('proto');
    const value = JSON.parse('{"__proto__": {"x": 1}, "a": {"__proto__": 2, "b": [{"__proto__": null}]}}') as object;
    using d = new UltraDict<unknown>({ name, serializer });
    const other = await Remote.start();
    try {
      await other.ok('open', { opts: { name, create: false } });
      await other.ok('set', { key: '__proto__', value });
      assert.deepEqual(Object.getOwnPropertyNames(d.get('__proto__') as object), ['__proto__', 'a']);
      assert.equal(JSON.stringify(d.get('__proto__')), JSON.stringify(value));
      assert.equal(JSON.stringify(d), `{"__proto__":${JSON.stringify(value)}}`);
      d.set('mine', value);
      assert.deepEqual(await other.ok('ownKeys', { key: 'mine' }), ['__proto__', 'a']);
      assert.equal(await other.ok('json'), JSON.stringify({ ['__proto__']: value, mine: value }));
      assert.equal(Object.getPrototypeOf(d.get('mine')), Object.prototype, 'no prototype was set from the data');
      await other.ok('close');
    } finally {
      await other.exit();
    }
  });
}

test('finding 11: a nested dict (recurse) with a key __proto__: toJSON keeps it in every process, no prototype is set', async () => {
  const name = uniqueName('protorec');
  using d = new UltraDict<unknown>({ name, recurse: true });
  const other = await Remote.start();
  try {
    await other.ok('open', { opts: { name, create: false } });
    await other.ok('set', { key: 'n', value: JSON.parse('{"__proto__": {"polluted": true}, "b": 1}') });
    const json = JSON.stringify(d);
    assert.equal(json, '{"n":{"__proto__":{"polluted":true},"b":1}}');
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
    assert.equal(await other.ok('json'), json);
    // ultradict dump prints it too
    assert.deepEqual(JSON.parse(cli('dump', name).stdout), JSON.parse(json));
    assert.match(cli('dump', name).stdout, /"__proto__"/);
    await other.ok('close');
  } finally {
    await other.exit();
  }
});

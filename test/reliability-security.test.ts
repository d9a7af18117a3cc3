// Security: segment permissions, another user's attempts (run as nobody), names that try to escape
// /dev/shm, and hostile files (symlink, directory, FIFO, another user's file) planted under a dict's name.
// Planted data segment names and owner checks of data segments: reliability-trust.test.ts.

import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chownSync, mkdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ForeignSegmentError, gc, InvalidNameError, SharedMemoryError, UltraDict, UltraDictError } from '../src/index.js';
import { native } from '../src/shm/native.js';
import { scaled, shmEntries, uniqueName } from './lib/helpers.js';
import { worldReadableCopy } from './lib/world-readable.js';

const isRoot = process.getuid?.() === 0;
const NOBODY = 65534;

function modesOf(name: string): Map<string, { mode: number; uid: number }> {
  return new Map(shmEntries(name).map((f) => {
    const st = statSync(`/dev/shm/${f}`);
    return [f, { mode: st.mode & 0o777, uid: st.uid }];
  }));
}

test('segments are created 0600 by default (whatever the umask), or with the mode asked for', () => {
  const old = process.umask(0);
  try {
    for (const [opts, want] of [
      [{}, 0o600],
      [{ fullDumpSize: 4096 }, 0o600],
      [{ mode: 0o640 }, 0o640],
      [{ mode: 0o660, fullDumpSize: 4096 }, 0o660],
    ] as const) {
      using d = new UltraDict<unknown>({ name: uniqueName('mode'), bufferSize: 1024, ...opts });
      d.set('a', 'x'.repeat(3000)); // a generation switch: a dump segment (or the fixed area) and a new stream
      d.dump();
      const modes = modesOf(d.name);
      assert.ok(modes.size >= 2, `segments: ${[...modes.keys()].join(' ')}`);
      for (const [f, m] of modes) {
        assert.equal(m.mode, want, `${f} has mode ${m.mode.toString(8)}, expected ${want.toString(8)}`);
        assert.equal(m.uid, process.getuid!(), `${f} is owned by uid ${m.uid}`);
      }
    }
  } finally {
    process.umask(old);
  }
});

/**
 * Runs the fixture as nobody from a world-readable copy (the checkout may not be readable by nobody);
 * null (after t.skip with the reason) if nobody cannot read even the copy.
 */
function asNobody(t: TestContext, cmd: object): Record<string, string> | null {
  const copy = worldReadableCopy(['out/test/fixtures/rel-other-user.js'], NOBODY);
  if (typeof copy === 'string') {
    t.skip(copy);
    return null;
  }
  using _ = copy;
  const r = spawnSync(process.execPath, [copy.path('out/test/fixtures/rel-other-user.js'), JSON.stringify(cmd)], { uid: NOBODY, gid: NOBODY, encoding: 'utf8', timeout: scaled(60_000) });
  assert.equal(r.signal, null, `the other user's process died of ${r.signal}: ${r.stderr}`);
  assert.equal(r.status, 0, `the other user's process failed: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<string, string>;
}

test('another user (nobody) cannot open, take over, gc or unlink a 0600 dict: typed EACCES errors, no crash', { skip: !isRoot && 'needs root to run a process as nobody' }, (t) => {
  const name = uniqueName('priv');
  using d = new UltraDict<unknown>({ name, bufferSize: 1024 });
  d.set('secret', 42);
  d.dump();
  const before = shmEntries(name);
  const out = asNobody(t, { name });
  if (out === null) return;
  assert.equal(out.uid, String(NOBODY));
  for (const k of ['attach', 'create', 'exists']) assert.match(out[k]!, /^SharedMemoryError EACCES: /, `${k}: ${out[k]}`);
  assert.match(out.unlink!, /^SharedMemoryError (EACCES|EPERM): /, `unlink: ${out.unlink}`);
  assert.equal(out.list, 'ok 0', 'listDicts skips what it cannot read');
  // regression: gc() by another user threw EACCES on our data segments (it took them for orphans)
  assert.equal(out.gc, 'ok []', `gc: ${out.gc}`);
  assert.deepEqual(shmEntries(name), before, 'nothing of the dict was removed');
  assert.equal(d.get('secret'), 42);
  d.set('still', 'writable');
});

test('with mode 0o666 another user can attach and write once it trusts the owner (the mode is the access control)', { skip: !isRoot && 'needs root to run a process as nobody' }, (t) => {
  const name = uniqueName('shared');
  using d = new UltraDict<unknown>({ name, mode: 0o666 });
  d.set('secret', 'shared on purpose');
  // not without saying whom it trusts: the dict belongs to root
  const refused = asNobody(t, { name, write: true });
  if (refused === null) return;
  assert.match(refused.attach!, /^ForeignSegmentError: \/ud\.\S+ is owned by uid 0, not by uid 65534/);
  assert.equal(d.get('from-nobody'), undefined);
  const out = asNobody(t, { name, write: true, owner: 0 });
  if (out === null) return;
  assert.equal(out.attach, 'ok "shared on purpose"');
  assert.equal(d.get('from-nobody'), 1);
});

test('names cannot escape the shm namespace: InvalidNameError at every entry point, EINVAL in the addon', () => {
  const bad: unknown[] = [
    '', '.', '..', '../x', '../../etc/passwd', '/', '/abs', 'a/b', 'a/../b', 'a\\b', 'a\0b', '\0', 'x\0', 'x'.repeat(101), 'x'.repeat(100_000),
    'sp ace', ' ', '\n', 'tab\t', 'dot.ted', 'ud.x', '%2e%2e', 'ü', 'Ａ', 'а' /* Cyrillic */, '😀', 'a\u200bb', 'e\u0301', '\u202ename',
    5, null, {}, ['a'], Symbol('s'), Object('abc'),
  ];
  for (const name of bad) {
    const label = typeof name === 'string' ? JSON.stringify(name.slice(0, 20)) : String(typeof name);
    assert.throws(() => new UltraDict({ name: name as string }), InvalidNameError, label);
    assert.throws(() => UltraDict.exists(name as string), InvalidNameError, label);
    assert.throws(() => UltraDict.unlink(name as string), InvalidNameError, label);
  }
  // the longest valid name works, and stays inside /dev/shm
  const longest = 'L'.repeat(100);
  const d = new UltraDict({ name: longest, bufferSize: 1024 });
  assert.ok(shmEntries(longest).length >= 2);
  d.close();
  // the addon refuses names that are not one path component under /dev/shm, before any system call
  for (const seg of ['', '/', '/.', '/..', '/../etc/passwd', '/a/b', 'noslash', '/a\0b', '/ü', '/' + 'a'.repeat(251), '//x']) {
    for (const call of [() => native.open(seg), () => native.unlink(seg), () => native.create(seg, 64, 0o600)]) {
      assert.throws(call, (e: unknown) => (e as { code?: string }).code === 'EINVAL', JSON.stringify(seg));
    }
  }
});

test('hostile files under a dict name (symlink, directory, FIFO, foreign bytes): typed errors, nothing followed', () => {
  const dir = join(tmpdir(), uniqueName('victim'));
  mkdirSync(dir);
  const target = join(dir, 'file');
  writeFileSync(target, 'do not touch');
  const names: string[] = [];
  try {
    const link = uniqueName('link');
    symlinkSync(target, `/dev/shm/ud.${link}`);
    const sub = uniqueName('dir');
    mkdirSync(`/dev/shm/ud.${sub}`);
    const fifo = uniqueName('fifo');
    spawnSync('mkfifo', [`/dev/shm/ud.${fifo}`]);
    names.push(link, sub, fifo);
    for (const n of names) {
      for (const attempt of [() => new UltraDict({ name: n, lockTimeout: 200 }), () => new UltraDict({ name: n, create: false, lockTimeout: 200 })]) {
        assert.throws(attempt, (e: unknown) => e instanceof UltraDictError, n);
      }
      assert.throws(() => new UltraDict({ name: n, create: true }), (e: unknown) => e instanceof UltraDictError);
    }
    // an attach through the symlink fails with a typed error and does not write through it
    assert.throws(() => new UltraDict({ name: link, create: false }), (e: unknown) => e instanceof SharedMemoryError || e instanceof UltraDictError);
    assert.equal(readFileSync(target, 'utf8'), 'do not touch');
    assert.doesNotThrow(() => gc({ graceMs: 0 }));
    assert.equal(readFileSync(target, 'utf8'), 'do not touch');
    // unlink(name) removes the link, never its target
    assert.equal(UltraDict.unlink(link), true);
    assert.equal(readFileSync(target, 'utf8'), 'do not touch');
    if (isRoot) {
      // a file of another user planted under a dict name: refused for its owner before it is read
      const planted = uniqueName('planted');
      names.push(planted);
      writeFileSync(`/dev/shm/ud.${planted}`, Buffer.alloc(36864), { mode: 0o666 });
      chownSync(`/dev/shm/ud.${planted}`, NOBODY, NOBODY);
      for (const opts of [{ name: planted }, { name: planted, create: false }]) {
        assert.throws(() => new UltraDict(opts), (e: unknown) => e instanceof ForeignSegmentError && e.uid === NOBODY && e.file === `/ud.${planted}`);
      }
      // trusting that user, it is judged by its contents: not a dict
      assert.throws(() => new UltraDict({ name: planted, create: false, owner: NOBODY, lockTimeout: 200 }), (e: unknown) => e instanceof UltraDictError && !(e instanceof ForeignSegmentError));
    }
  } finally {
    for (const n of names) rmSync(`/dev/shm/ud.${n}`, { recursive: true, force: true });
    rmSync(dir, { recursive: true, force: true });
  }
});

// Regression tests for the bugs the reliability suites (test/reliability/) found; see docs/reliability.md.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { CorruptSegmentError, gc, LockTimeoutError, UltraDict, UltraDictError } from '../src/index.js';
import { native } from '../src/shm/native.js';
import { attachElsewhere, Child, shmEntries, uniqueName } from './lib/helpers.js';
import { poke } from './lib/shm-poke.js';


test('kill matrix: the creator closing after a writer was SIGKILLed still frees every segment', async () => {
  const name = uniqueName('deadslot');
  const d = new UltraDict<unknown>({ name, bufferSize: 1024 });
  const c = new Child('rel-holder', { attach: [name] });
  try {
    await c.message('ready');
    await c.kill9(); // its attach slot stays occupied by a dead process
    d.set('x', 'y'.repeat(2000));
  } finally {
    d.close();
  }
  // before the fix, close() counted the dead process's slot as attached and left the data segments
  assert.deepEqual(shmEntries(name), []);
});

test('fuzz: a corrupt lock word is a CorruptSegmentError (was a RangeError reading beyond the slots)', () => {
  for (const word of [0x3ffffff0, 0x40000000 | 0x7ff, 0x40000000, -0x7fffffff]) {
    const name = uniqueName('lockword');
    using d = new UltraDict<number>({ name, lockTimeout: 200 });
    d.set('a', 1);
    const b = Buffer.alloc(4);
    b.writeInt32LE(word);
    poke(`ud.${name}`, 256, b);
    assert.throws(() => d.set('b', 2), (e: unknown) => e instanceof CorruptSegmentError || e instanceof LockTimeoutError, word.toString(16));
    assert.throws(() => d.stats(), CorruptSegmentError);
    assert.equal(d.lock.held, false);
    poke(`ud.${name}`, 256, Buffer.alloc(4)); // repaired by hand: works again
    d.set('b', 2);
    assert.equal(d.get('b'), 2);
  }
});

test('fuzz: a published generation of -1 is a CorruptSegmentError on attach (was a TypeError)', async () => {
  const name = uniqueName('neggen');
  using d = new UltraDict<number>({ name });
  d.set('a', 1);
  const b = Buffer.alloc(8);
  b.writeBigInt64LE(-1n);
  poke(`ud.${name}`, 272, b);
  assert.equal((await attachElsewhere(name)).error, 'CorruptSegmentError');
});

test('fuzz: an attach that times out waiting for a creator releases its mapping at once (was kept until GC)', () => {
  const name = uniqueName('initwait');
  using d = new UltraDict<number>({ name });
  poke(`ud.${name}`, 8, Buffer.alloc(4)); // state: initialising, and the creator (us) is alive
  const before = native.liveMappings();
  for (let i = 0; i < 5; i++) assert.throws(() => new UltraDict({ name, create: false, lockTimeout: 20 }), LockTimeoutError);
  assert.equal(native.liveMappings(), before);
});

test('gc() leaves alone the data segments of a control segment it cannot read (was: removed them as orphans)', () => {
  const name = uniqueName('unreadable');
  writeFileSync(`/dev/shm/ud.${name}`, randomBytes(1000));
  writeFileSync(`/dev/shm/ud.${name}.0123456789abcdef.s0`, randomBytes(100));
  try {
    assert.doesNotThrow(() => gc({ graceMs: 0 }));
    assert.equal(shmEntries(name).length, 2);
    assert.throws(() => new UltraDict({ name }), UltraDictError);
  } finally {
    UltraDict.unlink(name);
  }
  assert.deepEqual(shmEntries(name), []);
});

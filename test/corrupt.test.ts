// Foreign and corrupt shared memory: every byte read from a segment is validated; bad bytes give a typed error.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { CorruptSegmentError, LockTimeoutError, UltraDict } from '../src/index.js';
import { checksum, Decoder } from '../src/codec/wire.js';
import type { Op } from '../src/codec/ops.js';
import { builtinSerializers } from '../src/codec/serializer.js';
import { attachElsewhere, Child, shmEntries, uniqueName } from './lib/helpers.js';
import { poke } from './lib/shm-poke.js';


test('a foreign segment under a dict name is rejected with CorruptSegmentError', () => {
  const name = uniqueName('foreign');
  for (const size of [100, 36864, 100000]) {
    writeFileSync(`/dev/shm/ud.${name}`, randomBytes(size));
    assert.throws(() => new UltraDict({ name }), CorruptSegmentError, `size ${size}`);
    assert.throws(() => new UltraDict({ name, create: false }), CorruptSegmentError);
  }
  // an empty file (as left between shm_open and ftruncate by a creator that died there)
  writeFileSync(`/dev/shm/ud.${name}`, '');
  assert.throws(() => new UltraDict({ name, create: false, lockTimeout: 200 }), CorruptSegmentError);
  assert.equal(UltraDict.unlink(name), true);
  assert.deepEqual(shmEntries(name), []);
});

test('a corrupted frame is detected by its checksum: CorruptSegmentError, no crash, no wrong value', async () => {
  const name = uniqueName('frame');
  using d = new UltraDict<string>({ name });
  d.set('a', 'value');
  const stream = shmEntries(name).find((f) => /\.s0\./.test(f))!;
  poke(stream, 64 + 12, Uint8Array.of(0x41));
  // a reader that has not replayed the frame yet (another process: one thread's handles share a copy)
  assert.equal((await attachElsewhere(name)).error, 'CorruptSegmentError');
  assert.equal((await attachElsewhere(name)).error, 'CorruptSegmentError');
});

test('an impossible published end or a foreign stream header is rejected', async () => {
  const name = uniqueName('end');
  {
    using d = new UltraDict<number>({ name });
    d.set('a', 1);
    const stream = shmEntries(name).find((f) => /\.s0\./.test(f))!;
    const end = Buffer.alloc(4);
    end.writeInt32LE(0x7ffffff0);
    poke(stream, 32, end);
    assert.equal((await attachElsewhere(name)).error, 'CorruptSegmentError');
    assert.throws(() => d.refresh(), CorruptSegmentError);
    assert.throws(() => d.set('b', 2), CorruptSegmentError);
    assert.equal(d.lock.held, false);
  }
  const name2 = uniqueName('hdr');
  using f = new UltraDict<number>({ name: name2 });
  f.set('x', 1);
  f.dump();
  const s1 = shmEntries(name2).find((x) => /\.s1\./.test(x))!;
  poke(s1, 0, Buffer.from('XXXX'));
  assert.equal((await attachElsewhere(name2)).error, 'CorruptSegmentError');
});

test('a corrupted dump is rejected when a fresh process loads it', async () => {
  const name = uniqueName('dump');
  using d = new UltraDict<string>({ name });
  d.update({ a: 'x'.repeat(100), b: 'y' });
  d.dump();
  const dump = shmEntries(name).find((f) => /\.d1\./.test(f))!;
  poke(dump, 64 + 20, Uint8Array.of(0, 1, 2, 3));
  assert.equal((await attachElsewhere(name)).error, 'CorruptSegmentError');
});

test('decoder fuzz: random bodies (with valid checksums) give ops or CorruptSegmentError, nothing else', () => {
  const n = Number(process.env.ULTRADICT_FUZZ ?? 20_000);
  const buf = Buffer.alloc(256);
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.length);
  const d = new Decoder(buf, dv, buf, 'fuzz');
  const ops: Op[] = [];
  let ok = 0;
  let corrupt = 0;
  const seed = randomBytes(n * 4);
  for (let i = 0; i < n; i++) {
    const len = 1 + (seed[i * 4]! % 96);
    const bytes = randomBytes(len);
    // bias towards plausible prefixes so the decoder gets past the first byte
    if (i % 2 === 0) bytes[0] = 1 + (i % 4);
    if (i % 4 === 0 && len > 1) bytes[1] = 1 + (i % 2);
    buf.fill(0);
    buf.set(bytes, 0);
    ops.length = 0;
    try {
      d.reset(0, len);
      d.body(builtinSerializers.msgpack, ops);
      ok++;
    } catch (e) {
      assert.ok(e instanceof CorruptSegmentError, `input ${bytes.toString('hex')}: ${(e as Error).stack}`);
      corrupt++;
    }
  }
  assert.equal(ok + corrupt, n);
  // the checksum itself is stable and sensitive
  const i32 = new Int32Array(buf.buffer, buf.byteOffset, 64);
  buf.fill(7);
  const a = checksum(i32, buf, 0, 33);
  buf[32] = 8;
  assert.notEqual(checksum(i32, buf, 0, 33), a);
});

test('a lock held too long gives LockTimeoutError naming the holder pid', async () => {
  const name = uniqueName('timeout');
  const d = new UltraDict<number>({ name, lockTimeout: 150 });
  const c = new Child('child', { op: 'holdLock', name });
  try {
    await c.message('locked');
    const t = Date.now();
    assert.throws(
      () => d.set('x', 1),
      (err: unknown) => err instanceof LockTimeoutError && err.holderPid === c.proc.pid && /held by pid/.test(err.message),
    );
    assert.ok(Date.now() - t >= 140);
    assert.throws(() => d.lock.acquire({ timeout: 0 }), LockTimeoutError);
    assert.equal(d.has('x'), false);
  } finally {
    await c.kill9();
    d.close();
  }
});

// What a weakly ordered CPU (arm64) may show another thread, reproduced on any CPU by writing shared memory in
// that order from a worker: a fixed dump half whose new bytes are visible before its invalidation.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import { checksum, Encoder } from '../src/codec/wire.js';
import { builtinSerializers } from '../src/codec/serializer.js';
import { Segment } from '../src/shm/segment.js';
import { DUMP_HEADER, encodeDump, fixedHalfSize, loadFixedDump, writeFixedDump } from '../src/shm/dump.js';
import { scaled, uniqueName } from './lib/helpers.js';

const H_SEQ = 36; // FORMAT.md: dump header, i32 sequence word (1 = complete)

test('a torn copy of a fixed dump half that still says valid is retried until the rewrite shows, not reported corrupt', async () => {
  const fullDumpSize = 4096;
  const seg = Segment.create(`/ud.${uniqueName('mo')}.0.dump`, 2 * fixedHalfSize(fullDumpSize), 0o600);
  try {
    const enc = new Encoder();
    const [len] = encodeDump(enc, new Map<string, unknown>([['a', 1], ['b', 'two']]), builtinSerializers.msgpack);
    const sum = checksum(enc.i32, enc.buf, 0, len);
    const gen = 4; // half 0
    writeFixedDump(seg, fullDumpSize, 7, 8, gen, enc, len, sum);
    const x = { idLo: 7, idHi: 8, gen, len, checksum: sum };
    assert.deepEqual([...loadFixedDump(seg, fullDumpSize, x, builtinSerializers.msgpack)!.map], [['a', 1], ['b', 'two']]);

    // the writer of gen + 2 has started on this half: its first new bytes are visible, its seq = 0 store
    // (issued before them) is not yet; a worker makes it visible 30 ms after the load starts
    seg.u8[DUMP_HEADER + 3] = seg.u8[DUMP_HEADER + 3]! ^ 0xff;
    const go = new Int32Array(new SharedArrayBuffer(4));
    const w = new Worker(
      `const { workerData: { buffer, idx, go } } = require('node:worker_threads');
       Atomics.wait(go, 0, 0);
       setTimeout(() => Atomics.store(new Int32Array(buffer), idx, 0), 30);`,
      { eval: true, workerData: { buffer: seg.buffer, idx: H_SEQ >> 2, go } },
    );
    const exited = new Promise((resolve) => w.once('exit', resolve));
    await new Promise((resolve) => w.once('online', resolve));
    Atomics.store(go, 0, 1);
    Atomics.notify(go, 0);
    // null: "changed under us", the caller re-reads the published generation (a long grace here: the
    // worker's store comes when the scheduler runs it, and the result must not depend on when)
    assert.equal(loadFixedDump(seg, fullDumpSize, x, builtinSerializers.msgpack, scaled(20_000)), null);
    await exited;

    // a half that stays valid with a wrong checksum is corruption
    seg.dv.setInt32(H_SEQ, 1, true);
    assert.throws(() => loadFixedDump(seg, fullDumpSize, x, builtinSerializers.msgpack), { code: 'ULTRADICT_CORRUPT_SEGMENT', message: /dump checksum mismatch/ });
  } finally {
    seg.unmap();
    Segment.unlink(seg.name);
  }
});

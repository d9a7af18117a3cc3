// Resource limits: a full /dev/shm (run inside a private tmpfs) and descriptor/mapping leaks over many open/close cycles.

import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { CorruptSegmentError, NotFoundError, ParameterMismatchError, SharedMemoryError, UltraDict } from '../../src/index.js';
import { native } from '../../src/shm/native.js';
import { uniqueName } from '../lib/helpers.js';
import { canonEntries, hashStr, Rng } from './lib.js';

export interface Resources {
  fds: number;
  shmMaps: number;
  maps: number;
  live: number;
}

export function resources(): Resources {
  const maps = readFileSync('/proc/self/maps', 'utf8').split('\n');
  return {
    fds: readdirSync('/proc/self/fd').length,
    shmMaps: maps.filter((l) => l.includes('/dev/shm/')).length,
    maps: maps.length,
    live: native.liveMappings(),
  };
}

/**
 * `cycles` iterations of: attach + read + close; create + write + dump + close; and the failing opens
 * (foreign segment, missing name, option mismatch). Returns the resources before and after.
 */
export function leakCycles(cycles: number): { before: Resources; after: Resources; ops: number } {
  const name = uniqueName('leak');
  const d = new UltraDict<unknown>({ name, bufferSize: 1024 });
  d.set('x', { hello: 'world' });
  const foreign = uniqueName('foreign');
  writeFileSync(`/dev/shm/ud.${foreign}`, Buffer.alloc(100, 7));
  let ops = 0;
  const once = (i: number): void => {
    const e = new UltraDict<unknown>({ name, create: false });
    if ((e.get('x') as { hello: string }).hello !== 'world') throw new Error('wrong value');
    if (i % 7 === 0) e.set('i', i);
    e.close();
    const c = new UltraDict<unknown>({ name: uniqueName('cyc'), bufferSize: 1024 });
    c.set('a', i);
    if (i % 5 === 0) c.dump();
    c.close();
    expectThrow(() => new UltraDict({ name: foreign }), CorruptSegmentError);
    expectThrow(() => new UltraDict({ name: uniqueName('none'), create: false }), NotFoundError);
    expectThrow(() => new UltraDict({ name, create: false, bufferSize: 2048 }), ParameterMismatchError);
    ops += 5;
  };
  try {
    for (let i = 0; i < 50; i++) once(i); // warm up (lazy allocations of the runtime)
    const before = resources();
    for (let i = 0; i < cycles; i++) once(i);
    const after = resources();
    return { before, after, ops };
  } finally {
    d.close();
    rmSync(`/dev/shm/ud.${foreign}`, { force: true });
  }
}

function expectThrow(fn: () => unknown, cls: new (...a: never[]) => Error): void {
  try {
    fn();
  } catch (e) {
    if (e instanceof cls) return;
    throw e;
  }
  throw new Error(`expected ${cls.name}`);
}

// ---- full /dev/shm -----------------------------------------------------------------------------------

export interface EnospcTrial {
  label: string;
  writesBeforeFull: number;
  checks: number;
  problems: string[];
}

const FILLER = '/dev/shm/filler';

/**
 * Run inside a private tmpfs of 4 MiB, all but a few hundred KiB taken by a filler file: fill it through a dict until a write fails, check the
 * error, the state (here, in a second handle and a fresh process), the files, then free space and write
 * again. `fresh` checks a fresh process's view (via the provided callback).
 */
export async function enospcTrial(
  seed: number,
  freshDigest: (name: string) => Promise<string>,
): Promise<EnospcTrial> {
  const r = new Rng(seed);
  const kinds = ['set', 'update', 'fixed', 'json'] as const;
  const kind = kinds[seed % kinds.length]!;
  const label = `${kind} seed ${seed}`;
  const problems: string[] = [];
  let checks = 0;
  const check = (ok: boolean, what: string): void => {
    checks++;
    if (!ok) problems.push(`[${label}] ${what}`);
  };
  for (const f of readdirSync('/dev/shm')) rmSync(`/dev/shm/${f}`, { force: true });
  writeFileSync(FILLER, Buffer.alloc((4096 - 200 - r.int(200)) * 1024, 1)); // all but 200-400 KiB of the 4 MiB tmpfs
  const name = `full${seed}`;
  const d = new UltraDict<unknown>({
    name,
    bufferSize: 1024,
    ...(kind === 'fixed' ? { fullDumpSize: 16 * 1024 } : {}),
    ...(kind === 'json' ? { serializer: 'json' as const } : {}),
  });
  const size = 200 + r.int(3000);
  const model = new Map<string | number, unknown>();
  let err: unknown = null;
  let i = 0;
  try {
    for (; i < 100_000; i++) {
      const v = kind === 'json' ? { i, s: 'j'.repeat(size) } : `${i}:${'v'.repeat(size)}`;
      try {
        if (kind === 'update') d.update([[`k${i}`, v], [`b${i}`, i]]);
        else d.set(`k${i}`, v);
      } catch (e) {
        err = e;
        break;
      }
      model.set(`k${i}`, v);
      if (kind === 'update') model.set(`b${i}`, i);
    }
    const full = err instanceof SharedMemoryError && err.osCode === 'ENOSPC';
    const fixedFull = kind === 'fixed' && (err as Error)?.name === 'FullDumpMemoryFullError';
    check(full || fixedFull, `the write that did not fit failed with ${(err as Error)?.name} ${(err as { osCode?: string })?.osCode}: ${(err as Error)?.message}`);
    if (full) check(/shared memory is full/.test((err as Error).message), `the ENOSPC message explains it: ${(err as Error).message}`);
    // nothing of the failed write, everything before it
    const want = canonEntries(model).join('\n');
    check(canonEntries(d.data).join('\n') === want, 'the writer keeps exactly the writes before the failed one');
    check(!d.has(`k${i}`), 'the failed write is not applied locally');
    const e = new UltraDict<unknown>({ name, create: false });
    check(canonEntries(e.data).join('\n') === want, 'a second handle loads the same contents');
    e.close();
    const fd = await freshDigest(name);
    check(fd === hashStr(want), `a fresh process loads the same contents (${fd})`);
    // nothing half-published: only the published generation's segments exist
    const gen = d.stats().generation;
    const files = readdirSync('/dev/shm').filter((f) => f.startsWith(`ud.${name}.`));
    const published = new RegExp(`\\.(s${gen}|d${gen}|dump)\\.[0-9a-f]{16}$`);
    const stray = files.filter((f) => !published.test(f));
    check(stray.length === 0, `no segments of an unpublished generation: ${stray.join(' ')}`);
    // a new dict cannot be created either, and leaves nothing behind
    if (full) {
      let cerr: unknown = null;
      try {
        new UltraDict({ name: `other${seed}`, bufferSize: 4 << 20 }).close(); // larger than the whole tmpfs
      } catch (x) {
        cerr = x;
      }
      check(cerr instanceof SharedMemoryError && (cerr as SharedMemoryError).osCode === 'ENOSPC', `creating a dict in a full /dev/shm: ${(cerr as Error)?.name}`);
      check(readdirSync('/dev/shm').filter((f) => f.startsWith(`ud.other${seed}`)).length === 0, 'the failed creation left no segments');
    }
    // space comes back: writes work again
    rmSync(FILLER, { force: true });
    if (kind === 'fixed' && !full) d.clear(); // the fixed area was what was full
    if (kind === 'fixed' && !full) model.clear();
    let again: unknown = null;
    try {
      d.set(`k${i}`, 'after');
      d.dump();
      model.set(`k${i}`, 'after');
    } catch (x) {
      again = x;
    }
    check(again === null, `a write after space was freed: ${(again as Error)?.message}`);
    check(canonEntries(d.data).join('\n') === canonEntries(model).join('\n'), 'contents after space came back');
    check((await freshDigest(name)) === hashStr(canonEntries(model).join('\n')), 'a fresh process agrees after space came back');
  } finally {
    d.close();
    rmSync(FILLER, { force: true });
  }
  check(readdirSync('/dev/shm').filter((f) => f.startsWith('ud.')).length === 0, 'nothing left in /dev/shm');
  return { label, writesBeforeFull: i, checks, problems };
}

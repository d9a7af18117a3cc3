// Stale segments: dicts created (and attached) by processes that are then SIGKILLed, next to live dicts;
// gc() must remove exactly the dead ones, while a writer keeps writing to a live dict.

import { rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { gc, UltraDict } from '../../src/index.js';
import { Child, scaled, shmEntries, uniqueName } from '../lib/helpers.js';
import { readAck, tempDir } from './lib.js';
import { checkWriter, PROFILES } from './writer-ops.js';

export interface GcResult {
  dead: number;
  live: number;
  gcCalls: number;
  removed: number;
  problems: string[];
}

const holder = (cmd: object): Child => new Child('rel-holder', cmd, 600_000);

export async function gcScenario(o: { killedDicts: number; processes: number; gcCalls: number }): Promise<GcResult> {
  const problems: string[] = [];
  const expectRemoved = new Set<string>();
  const expectKept = new Set<string>();
  const kids: Child[] = [];
  const mine: UltraDict<unknown>[] = [];
  const tmp = tempDir('ud-gc-');
  const ready = async (c: Child): Promise<Child> => {
    kids.push(c);
    await c.message('ready', 120_000);
    return c;
  };
  const foreign = uniqueName('foreign');
  let stopped: Child | null = null;
  let writer: Child | null = null;
  const allNames: string[] = [];
  try {
    // 1. many dicts whose creators are SIGKILLed
    const dead: string[][] = Array.from({ length: o.processes }, () => []);
    for (let i = 0; i < o.killedDicts; i++) dead[i % o.processes]!.push(uniqueName('gcdead'));
    const creators = await Promise.all(dead.map((names) => ready(holder({ create: names }))));
    dead.flat().forEach((n) => expectRemoved.add(n));
    // 2. a dict created by a process that dies but attached by one that lives: kept
    const shared = uniqueName('gcshared');
    const sharedCreator = await ready(holder({ create: [shared] }));
    await ready(holder({ attach: [shared] }));
    expectKept.add(shared);
    // 3. a dict of a live process, and dicts of this process: kept
    const liveElsewhere = uniqueName('gclive');
    await ready(holder({ create: [liveElsewhere] }));
    expectKept.add(liveElsewhere);
    for (let i = 0; i < 3; i++) {
      const d = new UltraDict<unknown>({ name: uniqueName('gcmine'), bufferSize: 1024 });
      d.set('k0', `mine${i}`);
      mine.push(d);
      expectKept.add(d.name);
    }
    // 4. a retired incarnation (unlinked while a process was attached) whose last attacher is killed
    const retired = uniqueName('gcretired');
    const r = new UltraDict<unknown>({ name: retired, bufferSize: 1024 });
    r.set('k0', 'retired');
    const retiredAttacher = await ready(holder({ attach: [retired] }));
    r.close(); // the creator unlinks: the control segment is renamed, the attacher keeps the data
    expectRemoved.add(retired);
    // 5. a control block left initialising by a creator that died, and one whose creator is stopped
    const initDead = uniqueName('gcinitdead');
    const initDeadCreator = await ready(holder({ initOnly: [initDead] }));
    expectRemoved.add(initDead);
    const initStopped = uniqueName('gcinitstop');
    stopped = await ready(holder({ initOnly: [initStopped] }));
    stopped.proc.kill('SIGSTOP');
    expectKept.add(initStopped);
    // 6. data segments whose control segment is gone (removed by hand)
    const orphan = uniqueName('gcorphan');
    const orphanCreator = await ready(holder({ create: [orphan] }));
    expectRemoved.add(orphan);
    // 7. a foreign file under a dict-like name, with a data-like neighbour: never touched
    writeFileSync(`/dev/shm/ud.${foreign}`, randomBytes(512));
    writeFileSync(`/dev/shm/ud.${foreign}.0011223344556677.s0`, randomBytes(64));
    // a writer keeps writing to a live dict while gc runs
    const wname = uniqueName('gcwriter');
    const wd = new UltraDict<unknown>({ name: wname, bufferSize: 4096 });
    mine.push(wd);
    expectKept.add(wname);
    const ackFile = tmp.file('w1');
    writer = new Child('rel-writer', { name: wname, id: 1, seed: 99, profile: 'dumps', ackFile }, 600_000);

    for (const c of [...creators, sharedCreator, retiredAttacher, initDeadCreator, orphanCreator]) await c.kill9();
    for (const f of shmEntries(orphan)) if (f === `ud.${orphan}`) unlinkSync(`/dev/shm/${f}`);
    allNames.push(...expectRemoved, ...expectKept);
    const before = new Map(allNames.map((n) => [n, shmEntries(n).length]));
    for (const n of allNames) if (before.get(n) === 0) problems.push(`setup: ${n} has no segments`);

    const progress = async (min: number, what: string): Promise<void> => {
      const deadline = Date.now() + scaled(30_000);
      while (readAck(ackFile).acked < min) {
        if (Date.now() > deadline || writer!.proc.exitCode !== null) throw new Error(`the writer made no progress ${what}: ${writer!.stderr}`);
        await new Promise((res) => setTimeout(res, 5));
      }
    };
    await progress(10, 'before gc');
    const removed = new Set<string>();
    for (let i = 0; i < o.gcCalls; i++) {
      for (const n of gc({ graceMs: 0 })) removed.add(n);
      for (const d of mine) if (d.name !== wname) d.set('gc', i);
      await new Promise((res) => setTimeout(res, 1));
    }
    for (const n of expectRemoved) {
      // (another process's gc, e.g. a concurrent test, may have removed it first: what matters is that it is gone)
      if (shmEntries(n).length > 0) problems.push(`segments of dead dict ${n} left: ${shmEntries(n).join(' ')}`);
    }
    for (const n of removed) if (!expectRemoved.has(n)) problems.push(`gc removed ${n}, which it should have kept`);
    for (const n of expectKept) if (shmEntries(n).length === 0) problems.push(`segments of live dict ${n} are gone`);
    if (shmEntries(foreign).length !== 2) problems.push(`gc touched the foreign files: ${shmEntries(foreign).join(' ')}`);
    // the kept dicts still work, with their contents
    for (const n of [shared, liveElsewhere]) {
      const d = new UltraDict<unknown>({ name: n, create: false });
      if (!String(d.get('k9')).startsWith(`${n}:`)) problems.push(`contents of ${n} lost: ${String(d.get('k9'))}`);
      d.set('after-gc', 1);
      d.close();
    }
    for (const d of mine) if (d.name !== wname && d.get('gc') !== o.gcCalls - 1) problems.push(`${d.name}: write during gc lost`);
    await progress(readAck(ackFile).acked + 10, 'after gc');
    // the writer wrote through all of it; its state is exactly its acknowledged writes
    await writer.kill9();
    const acked = readAck(ackFile).acked;
    if (writer.stderr) problems.push(`the writer failed: ${writer.stderr.slice(0, 500)}`);
    wd.refresh();
    const c = checkWriter(99, 1, acked, PROFILES.dumps!, wd.data as ReadonlyMap<string | number, unknown>);
    if (!c.ok) problems.push(`writer during gc: ${c.detail}`);
    return { dead: expectRemoved.size, live: expectKept.size, gcCalls: o.gcCalls, removed: removed.size, problems };
  } finally {
    if (stopped) stopped.proc.kill('SIGCONT');
    writer?.proc.kill('SIGKILL');
    for (const k of kids) k.proc.kill('SIGKILL');
    await Promise.all([...kids, ...(writer ? [writer] : [])].map((k) => k.exited));
    for (const d of mine) d.close();
    for (const n of allNames) UltraDict.unlink(n);
    rmSync(`/dev/shm/ud.${foreign}`, { force: true });
    rmSync(`/dev/shm/ud.${foreign}.0011223344556677.s0`, { force: true });
    tmp.cleanup();
  }
}

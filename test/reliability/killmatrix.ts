// Kill matrix: writer processes SIGKILLed at chosen moments (random, holding the lock, mid generation
// switch, during attach); survivors must keep going, and the final state must be exactly the acknowledged writes.
//
// Each kill is one trial. The victim is first stopped (SIGSTOP) so that the moment can be classified
// exactly from shared memory (does it hold the lock? has it created the next generation's segments
// but not published it? has it copied frame bytes beyond the published end?), then SIGKILLed.

import { existsSync, readFileSync } from 'node:fs';
import { UltraDict } from '../../src/index.js';
import { Control, I_HANDOFF } from '../../src/shm/control.js';
import { forgetSlot, lockOwnerSlot, slotOfWord } from '../../src/engine/lock.js';
import { controlSegment } from '../../src/shm/names.js';
import { Segment } from '../../src/shm/segment.js';
import { Child, runChild, scaled, shmEntries, uniqueName } from '../lib/helpers.js';
import { canonEntries, hashStr, PHASE_ATTACHED, PHASE_STARTED, readAck, readBytes, Rng, tempDir } from './lib.js';
import { checkWriter, type Profile } from './writer-ops.js';

export type KillMode = 'random' | 'lock' | 'dump' | 'frame' | 'attach' | 'stopWaiter' | 'deadWaiter';

export interface KillTotals {
  trials: number;
  rounds: number;
  byMode: Record<string, number>;
  /** classification of the moment of death, read from shared memory while the victim was stopped */
  heldLock: number;
  midSwitch: number;
  midFrame: number;
  duringAttach: number;
  /** waiters stopped (SIGSTOP) after asking for a hand-off, while the survivors had to go on */
  stoppedWaiters: number;
  /** waiters SIGKILLed after asking for a hand-off, their slot then reaped and reused */
  deadWaiters: number;
  lockRecoveries: number;
  ackedWrites: number;
  inFlightApplied: number;
  inFlightPartial: number;
  lostWrites: number;
  freshProcessChecks: number;
  failures: string[];
}

export function emptyTotals(): KillTotals {
  return {
    trials: 0,
    rounds: 0,
    byMode: {},
    heldLock: 0,
    midSwitch: 0,
    midFrame: 0,
    duringAttach: 0,
    stoppedWaiters: 0,
    deadWaiters: 0,
    lockRecoveries: 0,
    ackedWrites: 0,
    inFlightApplied: 0,
    inFlightPartial: 0,
    lostWrites: 0,
    freshProcessChecks: 0,
    failures: [],
  };
}

interface Writer {
  id: number;
  child: Child;
  ackFile: string;
  killedByUs: boolean;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function procState(pid: number): string {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return s.slice(s.lastIndexOf(')') + 2, s.lastIndexOf(')') + 3);
  } catch {
    return 'gone';
  }
}

export interface RoundOptions {
  seed: number;
  profile: Profile;
  writers: number;
  kills: number;
  modes: KillMode[];
  freshProcess: boolean;
  log?: (s: string) => void;
}

/** One round: a dict, `writers` writer processes, `kills` kills (each replaced), then all killed and checked. */
export async function killRound(o: RoundOptions, totals: KillTotals): Promise<void> {
  const rng = new Rng(o.seed);
  const p = o.profile;
  const name = uniqueName(`km${o.seed}`);
  const tmp = tempDir('ud-kill-');
  const tagOf = (c: Control): string => c.tag;
  const staticItems: [string, string][] = [];
  for (let i = 0; i < p.staticEntries; i++) staticItems.push([`static.${i}`, `${i}:${'s'.repeat(p.staticValue)}`]);
  const d = new UltraDict<unknown>(staticItems.length > 0 ? staticItems : null, { name, bufferSize: p.bufferSize });
  const ctrl = Control.open(controlSegment(name))!;
  const tag = tagOf(ctrl);
  const writers: Writer[] = [];
  const dead: { id: number; acked: number }[] = [];
  let nextId = 1;
  const fail = (msg: string): void => {
    totals.failures.push(`[seed ${o.seed} profile ${p.name} dict ${name}] ${msg}`);
  };
  const spawnWriter = (): Writer => {
    const id = nextId++;
    const ackFile = tmp.file(`w${id}`);
    const child = new Child('rel-writer', { name, id, seed: o.seed, profile: p.name, ackFile }, 600_000);
    const w: Writer = { id, child, ackFile, killedByUs: false };
    writers.push(w);
    return w;
  };
  const acked = (w: Writer): number => readAck(w.ackFile).acked;
  const ownerPid = (): number => {
    const s = lockOwnerSlot(ctrl);
    return s < 0 ? 0 : Math.abs(ctrl.slot(s).pid);
  };
  const waitAttached = async (w: Writer, timeoutMs = 30_000): Promise<boolean> => {
    const deadline = Date.now() + scaled(timeoutMs);
    while (Date.now() < deadline) {
      if (readAck(w.ackFile).phase === PHASE_ATTACHED) return true;
      if (w.child.proc.exitCode !== null || w.child.proc.signalCode !== null) return false;
      await sleep(2);
    }
    return false;
  };
  /** Survivors must all make progress: the lock is not wedged and nobody crashed. */
  const survivorsProgress = async (what: string): Promise<boolean> => {
    const live = writers.filter((w) => !w.killedByUs);
    const base = new Map(live.map((w) => [w, acked(w)]));
    const deadline = Date.now() + scaled(30_000);
    for (;;) {
      const crashed = live.find((w) => w.child.proc.exitCode !== null || w.child.proc.signalCode !== null);
      if (crashed) {
        fail(`writer ${crashed.id} died by itself after ${what}: ${crashed.child.stderr.slice(0, 800)}`);
        return false;
      }
      if (live.every((w) => acked(w) >= base.get(w)! + 3)) return true;
      if (Date.now() > deadline) {
        fail(`survivors made no progress for ${scaled(30)} s after ${what} (lock owner pid ${ownerPid()}, acks ${live.map((w) => `${w.id}:${base.get(w)}->${acked(w)}`).join(' ')})`);
        return false;
      }
      await sleep(3);
    }
  };
  let attachMs = 30;
  /** Stops the victim at a moment chosen by mode, classifies the moment, SIGKILLs it. */
  const kill = async (w: Writer, mode: KillMode): Promise<{ heldLock: boolean }> => {
    const pid = w.child.proc.pid!;
    if (mode === 'random') await sleep(rng.int(30));
    else if (mode === 'attach') {
      // wait until the process runs our code, then kill it somewhere inside the attach
      const deadline = Date.now() + scaled(30_000);
      while (readAck(w.ackFile).phase < PHASE_STARTED && Date.now() < deadline) await sleep(1);
      await sleep(rng.int(Math.ceil(attachMs * 1.2) + 1));
    } else if (mode === 'frame') {
      // spin until the victim holds the lock and has begun copying a frame beyond the published end
      // (large frames: the copy takes tens of microseconds); the stream is mapped here for speed
      let seg: Segment | null = null;
      let segGen = -1;
      const deadline = performance.now() + scaled(3000);
      try {
        while (performance.now() < deadline) {
          if (ownerPid() !== pid) continue;
          const g = ctrl.gen();
          if (g !== segGen || seg === null) {
            seg?.unmap();
            seg = null;
            segGen = g;
            try {
              seg = Segment.tryOpen(`/ud.${name}.${tag}.s${g}`);
            } catch {
              seg = null;
            }
            if (seg === null) continue;
          }
          const at = 64 + Atomics.load(seg.i32, 8) * 8;
          if (at + 8 <= seg.size && (seg.i32[at >> 2] !== 0 || seg.i32[(at >> 2) + 1] !== 0)) break;
        }
      } finally {
        seg?.unmap();
      }
    } else {
      // spin (blocking this process on purpose: the moment is short) until the victim holds the lock
      // and, for 'dump', has created the next generation's segments
      const deadline = performance.now() + scaled(3000);
      while (performance.now() < deadline) {
        if (ownerPid() === pid) {
          if (mode === 'lock') break;
          const g = ctrl.gen();
          if (existsSync(`/dev/shm/ud.${name}.${tag}.s${g + 1}`) || existsSync(`/dev/shm/ud.${name}.${tag}.d${g + 1}`)) break;
        }
      }
    }
    w.child.proc.kill('SIGSTOP');
    const stopDeadline = Date.now() + scaled(5000);
    while (procState(pid) !== 'T' && procState(pid) !== 'gone' && Date.now() < stopDeadline) await sleep(0);
    // classify from shared memory while it cannot move
    const held = ownerPid() === pid;
    const g = ctrl.gen();
    const switching = held && (existsSync(`/dev/shm/ud.${name}.${tag}.s${g + 1}`) || existsSync(`/dev/shm/ud.${name}.${tag}.d${g + 1}`));
    let frame = false;
    if (held && !switching) {
      const sPath = `/dev/shm/ud.${name}.${tag}.s${g}`;
      const endB = readBytes(sPath, 32, 4);
      if (endB && endB.length === 4) {
        const end = endB.readInt32LE(0) * 8;
        const after = readBytes(sPath, 64 + end, 8);
        frame = after !== null && after.some((b) => b !== 0);
      }
    }
    const phase = readAck(w.ackFile).phase;
    w.killedByUs = true;
    w.child.proc.kill('SIGKILL');
    const r = await w.child.exited;
    if (r.signal !== 'SIGKILL') fail(`writer ${w.id} exited with ${r.code ?? r.signal} before the kill: ${w.child.stderr.slice(0, 800)}`);
    totals.trials++;
    totals.byMode[mode] = (totals.byMode[mode] ?? 0) + 1;
    if (held) totals.heldLock++;
    if (switching) totals.midSwitch++;
    if (frame) totals.midFrame++;
    if (phase !== PHASE_ATTACHED) totals.duringAttach++;
    dead.push({ id: w.id, acked: acked(w) });
    return { heldLock: held };
  };

  /**
   * Holds the lock until a writer asks for a hand-off, then stops it (SIGSTOP) or SIGKILLs it and reaps
   * and reuses its slot, and releases: the offer goes to a waiter that cannot take it.
   */
  const waiterFault = async (mode: 'stopWaiter' | 'deadWaiter'): Promise<void> => {
    const h = d.lock.acquire();
    let victim: Writer | undefined;
    try {
      const deadline = Date.now() + scaled(10_000);
      while (victim === undefined && Date.now() < deadline) {
        const req = Atomics.load(ctrl.i32, I_HANDOFF);
        if (req !== 0) {
          const pid = Math.abs(ctrl.slot(slotOfWord(req)).pid);
          victim = writers.find((w) => !w.killedByUs && w.child.proc.pid === pid);
        }
        if (victim === undefined) await sleep(5);
      }
      if (victim === undefined) {
        fail(`${mode}: no writer asked for a hand-off within ${scaled(10)} s`);
        return;
      }
      if (mode === 'stopWaiter') {
        victim.child.proc.kill('SIGSTOP');
        victim.killedByUs = true; // not a survivor while stopped
      } else {
        await kill(victim, 'random'); // SIGKILL: its request stays behind
        ctrl.reapSlots(lockOwnerSlot(ctrl), (slot) => forgetSlot(ctrl, slot)); // as an attacher short of slots does
      }
    } finally {
      h.release(); // offers the lock to the stopped or dead waiter (or to the new thread in its slot)
    }
    if (mode === 'stopWaiter') {
      totals.stoppedWaiters++;
      if (!(await survivorsProgress('a waiter stopped after asking for a hand-off'))) return;
      victim.child.proc.kill('SIGCONT');
      victim.killedByUs = false;
    } else {
      totals.deadWaiters++;
      const repl = spawnWriter(); // takes the reaped slot
      if (!(await waitAttached(repl))) fail(`writer ${repl.id} did not attach after a dead waiter: ${repl.child.stderr.slice(0, 800)}`);
    }
  };

  try {
    for (let i = 0; i < o.writers; i++) spawnWriter();
    for (const w of writers) if (!(await waitAttached(w))) fail(`writer ${w.id} did not attach: ${w.child.stderr.slice(0, 800)}`);
    if (!(await survivorsProgress('start'))) return;
    for (let k = 0; k < o.kills; k++) {
      const mode = rng.pick(o.modes);
      const before = ctrl.recoveries;
      let held = false;
      if (mode === 'stopWaiter' || mode === 'deadWaiter') {
        await waiterFault(mode);
      } else if (mode === 'attach') {
        const w = spawnWriter();
        ({ heldLock: held } = await kill(w, 'attach'));
        // a new writer attaches after the killed one; it also tells how long an attach takes, so later
        // attach kills land inside it
        const probe = spawnWriter();
        const deadline = Date.now() + scaled(30_000);
        while (readAck(probe.ackFile).phase < PHASE_STARTED && Date.now() < deadline) await sleep(1);
        const t1 = Date.now();
        if (!(await waitAttached(probe))) fail(`writer ${probe.id} did not attach after an attach kill: ${probe.child.stderr.slice(0, 800)}`);
        attachMs = Math.max(2, (attachMs + (Date.now() - t1)) / 2);
      } else {
        const live = writers.filter((x) => !x.killedByUs);
        const victim = rng.pick(live);
        ({ heldLock: held } = await kill(victim, mode));
        const repl = spawnWriter(); // attaches under load
        if (!(await waitAttached(repl))) fail(`replacement writer ${repl.id} did not attach: ${repl.child.stderr.slice(0, 800)}`);
      }
      if (!(await survivorsProgress(`kill ${k} (${mode})`))) return;
      const rec = ctrl.recoveries - before;
      totals.lockRecoveries += rec;
      if (held && rec < 1) fail(`kill ${k} (${mode}): the victim held the lock but no recovery was recorded`);
    }
    // kill the rest, one by one; the last kill leaves the lock to this process
    for (;;) {
      const live = writers.filter((x) => !x.killedByUs);
      if (live.length === 0) break;
      const mode: KillMode = rng.pick(['random', 'lock']);
      const before = ctrl.recoveries;
      const { heldLock } = await kill(rng.pick(live), mode);
      if (live.length > 1) {
        if (!(await survivorsProgress(`final kill (${mode})`))) return;
      } else {
        const t = performance.now();
        d.withLock(() => d.set('final', 1));
        const ms = performance.now() - t;
        if (ms > scaled(5000)) fail(`the last lock took ${ms.toFixed(0)} ms to recover`);
      }
      const rec = ctrl.recoveries - before;
      totals.lockRecoveries += rec;
      if (heldLock && rec < 1) fail('the last victim held the lock but no recovery was recorded');
    }
    // the state: exactly the acknowledged writes of every writer, the static entries untouched
    d.refresh();
    for (const w of dead) {
      const c = checkWriter(o.seed, w.id, w.acked, p, d.data as ReadonlyMap<string | number, unknown>);
      totals.ackedWrites += w.acked;
      if (c.matched === 'acked+1') totals.inFlightApplied++;
      if (c.matched === 'acked+1/partial') totals.inFlightPartial++;
      if (!c.ok) {
        totals.lostWrites += c.lost;
        fail(c.detail);
      }
    }
    for (const [k, v] of staticItems) {
      if (d.get(k) !== v) {
        fail(`static entry ${k} changed: ${String(d.get(k)).slice(0, 40)}`);
        break;
      }
    }
    if (d.get('final') !== 1) fail('the final write is missing');
    const expectedSize = staticItems.length + 1 + countWriterKeys(d.data);
    if (d.size !== expectedSize) fail(`unexpected keys: size ${d.size}, expected ${expectedSize}`);
    // a fresh handle loads the dump and replays: same contents
    const mine = canonEntries(d.data);
    const f = new UltraDict<unknown>({ name, create: false });
    try {
      const theirs = canonEntries(f.data);
      if (theirs.join('\n') !== mine.join('\n')) fail(`a fresh handle sees other contents (${theirs.length} vs ${mine.length} entries)`);
    } finally {
      f.close();
    }
    if (o.freshProcess) {
      const msgs = await runChild('rel-digest', { name }, 120_000);
      const m = msgs.find((x) => x.type === 'digest');
      totals.freshProcessChecks++;
      if (!m || m.digest !== hashStr(mine.join('\n')) || m.size !== d.size) fail(`a fresh process sees other contents: ${JSON.stringify(m)}`);
    }
    if (d.stats().attached !== 1) fail(`attached threads after all writers died: ${d.stats().attached}`);
  } finally {
    for (const w of writers) {
      if (!w.killedByUs) {
        w.killedByUs = true;
        w.child.proc.kill('SIGKILL');
      }
    }
    await Promise.all(writers.map((w) => w.child.exited));
    ctrl.seg.unmap();
    d.close();
    const left = shmEntries(name);
    if (left.length > 0) {
      fail(`segments left after the creator closed: ${left.join(' ')}`);
      UltraDict.unlink(name);
    }
    tmp.cleanup();
    totals.rounds++;
  }
}

function countWriterKeys(m: ReadonlyMap<unknown, unknown>): number {
  let n = 0;
  for (const k of m.keys()) if (typeof k === 'string' && /^w\d+\./.test(k)) n++;
  return n;
}

/** Profiles and kill moments per round, cycled. */
const PLAN: { profile: string; modes: KillMode[] }[] = [
  { profile: 'writes', modes: ['random', 'lock'] },
  { profile: 'dumps', modes: ['random', 'lock', 'dump'] },
  { profile: 'bigdump', modes: ['dump', 'lock', 'random'] },
  { profile: 'attach', modes: ['attach', 'attach', 'random'] },
  { profile: 'bigframes', modes: ['frame', 'frame', 'lock'] },
  { profile: 'writes', modes: ['stopWaiter', 'deadWaiter'] },
];

/** Runs `rounds` rounds (seeds seedBase, seedBase+1, ...) over every profile in turn. */
export async function runKillMatrix(opts: {
  rounds: number;
  seedBase: number;
  kills: number;
  writers: number;
  freshProcessEvery: number;
  profiles: Record<string, Profile>;
  log?: (s: string) => void;
}): Promise<KillTotals> {
  const totals = emptyTotals();
  for (let r = 0; r < opts.rounds; r++) {
    const seed = opts.seedBase + r;
    const plan = PLAN[seed % PLAN.length]!; // by seed: ULTRADICT_SEED=<seed> ULTRADICT_KILL_ROUNDS=1 repeats a round
    const t = Date.now();
    const failuresBefore = totals.failures.length;
    await killRound(
      {
        seed,
        profile: opts.profiles[plan.profile]!,
        writers: opts.writers,
        kills: opts.kills,
        modes: plan.modes,
        freshProcess: opts.freshProcessEvery > 0 && r % opts.freshProcessEvery === 0,
      },
      totals,
    );
    opts.log?.(
      `round ${r + 1}/${opts.rounds} seed ${seed} ${plan.profile}: ${Date.now() - t} ms, trials ${totals.trials}, ` +
        `held lock ${totals.heldLock}, mid switch ${totals.midSwitch}, mid frame ${totals.midFrame}, during attach ${totals.duringAttach}, ` +
        `stopped waiters ${totals.stoppedWaiters}, dead waiters ${totals.deadWaiters}` +
        (totals.failures.length > failuresBefore ? `, FAILURES:\n  ${totals.failures.slice(failuresBefore).join('\n  ')}` : ''),
    );
  }
  return totals;
}

// Finding and removing dicts on this machine by their segment names in /dev/shm: unlink, list and gc.

import { readdirSync, renameSync, statSync } from 'node:fs';
import { checkMs, checkOptions, describe } from '../args.js';
import { Control, STATE_ABANDONED, STATE_INITIALIZING, STATE_READY } from './control.js';
import { controlSegment, PREFIX, parseSegmentFile, RETIRED, retiredControlSegment } from './names.js';
import { Segment, SHM_DIR } from './segment.js';

function shmFiles(): string[] {
  try {
    return readdirSync(SHM_DIR).filter((f) => f.startsWith(PREFIX));
  } catch {
    return [];
  }
}

/**
 * Removes one incarnation (identified by its tag) of a dict. controlOnly: only takes the name away
 * from new attachers, by renaming the control segment to "<name>.<tag>.ctl" (still found by gc); the
 * data segments stay for the processes already attached. Otherwise removes everything of the tag.
 */
export function removeIncarnation(name: string, tag: string, opts: { controlOnly: boolean }): void {
  const ctrlFile = `${PREFIX}${name}`;
  const retired = retiredControlSegment(name, tag).slice(1);
  // the control name may already belong to a newer incarnation: only touch it if it is ours
  const current = safeOpen('/' + ctrlFile);
  const ours = current !== null && current.tag === tag;
  current?.seg.unmap();
  if (opts.controlOnly) {
    if (ours) {
      try {
        renameSync(`${SHM_DIR}/${ctrlFile}`, `${SHM_DIR}/${retired}`);
      } catch {
        Segment.unlink('/' + ctrlFile);
      }
    }
    return;
  }
  // a file another user planted under one of our names cannot be removed (sticky /dev/shm): left alone
  if (ours) Segment.unlinkIfAllowed('/' + ctrlFile);
  const prefix = `${ctrlFile}.${tag}.`;
  for (const f of shmFiles()) if (f.startsWith(prefix) || f === retired) Segment.unlinkIfAllowed('/' + f);
}

/**
 * Removes the control segment at a dict's name if it is an abandoned one (its creator died before it was
 * ready; the caller marked it ABANDONED). The name is opened again first: once the abandoned file is
 * gone, a new incarnation may take the name, and that one must not be removed (a new incarnation can
 * only appear after the abandoned file is unlinked, so the check cannot pass for it). Returns whether it
 * removed the file.
 */
export function removeAbandoned(name: string): boolean {
  const segName = controlSegment(name);
  const now = safeOpen(segName);
  const abandoned = now !== null && now.state === STATE_ABANDONED;
  now?.seg.unmap();
  return abandoned && Segment.unlinkIfAllowed(segName);
}

function safeOpen(segName: string): Control | null {
  try {
    return Control.open(segName);
  } catch {
    return null;
  }
}

/** Removes every segment of a dict name, all incarnations. True if anything was removed. */
export function removeDict(name: string): boolean {
  const ctrl = safeOpen(controlSegment(name));
  if (ctrl !== null) {
    if (ctrl.state === STATE_READY) ctrl.markUnlinked();
    ctrl.seg.unmap();
  }
  let removed = false;
  for (const f of shmFiles()) {
    const p = parseSegmentFile(f);
    if (p !== null && p.name === name && Segment.unlink('/' + f)) removed = true;
  }
  return removed;
}

export interface DictInfo {
  name: string;
  /** hex id of this incarnation */
  tag: string;
  /** false once unlinked (retired): attached processes still use it, new ones cannot attach */
  attachable: boolean;
  creatorPid: number;
  createdAt: number;
  serializer: string;
  attachedPids: number[];
  sharedMemoryBytes: number;
  ready: boolean;
}

/**
 * Calls fn for every control segment among `files` (attachable `ud.<name>` or retired
 * `ud.<name>.<tag>.ctl`) that can be opened; unmaps it afterwards.
 */
function eachControl(files: readonly string[], fn: (file: string, name: string, attachable: boolean, ctrl: Control) => void): void {
  for (const f of files) {
    const p = parseSegmentFile(f);
    if (p === null) continue;
    if (!p.control && !f.endsWith(RETIRED)) continue;
    const ctrl = safeOpen('/' + f);
    if (ctrl === null) continue;
    try {
      fn(f, p.name, p.control, ctrl);
    } finally {
      ctrl.seg.unmap();
    }
  }
}

/** Every dict (incarnation) whose control segment is in /dev/shm. */
export function listDicts(): DictInfo[] {
  const files = shmFiles();
  const sizes = new Map<string, number>();
  for (const f of files) {
    try {
      sizes.set(f, statSync(`${SHM_DIR}/${f}`).blocks * 512); // allocated, not apparent: streams are sparse
    } catch {
      // vanished
    }
  }
  const out: DictInfo[] = [];
  eachControl(files, (f, name, attachable, ctrl) => {
    const ready = ctrl.state === STATE_READY;
    const tag = ready || ctrl.state !== STATE_INITIALIZING ? ctrl.tag : '';
    let bytes = 0;
    const prefix = `${PREFIX}${name}.${tag}.`;
    for (const [g, s] of sizes) if (g === f || (tag && g.startsWith(prefix))) bytes += s;
    out.push({
      name,
      tag,
      attachable,
      creatorPid: ctrl.creatorPid,
      createdAt: ready ? ctrl.createdAt : 0,
      serializer: ready ? ctrl.serializerName : '',
      attachedPids: [...new Set(ctrl.attached().map((s) => s.pid))],
      sharedMemoryBytes: bytes,
      ready,
    });
  });
  return out;
}

/**
 * Removes dicts left behind by crashes: dicts whose attached threads are all dead (SIGKILLed, crashed;
 * their slots were never freed), unlinked dicts nobody uses any more, creators that died while
 * initialising, and data segments whose control segment is gone. A dict that every process closed
 * cleanly (kept with autoUnlink: false) is kept, unless includeDetached. Returns the names removed.
 */
export function gc(options: { graceMs?: number; includeDetached?: boolean } = {}): string[] {
  checkOptions(options, ['graceMs', 'includeDetached'], 'gc');
  checkMs(options.graceMs, 'graceMs', 'gc', true);
  if (options.includeDetached !== undefined && typeof options.includeDetached !== 'boolean') {
    throw new TypeError(`gc: option includeDetached must be a boolean, got ${describe(options.includeDetached)}`);
  }
  const grace = options.graceMs ?? 2000;
  const includeDetached = options.includeDetached ?? false;
  const removed: string[] = [];
  const files = shmFiles();
  const liveTags = new Set<string>();
  eachControl(files, (f, name, attachable, ctrl) => {
    if (ctrl.state === STATE_INITIALIZING || ctrl.state === STATE_ABANDONED) {
      // a creator that died before the dict was ready (see Control.creatorGone: a header still being
      // written names no creator yet), or an abandoned one nobody removed: claimed, then removed by name
      // only if the file there is still the abandoned one
      const age = ageMs(f);
      const dead = ctrl.state === STATE_ABANDONED || (age > grace && ctrl.creatorGone(age) && ctrl.claimAbandoned());
      if (dead && attachable && removeAbandoned(name)) removed.push(name);
      return;
    }
    const tag = ctrl.tag;
    // live users: keep. Nobody attached and every slot freed by a clean close: kept on purpose
    // (autoUnlink: false), unless includeDetached. Dead threads still in slots: crashed, remove.
    const keptOnPurpose = attachable && !includeDetached && !ctrl.unlinkPending && ctrl.occupiedSlots() === 0;
    if (keptOnPurpose || ctrl.attached().length > 0) {
      liveTags.add(`${name}.${tag}`);
      return;
    }
    // an attacher may be between its open and its slot claim: READY -> REMOVING, then look at the slots
    // again (the attacher claims, then checks the state); a live slot by then keeps the dict
    if (attachable && !ctrl.beginRemoval()) {
      liveTags.add(`${name}.${tag}`);
      return;
    }
    if (attachable && !gcUnlink('/' + f)) {
      ctrl.endRemoval(); // not ours to remove (another user's)
      return;
    }
    ctrl.markUnlinked();
    const prefix = `${PREFIX}${name}.${tag}.`;
    for (const g of files) if (g.startsWith(prefix)) gcUnlink('/' + g);
    removed.push(name);
  });
  // data segments whose control segment no longer exists. The data files are listed before the control
  // segments are read: a data file is only created once its control segment exists with its tag.
  const dataFiles = shmFiles();
  const ctrlTags = new Set<string>();
  // names whose control segment exists but cannot be read (another user's, or foreign): their data
  // segments are not orphans, whatever their tag
  const unreadable = new Set<string>();
  for (const f of shmFiles()) {
    const p = parseSegmentFile(f);
    if (p === null) continue;
    if (p.control) {
      const c = safeOpen('/' + f);
      if (c !== null) {
        // also while initialising: its creator may be writing generation 0 already
        ctrlTags.add(`${p.name}.${c.tag}`);
        c.seg.unmap();
      } else {
        unreadable.add(p.name);
      }
    } else if (f.endsWith(RETIRED)) {
      ctrlTags.add(f.slice(PREFIX.length, -RETIRED.length));
    }
  }
  for (const f of dataFiles) {
    const p = parseSegmentFile(f);
    if (p === null || p.control) continue;
    const rest = f.slice(PREFIX.length);
    const parts = rest.split('.');
    if (parts.length < 3) continue;
    const key = `${parts[0]}.${parts[1]}`;
    if (ctrlTags.has(key) || liveTags.has(key) || unreadable.has(p.name)) continue;
    if (ageMs(f) > grace && gcUnlink('/' + f) && !removed.includes(p.name)) removed.push(p.name);
  }
  return removed;
}

/** gc's unlink: a segment this user may not remove (another user's) is left alone, not an error. */
function gcUnlink(segName: string): boolean {
  return Segment.unlinkIfAllowed(segName);
}

function ageMs(file: string): number {
  try {
    return Date.now() - statSync(`${SHM_DIR}/${file}`).mtimeMs;
  } catch {
    return 0;
  }
}

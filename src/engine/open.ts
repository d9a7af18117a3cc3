// Opening a dict: option checks, the create-or-attach handshake on the control segment (waiting for a
// creator, retrying around gc), engine sharing within a thread, and closing every engine at exit.

import { isMainThread } from 'node:worker_threads';
import { checkKey, type Key } from '../codec/ops.js';
import { Encoder } from '../codec/wire.js';
import { builtinSerializers, resolveSerializer, type SerializerOption } from '../codec/serializer.js';
import { checkTtl, isPlainObject } from '../args.js';
import {
  AlreadyExistsError,
  CorruptSegmentError,
  LockTimeoutError,
  NotFoundError,
  ParameterMismatchError,
  SharedMemoryError,
  TooManyAttachedError,
} from '../errors.js';
import { entriesOf, type Initial } from '../map-api.js';
import { Control, EVICT_LRU, EVICT_NONE, FLAG_RECURSE, STATE_ABANDONED, STATE_INITIALIZING, STATE_READY, STATE_REMOVING } from '../shm/control.js';
import { removeAbandoned, removeIncarnation } from '../shm/discovery.js';
import { encodeDump } from '../shm/dump.js';
import { controlSegment } from '../shm/names.js';
import type { SegmentGuard } from '../shm/segment.js';
import { euid, Trust, validateOwner, type OwnerOption } from '../shm/trust.js';
import { POLICY_CODES, policyName, recencySlotsFor, type EvictPolicy } from './bounds.js';
import { Core } from './core.js';
import { CreatorOvertakenError } from './generation.js';
import { deadlineAfter } from './expiry.js';
import { openEngines, retainEngine } from './threads.js';
import { dropThreadEntry, forgetSlot, lockOwnerSlot, threadEntry, type ThreadEntry } from './lock.js';
import * as diag from '../diagnostics.js';

export interface UltraDictOptions {
  /** Name other processes attach by. Random (`ud_…`) if not given. 1-100 of A-Z a-z 0-9 _ - */
  name?: string;
  /** true: must create; false: must attach; undefined (default): attach or create. */
  create?: boolean;
  /** Minimum size in bytes of the update stream (default 1 MiB). */
  bufferSize?: number;
  /** 'msgpack' (default), 'json', 'v8' or a custom { name, serialize, deserialize }. */
  serializer?: SerializerOption;
  /** Size of a fixed full-dump area in bytes instead of a fresh segment per dump (default: none). */
  fullDumpSize?: number;
  /** Unlink the segments when the creating handle closes or its process exits (default true for the creator). */
  autoUnlink?: boolean;
  /** Maximum wait in ms for the lock and for a creator to finish initialising (default 10000). */
  lockTimeout?: number;
  /** Permissions of the segments (default 0o600: only the same user). */
  mode?: number;
  /** Plain objects assigned as values become nested shared dicts (default false; fixed at creation). */
  recurse?: boolean;
  /**
   * The user trusted to own the dict's segments: a uid, or 'any' (default: this process's effective
   * uid). Attaching to a dict owned by anyone else is a ForeignSegmentError.
   */
  owner?: OwnerOption;
  /**
   * Default time to live in ms of every write of a root key (default 0: none; fixed at creation). A
   * write given its own `{ ttl }` uses that instead.
   */
  ttl?: number;
  /**
   * A bound on the number of root keys (default 0: none; fixed at creation). A write that would go over
   * it evicts keys chosen by `evict`, in the same atomic frame.
   */
  maxKeys?: number;
  /**
   * A bound on the bytes of the encoded root keys and values (default 0: none; fixed at creation). Not
   * with `recurse` (writes inside nested dicts would change sizes the bound does not see).
   */
  maxBytes?: number;
  /** Which keys a bounded dict evicts: the least recently used ('lru', the default) or the oldest written ('fifo'). */
  evict?: EvictPolicy;
}

const KNOWN_OPTIONS = new Set([
  'name', 'create', 'bufferSize', 'serializer', 'fullDumpSize', 'autoUnlink', 'lockTimeout', 'mode', 'recurse', 'owner', 'ttl',
  'maxKeys', 'maxBytes', 'evict',
]);
export const DEFAULT_BUFFER_SIZE = 1 << 20;
export const DEFAULT_LOCK_TIMEOUT = 10_000;
const MIN_BUFFER_SIZE = 1024;
const MAX_SIZE = 0x7fffffff * 8;

/** Checks the constructor's options: known names, types and ranges (a TypeError otherwise). */
export function validateOptions(o: unknown): UltraDictOptions {
  if (o === undefined) return {};
  if (!isPlainObject(o)) throw new TypeError('options must be a plain object');
  for (const k of Object.keys(o)) {
    if (k === 'recurseRegister') {
      throw new TypeError('option recurseRegister is not needed: nested dicts live in the segments of their root dict');
    }
    if (!KNOWN_OPTIONS.has(k)) {
      throw new TypeError(`unknown option ${JSON.stringify(k)} (known: ${[...KNOWN_OPTIONS].join(', ')}); initial items go in the first argument`);
    }
  }
  const opts = o as UltraDictOptions;
  const int = (k: keyof UltraDictOptions, min: number, max: number): void => {
    const v = opts[k];
    if (v !== undefined && (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max)) {
      throw new TypeError(`option ${k} must be an integer from ${min} to ${max}`);
    }
  };
  int('bufferSize', MIN_BUFFER_SIZE, MAX_SIZE);
  int('fullDumpSize', 64, MAX_SIZE);
  int('mode', 0, 0o777);
  int('maxKeys', 0, 2 ** 32);
  int('maxBytes', 0, Number.MAX_SAFE_INTEGER);
  if (opts.evict !== undefined && !Object.hasOwn(POLICY_CODES, opts.evict as string)) {
    throw new TypeError(`option evict must be 'lru' or 'fifo', got ${JSON.stringify(opts.evict)}`);
  }
  const bounded = (opts.maxKeys ?? 0) > 0 || (opts.maxBytes ?? 0) > 0;
  if (opts.evict !== undefined && !bounded && opts.create !== false) {
    // (attaching, it only checks the dict's policy)
    throw new TypeError('option evict needs a bound, maxKeys or maxBytes (or create: false to check an existing dict\'s policy)');
  }
  if ((opts.maxBytes ?? 0) > 0 && opts.recurse === true) {
    throw new TypeError('options maxBytes and recurse cannot be combined: writes inside nested dicts change entry sizes that the bound does not see');
  }
  validateOwner(opts.owner);
  if (opts.lockTimeout !== undefined && (typeof opts.lockTimeout !== 'number' || !(opts.lockTimeout >= 0))) {
    throw new TypeError('option lockTimeout must be a number of ms >= 0');
  }
  checkTtl(opts.ttl, 'option ttl');
  for (const k of ['create', 'autoUnlink', 'recurse'] as const) {
    if (opts[k] !== undefined && typeof opts[k] !== 'boolean') throw new TypeError(`option ${k} must be a boolean`);
  }
  return opts;
}

// ---- process-wide bookkeeping ----------------------------------------------------------------------

let exitHooked = false;

function closeAll(): void {
  for (const c of openEngines()) {
    try {
      c.close();
    } catch {
      // exiting: nothing more can be done
    }
  }
}

/**
 * Closes every open dict when the process exits, also on SIGINT/SIGTERM/SIGHUP when the application
 * has no handler of its own for the signal (then the signal is re-raised, so the process still dies of
 * it). An application that handles the signal itself keeps full control: its exit closes the dicts.
 */
function hookExit(): void {
  if (exitHooked) return;
  exitHooked = true;
  process.on('exit', closeAll);
  if (!isMainThread) return;
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      if (process.listenerCount(sig) > 0) return;
      closeAll();
      process.kill(process.pid, sig);
    });
  }
}

// ---- opening ---------------------------------------------------------------------------------------

/**
 * Opens the engine of dict `name` for a new handle: creates the dict, or attaches to it (this thread's
 * engine of it if one is open). Returns the engine and whether this call created the dict.
 */
export function openEngine(
  name: string,
  opts: UltraDictOptions,
  initial: Initial<unknown> | undefined,
  deadlineArg?: number,
): { core: Core; creator: boolean } {
  const lockTimeout = opts.lockTimeout ?? DEFAULT_LOCK_TIMEOUT;
  const explicitSer = opts.serializer !== undefined;
  let ser = resolveSerializer(opts.serializer ?? 'msgpack');
  const recurseOpt = opts.recurse ?? false;
  const ttlOpt = opts.ttl ?? 0;
  const maxKeys = opts.maxKeys ?? 0;
  const maxBytes = opts.maxBytes ?? 0;
  const evict = maxKeys + maxBytes > 0 ? POLICY_CODES[opts.evict ?? 'lru'] : EVICT_NONE;

  // encode the initial items first: a bad item fails before anything exists in shared memory
  let initialDump: { enc: Encoder; len: number; count: number } | null = null;
  if (initial !== undefined) {
    const local = new Map<Key, unknown>();
    const scratch = new Encoder(64);
    for (const [k, v] of entriesOf(initial, 'initial items')) {
      checkKey(k);
      scratch.beginBody();
      local.set(k, scratch.value(v, ser, true, recurseOpt));
    }
    const enc = new Encoder();
    const deadlines = new Map<Key, number>();
    if (ttlOpt > 0) for (const k of local.keys()) deadlines.set(k, deadlineAfter(ttlOpt));
    const [len, count] = encodeDump(enc, local, ser, deadlines);
    if (maxKeys > 0 && count > maxKeys) throw new RangeError(`${count} initial items are more than maxKeys ${maxKeys}`);
    if (maxBytes > 0 && len > maxBytes) throw new RangeError(`the initial items take about ${len} bytes, more than maxBytes ${maxBytes}`);
    initialDump = { enc, len, count };
  }

  const ctrlName = controlSegment(name);
  const deadline = deadlineArg ?? performance.now() + lockTimeout;
  // the owner of the control segment is checked before anything in it is read (its mode once it is known)
  const trust = new Trust(opts.owner, opts.mode ?? 0o600, euid());
  const ownerGuard: SegmentGuard = { check: (seg) => trust.checkOwner(seg), gone: () => false };
  let ctrl: Control | null = null;
  let creator = false;
  for (;;) {
    if (opts.create !== false) {
      try {
        ctrl = Control.create(ctrlName, {
          bufferSize: opts.bufferSize ?? DEFAULT_BUFFER_SIZE,
          fullDumpSize: opts.fullDumpSize ?? 0,
          serializer: ser.name,
          mode: opts.mode ?? 0o600,
          flags: recurseOpt ? FLAG_RECURSE : 0,
          ttl: ttlOpt,
          maxKeys,
          maxBytes,
          evict,
          recencySlots: evict === EVICT_LRU ? recencySlotsFor(maxKeys, maxBytes) : 0,
        });
        creator = true;
        break;
      } catch (e) {
        if (!(e instanceof SharedMemoryError && e.osCode === 'EEXIST')) throw e;
        if (opts.create === true) throw new AlreadyExistsError(`an UltraDict named ${JSON.stringify(name)} already exists`);
      }
    }
    try {
      ctrl = Control.open(ctrlName, ownerGuard);
    } catch (e) {
      // EEMPTY: a creator between shm_open and ftruncate (microseconds), or a foreign empty file
      if (!(e instanceof SharedMemoryError && e.osCode === 'EEMPTY')) throw e;
      if (performance.now() > deadline) throw new CorruptSegmentError(`${ctrlName} exists but is empty: not an ultradict dict`);
      sleepMs(1);
      continue;
    }
    if (ctrl === null) {
      if (opts.create === false) throw new NotFoundError(`no UltraDict named ${JSON.stringify(name)} exists`);
      continue; // it vanished between our create and open: try to create again
    }
    let ready: boolean;
    try {
      ready = waitReady(ctrl, ctrlName, deadline);
    } catch (e) {
      ctrl.seg.unmap(); // a creator that never finishes: do not keep its mapping until GC
      throw e;
    }
    if (ready) break;
    ctrl.seg.unmap();
    ctrl = null;
    if (performance.now() > deadline) throw new LockTimeoutError(`timed out attaching to ${JSON.stringify(name)}`, null);
    sleepMs(1); // abandoned (it is being removed), or gc() is removing it
  }

  let core: Core | null = null;
  let entry: ThreadEntry | null = null;
  try {
    let recurse = recurseOpt;
    if (!creator) {
      ctrl.checkHeader();
      trust.learn(ctrl.mode, ctrl.ownerUid);
      trust.checkMode(ctrl.seg);
      const recorded = ctrl.serializerName;
      if (explicitSer) {
        if (ser.name !== recorded) throw new ParameterMismatchError(`${JSON.stringify(name)} uses serializer '${recorded}', not '${ser.name}'`);
      } else if (Object.hasOwn(builtinSerializers, recorded)) {
        ser = builtinSerializers[recorded as keyof typeof builtinSerializers];
      } else {
        throw new ParameterMismatchError(`${JSON.stringify(name)} uses the custom serializer '${recorded}': pass it as the serializer option`);
      }
      const mismatch = (what: string, given: number | boolean | undefined, actual: number | boolean): void => {
        if (given !== undefined && given !== actual) {
          throw new ParameterMismatchError(`${JSON.stringify(name)} was created with ${what} ${actual}, not ${given}`);
        }
      };
      mismatch('bufferSize', opts.bufferSize, ctrl.bufferSize);
      mismatch('fullDumpSize', opts.fullDumpSize, ctrl.fullDumpSize);
      mismatch('mode', opts.mode, ctrl.mode);
      recurse = (ctrl.flags & FLAG_RECURSE) !== 0;
      mismatch('recurse', opts.recurse, recurse);
      mismatch('ttl', opts.ttl, ctrl.ttl);
      mismatch('maxKeys', opts.maxKeys, ctrl.maxKeys);
      mismatch('maxBytes', opts.maxBytes, ctrl.maxBytes);
      if (opts.evict !== undefined && POLICY_CODES[opts.evict] !== ctrl.evict) {
        throw new ParameterMismatchError(`${JSON.stringify(name)} was created with evict ${JSON.stringify(policyName(ctrl.evict))}, not ${JSON.stringify(opts.evict)}`);
      }
    }
    trust.learn(ctrl.mode, ctrl.ownerUid);
    ctrl.checkWith(trust);
    const c = ctrl;
    const key = `${ctrlName}:${ctrl.tag}`;
    if (!creator) {
      // another handle of this thread has it open: share its engine (one local copy, one stream position)
      const open = retainEngine<Core>(key);
      if (open !== null) {
        ctrl.seg.unmap();
        return { core: open, creator: false };
      }
    }
    entry = threadEntry(key, () => {
      const claimed = c.claimSlot(
        () => lockOwnerSlot(c),
        (slot) => forgetSlot(c, slot),
      );
      if (claimed === null) throw new TooManyAttachedError(`every attach slot of ${JSON.stringify(name)} is held by a live thread`);
      return claimed;
    });
    // with our slot claimed, gc() can no longer remove the dict; if it began before, start again (the
    // dict may then be created anew)
    if (!creator && !ctrl.attachSettled()) {
      if (dropThreadEntry(entry)) ctrl.releaseSlot(entry.slot);
      entry = null; // released: the catch below must not release it again (the control is unmapped next)
      ctrl.seg.unmap();
      if (performance.now() > deadline) throw new LockTimeoutError(`timed out attaching to ${JSON.stringify(name)}: gc() kept removing it`, null);
      sleepMs(1);
      return openEngine(name, opts, initial, deadline);
    }
    core = new Core({ name, ctrl, entry, serializer: ser, lockTimeout, recurse, ttl: ctrl.ttl });
    if (creator) core.initialize(initialDump);
    core.sync(true);
  } catch (e) {
    if (core !== null) core.abandon();
    else if (entry !== null && dropThreadEntry(entry)) ctrl.releaseSlot(entry.slot);
    if (creator) {
      ctrl.markAbandoned();
      removeIncarnation(name, ctrl.tag, { controlOnly: false });
    }
    ctrl.seg.unmap();
    if (e instanceof CreatorOvertakenError && performance.now() < deadline) {
      // taken for dead while it initialised (it was stalled): its incarnation is gone; start again
      return openEngine(name, opts, initial, deadline);
    }
    throw e;
  }
  hookExit();
  diag.attached(name, creator, core.map.size, core.gen);
  return { core, creator };
}

/** Waits until a control segment is ready. False if it was abandoned and removed (the caller retries). */
function waitReady(ctrl: Control, ctrlName: string, deadline: number): boolean {
  const start = performance.now();
  for (;;) {
    const state = ctrl.state;
    // REMOVING: gc() is removing it; the caller starts again (a dead remover's state is reverted there)
    if (state === STATE_REMOVING) return ctrl.attachSettled();
    if (state === STATE_READY) return true;
    if (state === STATE_ABANDONED) {
      removeAbandoned(ctrlName.slice('/ud.'.length)); // whoever claimed it may have died before removing it
      return false;
    }
    if (state !== STATE_INITIALIZING) throw new CorruptSegmentError(`${ctrlName} has an unknown state ${state}: not an ultradict dict, or damaged`);
    const pid = ctrl.creatorPid;
    if (ctrl.creatorGone(performance.now() - start)) {
      if (ctrl.claimAbandoned()) removeAbandoned(ctrlName.slice('/ud.'.length));
      return false;
    }
    if (performance.now() > deadline) {
      throw new LockTimeoutError(`the creator of ${ctrlName} (pid ${pid}) did not finish initialising it in time`, pid || null);
    }
    ctrl.waitState(20);
  }
}

const sleeper = new Int32Array(new SharedArrayBuffer(4));
function sleepMs(ms: number): void {
  Atomics.wait(sleeper, 0, 0, ms);
}

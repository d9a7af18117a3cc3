// The figures of UltraDict#stats() that come from the engine and the shared memory of a dict.

import type { Control } from '../shm/control.js';
import { policyName } from './bounds.js';
import type { Stream } from '../shm/stream.js';
import type { Generations } from './generation.js';
import type { LockOwner, SharedLock } from './lock.js';

/** The figures of UltraDict#stats() that the engine reports (the facade adds the name). */
export interface EngineStats {
  keys: number;
  generation: number;
  streamBytesUsed: number;
  streamBytesSize: number;
  dumps: number;
  lastDumpBytes: number;
  bufferSize: number;
  fullDumpSize: number;
  serializer: string;
  recurse: boolean;
  /** the dict's default time to live in ms (0: none) */
  ttl: number;
  /** keys with an expiry in this process's copy */
  expiring: number;
  /** expired keys whose delete a writer published, since creation (all processes) */
  expired: number;
  /** the `maxKeys` bound (0: none) */
  maxKeys: number;
  /** the `maxBytes` bound (0: none) */
  maxBytes: number;
  /** the eviction policy of a bounded dict (null: unbounded) */
  evict: 'lru' | 'fifo' | null;
  /** bytes of the encoded root keys and values (what maxBytes counts) in this process's copy; 0 for a dict without bounds */
  bytes: number;
  /** keys a writer evicted to keep the dict within its bounds, since creation (all processes) */
  evicted: number;
  lockHolder: LockOwner | null;
  lockRecoveries: number;
  /** times the lock was offered directly to a waiter that had waited over 200 ms */
  lockHandoffs: number;
  /** offers withdrawn because the waiter did not take the lock within 250 ms (stopped, dead or gone) */
  lockHandoffsLapsed: number;
  attached: number;
  listeners: number;
  creatorPid: number;
  createdAt: number;
  unlinked: boolean;
  sharedMemoryBytes: number;
}

/** What the engine knows of itself that stats() reports beside the control block's figures. */
export interface StatsSources {
  ctrl: Control;
  lock: SharedLock;
  generations: Generations;
  stream: Stream;
  keys: number;
  generation: number;
  serializer: string;
  recurse: boolean;
  ttl: number;
  expiring: number;
  bytes: number;
}

export function collectStats(s: StatsSources): EngineStats {
  const ctrl = s.ctrl;
  return {
    keys: s.keys,
    generation: s.generation,
    streamBytesUsed: s.stream.end(),
    streamBytesSize: s.stream.capacity,
    dumps: ctrl.dumps,
    lastDumpBytes: ctrl.lastDumpBytes,
    bufferSize: s.generations.bufferSize,
    fullDumpSize: s.generations.fullDumpSize,
    serializer: s.serializer,
    recurse: s.recurse,
    ttl: s.ttl,
    expiring: s.expiring,
    expired: ctrl.expired,
    maxKeys: ctrl.maxKeys,
    maxBytes: ctrl.maxBytes,
    evict: policyName(ctrl.evict),
    bytes: s.bytes,
    evicted: ctrl.evicted,
    lockHolder: s.lock.owner(),
    lockRecoveries: ctrl.recoveries,
    lockHandoffs: ctrl.handoffs,
    lockHandoffsLapsed: ctrl.lapsedHandoffs,
    attached: ctrl.attached().length,
    listeners: ctrl.listeners,
    creatorPid: ctrl.creatorPid,
    createdAt: ctrl.createdAt,
    unlinked: ctrl.unlinked,
    sharedMemoryBytes: s.generations.sharedMemoryBytes(s.stream),
  };
}
